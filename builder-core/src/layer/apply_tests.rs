//! Applier confinement and whiteout tests: nothing outside the temp root is ever touched.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};

use super::tarfmt::Kind;
use super::tests::{hdr, link, raw_tar};
use super::*;
use crate::changes::WhiteoutStyle;

struct Sandbox {
    outer: tempfile::TempDir,
    root: Root,
}

impl Sandbox {
    /// `outer/sentinel` beside `outer/root`; the layer is applied to `outer/root`.
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        fs::write(outer.path().join("sentinel"), b"untouched").unwrap();
        fs::create_dir(outer.path().join("root")).unwrap();
        let root = Root::open(outer.path().join("root")).unwrap();
        Self { outer, root }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.outer.path().join("root").join(rel)
    }

    fn apply(&self, tar: &[u8], style: WhiteoutStyle) -> Result<ApplyStats, LayerError> {
        apply_layer(&self.root, tar, style, &ApplyOptions::default())
    }

    fn assert_outside_untouched(&self) {
        let names: Vec<_> = fs::read_dir(self.outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(
            fs::read(self.outer.path().join("sentinel")).unwrap(),
            b"untouched"
        );
    }
}

#[test]
fn dotdot_and_absolute_names_stay_inside() {
    let sb = Sandbox::new();
    let tar = raw_tar(&[
        (hdr("../sentinel", Kind::File), b"pwned"),
        (hdr("../../../../tmp/x", Kind::File), b"x"),
        (hdr("/abs/file", Kind::File), b"abs"),
        (hdr("./a/../b", Kind::File), b"b"),
    ]);
    sb.apply(&tar, WhiteoutStyle::Apply).unwrap();
    assert_eq!(fs::read(sb.path("sentinel")).unwrap(), b"pwned");
    assert_eq!(fs::read(sb.path("tmp/x")).unwrap(), b"x");
    assert_eq!(fs::read(sb.path("abs/file")).unwrap(), b"abs");
    assert_eq!(fs::read(sb.path("b")).unwrap(), b"b");
    sb.assert_outside_untouched();
}

#[test]
fn symlinks_planted_by_the_layer_stay_inside() {
    let sb = Sandbox::new();
    let outer = sb.outer.path().to_str().unwrap().to_string();
    let tar = raw_tar(&[
        (link("rootlink", Kind::Symlink, "/"), b""),
        (hdr("rootlink/etc/evil", Kind::File), b"1"),
        (link("up", Kind::Symlink, "../../../.."), b""),
        (hdr("up/sentinel", Kind::File), b"2"),
        (link("outer", Kind::Symlink, &outer), b""),
        (hdr("outer/sentinel", Kind::File), b"3"),
        (link("dir", Kind::Symlink, "/"), b""),
        (hdr("dir/", Kind::Dir), b""),
    ]);
    sb.apply(&tar, WhiteoutStyle::Apply).unwrap();
    assert_eq!(fs::read(sb.path("etc/evil")).unwrap(), b"1");
    assert_eq!(fs::read(sb.path("sentinel")).unwrap(), b"2");
    let inner_outer = sb.path(outer.trim_start_matches('/'));
    assert_eq!(fs::read(inner_outer.join("sentinel")).unwrap(), b"3");
    // A directory entry replaces a symlink of the same name instead of following it.
    assert!(fs::symlink_metadata(sb.path("dir")).unwrap().is_dir());
    sb.assert_outside_untouched();
}

#[test]
fn hard_links_resolve_inside_the_root() {
    let sb = Sandbox::new();
    let host_links = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    let tar = raw_tar(&[(link("passwd-link", Kind::HardLink, "/etc/passwd"), b"")]);
    let err = sb.apply(&tar, WhiteoutStyle::Apply).unwrap_err();
    assert!(matches!(err, LayerError::HardLink { .. }), "{err}");
    assert_eq!(
        fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
        host_links
    );

    let tar = raw_tar(&[
        (
            hdr("etc/passwd", Kind::File),
            b"root:x:0:0::/root:/bin/sh\n",
        ),
        (link("l1", Kind::HardLink, "/etc/passwd"), b""),
        (link("l2", Kind::HardLink, "../../../etc/passwd"), b""),
        (link("../../l3", Kind::HardLink, "../sentinel"), b""),
    ]);
    let err = sb.apply(&tar, WhiteoutStyle::Apply).unwrap_err();
    // ../sentinel names the root's own (missing) sentinel, never the outer one.
    assert!(matches!(err, LayerError::HardLink { .. }), "{err}");
    assert_eq!(fs::metadata(sb.path("l1")).unwrap().nlink(), 3);
    assert!(!sb.path("l3").exists());
    sb.assert_outside_untouched();
}

#[test]
fn whiteouts_and_opaque_dirs_apply_to_lower_content_only() {
    let sb = Sandbox::new();
    for p in ["a/x", "a/sub/y", "b", "c/z"] {
        fs::create_dir_all(sb.path(p).parent().unwrap()).unwrap();
        fs::write(sb.path(p), b"lower").unwrap();
    }
    let tar = raw_tar(&[
        (hdr(".wh.b", Kind::File), b""),
        (hdr("a/", Kind::Dir), b""),
        (hdr("a/new", Kind::File), b"upper"),
        (hdr("a/sub/", Kind::Dir), b""),
        // The marker after entries of its own layer: those must survive.
        (hdr("a/.wh..wh..opq", Kind::File), b""),
        (hdr("c/.wh.z", Kind::File), b""),
        (hdr(".wh.missing", Kind::File), b""),
    ]);
    let stats = sb.apply(&tar, WhiteoutStyle::Apply).unwrap();
    assert_eq!(stats.whiteouts, 4);
    assert!(!sb.path("b").exists());
    assert!(!sb.path("a/x").exists());
    assert!(sb.path("a/sub").is_dir(), "added by this layer");
    assert!(!sb.path("a/sub/y").exists(), "lower content of a kept dir");
    assert_eq!(fs::read(sb.path("a/new")).unwrap(), b"upper");
    assert!(sb.path("c").is_dir() && !sb.path("c/z").exists());
    assert!(!sb.path(".wh.b").exists() && !sb.path("a/.wh..wh..opq").exists());
    sb.assert_outside_untouched();
}

#[test]
fn overlay_style_whiteouts() {
    let sb = Sandbox::new();
    let tar = raw_tar(&[
        (hdr(".wh.b", Kind::File), b""),
        (hdr("a/", Kind::Dir), b""),
        (hdr("a/.wh..wh..opq", Kind::File), b""),
    ]);
    match sb.apply(&tar, WhiteoutStyle::Overlay) {
        Ok(_) => {}
        Err(LayerError::Fs(e)) if e.source.raw_os_error() == Some(libc::EPERM) => {
            eprintln!("no privilege for overlay whiteouts; skipping");
            return;
        }
        Err(e) => panic!("{e}"),
    }
    let st = rustix::fs::lstat(sb.path("b")).unwrap();
    assert_eq!(
        rustix::fs::FileType::from_raw_mode(st.st_mode),
        rustix::fs::FileType::CharacterDevice
    );
    assert_eq!(st.st_rdev, 0);
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(sb.path("a"), "trusted.overlay.opaque", &mut v).unwrap();
    assert_eq!(&v[..n], b"y");
}

#[test]
fn replaces_file_with_dir_and_dir_with_file() {
    let sb = Sandbox::new();
    fs::write(sb.path("was-file"), b"f").unwrap();
    fs::create_dir_all(sb.path("was-dir/deep")).unwrap();
    fs::write(sb.path("was-dir/deep/x"), b"x").unwrap();
    fs::create_dir(sb.path("merge")).unwrap();
    fs::write(sb.path("merge/old"), b"o").unwrap();
    let mut setuid = hdr("merge/suid", Kind::File);
    setuid.mode = 0o6755;
    setuid.uid = 1000;
    setuid.gid = 1000;
    let tar = raw_tar(&[
        (hdr("was-file/", Kind::Dir), b""),
        (hdr("was-file/inner", Kind::File), b"i"),
        (hdr("was-dir", Kind::File), b"now a file"),
        (hdr("merge/", Kind::Dir), b""),
        (setuid, b"s"),
        (hdr("fifo", Kind::Fifo), b""),
    ]);
    sb.apply(&tar, WhiteoutStyle::Apply).unwrap();
    assert!(sb.path("was-file").is_dir());
    assert_eq!(fs::read(sb.path("was-dir")).unwrap(), b"now a file");
    assert_eq!(fs::read(sb.path("merge/old")).unwrap(), b"o");
    let m = fs::metadata(sb.path("merge/suid")).unwrap();
    assert_eq!(
        m.mode() & 0o7777,
        0o6755,
        "mode set after chown keeps setuid"
    );
    if rustix::process::geteuid().is_root() {
        assert_eq!((m.uid(), m.gid()), (1000, 1000));
    }
    assert_eq!(
        fs::metadata(sb.path("merge")).unwrap().mtime(),
        1_000_000_000
    );
    sb.assert_outside_untouched();
    // An existing symlink in the root is replaced by a file entry, not written through.
    symlink(sb.outer.path().join("sentinel"), sb.path("lnk")).unwrap();
    sb.apply(
        &raw_tar(&[(hdr("lnk", Kind::File), b"new")]),
        WhiteoutStyle::Apply,
    )
    .unwrap();
    sb.assert_outside_untouched();
}
