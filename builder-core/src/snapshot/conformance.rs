//! One conformance suite, instantiated for both snapshotters. The tests need root (overlay mounts,
//! whiteout devices, chown): without it they are skipped with a message, unless
//! `KILN_REQUIRE_PRIVILEGED=1` makes that a failure.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};

use super::*;
use crate::changes::Change;

fn privileged(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("KILN_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1") {
        panic!("{test}: KILN_REQUIRE_PRIVILEGED=1 but not running as root");
    }
    eprintln!("skipping {test}: needs root");
    false
}

fn up(p: &str) -> Change {
    Change::Upsert(PathBuf::from(p))
}
fn del(p: &str) -> Change {
    Change::Delete(PathBuf::from(p))
}
fn opq(p: &str) -> Change {
    Change::Opaque(PathBuf::from(p))
}

fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn listing(root: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let content = if e.file_type().is_file() {
                std::fs::read_to_string(e.path()).unwrap()
            } else if e.file_type().is_dir() {
                "<dir>".into()
            } else {
                "<other>".into()
            };
            (rel, content)
        })
        .collect();
    v.sort();
    v
}

fn base(s: &dyn Snapshotter) {
    let a = s.prepare(None).unwrap();
    let r = a.root().to_path_buf();
    for (p, d) in [
        ("keep", "k"),
        ("mod", "m"),
        ("del", "d"),
        ("dir/x", "x"),
        ("rmdir/z", "z"),
        ("d2f/f", "f"),
        ("f2d", "file"),
        ("opq/o1", "1"),
        ("opq/o2", "2"),
    ] {
        write(&r, p, d);
    }
    s.commit(a, "base").unwrap();
}

pub(super) fn empty_parent(s: &dyn Snapshotter) {
    let a = s.prepare(None).unwrap();
    assert_eq!(s.changes(&a).unwrap(), vec![]);
    write(a.root(), "a", "1");
    write(a.root(), "d/b", "2");
    assert_eq!(s.changes(&a).unwrap(), vec![up("a"), up("d"), up("d/b")]);
    s.commit(a, "k").unwrap();
    assert!(s.exists("k"));
    assert_eq!(s.parent("k").unwrap(), None);
    assert!(!s.exists("other"));
}

pub(super) fn changes_are_exact(s: &dyn Snapshotter) {
    base(s);
    let a = s.prepare(Some("base")).unwrap();
    assert_eq!(s.changes(&a).unwrap(), vec![], "unchanged child");
    let r = a.root().to_path_buf();
    std::fs::write(r.join("mod"), "modified").unwrap();
    std::fs::remove_file(r.join("del")).unwrap();
    write(&r, "new", "n");
    write(&r, "newdir/n", "n");
    std::fs::remove_dir_all(r.join("rmdir")).unwrap();
    std::fs::remove_dir_all(r.join("d2f")).unwrap();
    write(&r, "d2f", "now a file");
    std::fs::remove_file(r.join("f2d")).unwrap();
    write(&r, "f2d/c", "c");
    std::fs::remove_dir_all(r.join("opq")).unwrap();
    write(&r, "opq/o3", "3");
    assert_eq!(
        s.changes(&a).unwrap(),
        vec![
            up("d2f"),
            del("del"),
            up("f2d"),
            up("f2d/c"),
            up("mod"),
            up("new"),
            up("newdir"),
            up("newdir/n"),
            opq("opq"),
            up("opq/o3"),
            del("rmdir"),
        ]
    );
    let expect = listing(&r);
    s.commit(a, "child").unwrap();
    assert_eq!(s.parent("child").unwrap().as_deref(), Some("base"));
    // A child of the committed snapshot sees exactly its content.
    let b = s.prepare(Some("child")).unwrap();
    assert_eq!(listing(b.root()), expect);
    drop(b);
    let v = s.view("child").unwrap();
    assert_eq!(listing(v.path()), expect);
}

pub(super) fn modify_in_subdir_reports_parents(s: &dyn Snapshotter) {
    base(s);
    let a = s.prepare(Some("base")).unwrap();
    std::fs::write(a.root().join("dir/x"), "changed!").unwrap();
    assert_eq!(s.changes(&a).unwrap(), vec![up("dir/x")]);
    write(a.root(), "dir/new", "n");
    assert_eq!(
        s.changes(&a).unwrap(),
        vec![up("dir"), up("dir/new"), up("dir/x")]
    );
}

pub(super) fn deep_chain(s: &dyn Snapshotter) {
    let mut parent: Option<String> = None;
    for i in 0..100 {
        let a = s.prepare(parent.as_deref()).unwrap();
        write(a.root(), &format!("l{i:03}"), &i.to_string());
        let key = format!("sha256:{i:064x}");
        s.commit(a, &key).unwrap();
        parent = Some(key);
    }
    let top = parent.unwrap();
    let a = s.prepare(Some(&top)).unwrap();
    assert_eq!(std::fs::read_to_string(a.root().join("l000")).unwrap(), "0");
    assert_eq!(listing(a.root()).len(), 100);
    let v = s.view(&top).unwrap();
    assert_eq!(listing(v.path()).len(), 100);
}

fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

type Meta = (
    u32,
    u32,
    u32,
    i64,
    i64,
    u64,
    Vec<(std::ffi::OsString, Vec<u8>)>,
);

fn meta(p: &Path) -> Meta {
    let m = std::fs::symlink_metadata(p).unwrap();
    let x = super::copytree::xattrs(p).unwrap();
    (
        m.mode(),
        m.uid(),
        m.gid(),
        m.mtime(),
        m.mtime_nsec(),
        m.rdev(),
        x,
    )
}

pub(super) fn metadata_preserved(s: &dyn Snapshotter) {
    let a = s.prepare(None).unwrap();
    let r = a.root().to_path_buf();
    write(&r, "bin/tool", "#!/bin/sh\n");
    let tool = r.join("bin/tool");
    std::os::unix::fs::chown(&tool, Some(1000), Some(1001)).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::lsetxattr(&tool, "user.kiln", b"v", rustix::fs::XattrFlags::empty()).unwrap();
    rustix::fs::lsetxattr(&tool, "trusted.kiln", b"t", rustix::fs::XattrFlags::empty()).unwrap();
    std::fs::hard_link(&tool, r.join("bin/tool2")).unwrap();
    std::os::unix::fs::symlink("tool", r.join("bin/link")).unwrap();
    std::os::unix::fs::lchown(r.join("bin/link"), Some(7), Some(8)).unwrap();
    rustix::fs::mknodat(
        CWD,
        r.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        r.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::create_dir(r.join("tmp")).unwrap();
    std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    for p in ["bin/tool", "bin/link", "null", "fifo", "tmp", "bin"] {
        set_mtime(&r.join(p), 1_600_000_000, 123_456_789);
    }
    let paths = [
        "bin",
        "bin/tool",
        "bin/tool2",
        "bin/link",
        "null",
        "fifo",
        "tmp",
    ];
    let before: Vec<Meta> = paths.iter().map(|p| meta(&r.join(p))).collect();
    s.commit(a, "meta").unwrap();

    let check = |root: &Path| {
        let after: Vec<Meta> = paths.iter().map(|p| meta(&root.join(p))).collect();
        assert_eq!(after, before);
        let t1 = std::fs::metadata(root.join("bin/tool")).unwrap();
        let t2 = std::fs::metadata(root.join("bin/tool2")).unwrap();
        assert_eq!(t1.ino(), t2.ino(), "hard link lost");
        assert_eq!(
            std::fs::read_link(root.join("bin/link")).unwrap(),
            Path::new("tool")
        );
    };
    let b = s.prepare(Some("meta")).unwrap();
    check(b.root());
    assert_eq!(s.changes(&b).unwrap(), vec![]);
    s.commit(b, "meta2").unwrap();
    check(s.view("meta2").unwrap().path());
}

pub(super) fn removal(s: &dyn Snapshotter) {
    base(s);
    let a = s.prepare(Some("base")).unwrap();
    write(a.root(), "c", "c");
    s.commit(a, "child").unwrap();
    s.remove("child").unwrap();
    assert!(!s.exists("child"));
    assert!(matches!(
        s.remove("child"),
        Err(SnapshotError::NotFound { .. })
    ));
    s.remove("base").unwrap();
    assert!(!s.exists("base"));
    assert!(matches!(
        s.prepare(Some("base")),
        Err(SnapshotError::NotFound { .. })
    ));
}

pub(super) fn commit_same_key_twice_and_concurrent_prepare(s: &dyn Snapshotter) {
    base(s);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|i| {
                sc.spawn(move || {
                    let a = s.prepare(Some("base")).unwrap();
                    write(a.root(), "who", &i.to_string());
                    a
                })
            })
            .collect();
        let actives: Vec<Active> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        for a in actives {
            s.commit(a, "same").unwrap();
        }
    });
    let v = s.view("same").unwrap();
    let who = std::fs::read_to_string(v.path().join("who")).unwrap();
    assert_eq!(who, "0", "the first commit wins");
}

pub(super) fn import_layers(s: &dyn Snapshotter) {
    s.import("l1", None, &mut |root, _| {
        root.create_file(Path::new("etc/a"), 0o644)?;
        root.create_file(Path::new("etc/b"), 0o644)?;
        Ok(())
    })
    .unwrap();
    s.import("l2", Some("l1"), &mut |root, style| {
        match style {
            WhiteoutStyle::Overlay => {
                root.mknod(Path::new("etc/a"), FileType::CharacterDevice, 0, 0)?
            }
            WhiteoutStyle::Apply => root.remove_all(Path::new("etc/a"))?,
        }
        root.create_file(Path::new("etc/c"), 0o600)?;
        Ok(())
    })
    .unwrap();
    // An existing key is not filled again.
    s.import("l2", Some("l1"), &mut |_, _| Err("filled twice".into()))
        .unwrap();
    let e = s
        .import("bad", None, &mut |_, _| Err("boom".into()))
        .unwrap_err();
    assert!(crate::report::chain(&e).contains("boom"), "{e}");
    assert!(!s.exists("bad"));
    let v = s.view("l2").unwrap();
    let names: Vec<String> = listing(v.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["etc", "etc/b", "etc/c"]);
}

/// Leftovers of a killed build: an unlocked temporary entry (with a mounted overlay for the
/// overlay snapshotter) and a directory without a lock. A live entry survives.
pub(super) fn crash_leftovers_cleaned(dir: &Path, open: fn(&Path) -> Box<dyn Snapshotter>) {
    let s = open(dir);
    base(s.as_ref());
    let live = s.prepare(Some("base")).unwrap();
    let tmp = dir.join("tmp");
    let dead = tmp.join("dead");
    std::fs::create_dir_all(dead.join("merged")).unwrap();
    std::fs::write(tmp.join("dead.lock"), "").unwrap();
    if s.name() == "overlayfs" {
        for d in ["upper", "work"] {
            std::fs::create_dir(dead.join(d)).unwrap();
        }
        super::overlay::mount_overlay(
            &[dir
                .join("snapshots")
                .join(hex::encode(sha2::Sha256::digest(b"base")))
                .join("fs")],
            Some((&dead.join("upper"), &dead.join("work"))),
            &dead.join("merged"),
        )
        .unwrap();
        assert!(dead.join("merged/keep").exists());
    }
    std::fs::create_dir_all(tmp.join("orphan/fs")).unwrap();
    let again = open(dir);
    assert!(!dead.exists(), "stale entry kept");
    assert!(!tmp.join("dead.lock").exists());
    assert!(!tmp.join("orphan").exists());
    assert!(live.root().join("keep").exists(), "live entry removed");
    assert!(again.exists("base"));
    drop(live);
    // Everything the live entry had is gone once it is dropped.
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

use sha2::Digest;

macro_rules! conformance {
    ($name:ident, $open:expr) => {
        mod $name {
            use super::*;

            fn open(dir: &Path) -> Box<dyn Snapshotter> {
                Box::new(($open)(dir).unwrap())
            }

            macro_rules! case {
                ($case:ident) => {
                    #[test]
                    fn $case() {
                        if !privileged(stringify!($case)) {
                            return;
                        }
                        let dir = tempfile::tempdir().unwrap();
                        let s = open(dir.path());
                        super::$case(s.as_ref());
                    }
                };
            }

            case!(empty_parent);
            case!(changes_are_exact);
            case!(modify_in_subdir_reports_parents);
            case!(deep_chain);
            case!(metadata_preserved);
            case!(removal_rules);
            case!(commit_same_key_twice_and_concurrent_prepare);
            case!(import_layers);

            #[test]
            fn crash_leftovers() {
                if !privileged("crash_leftovers") {
                    return;
                }
                let dir = tempfile::tempdir().unwrap();
                super::crash_leftovers_cleaned(dir.path(), open);
            }
        }
    };
}

/// Removal works alike except that an overlay layer with children cannot go.
pub(super) fn removal_rules(s: &dyn Snapshotter) {
    if s.name() != "copy" {
        base(s);
        let a = s.prepare(Some("base")).unwrap();
        s.commit(a, "child").unwrap();
        assert!(matches!(s.remove("base"), Err(SnapshotError::InUse { .. })));
        s.remove("child").unwrap();
        s.remove("base").unwrap();
        return;
    }
    removal(s);
}

conformance!(overlay, OverlaySnapshotter::open);
conformance!(copy, CopySnapshotter::open);
conformance!(fuse, |d: &Path| {
    let program = crate::snapshot::fuse::program()
        .expect("fuse-overlayfs on PATH (Debian package fuse-overlayfs)");
    OverlaySnapshotter::open_fuse(d, program)
});

#[test]
fn overlay_probe_works_here_as_root() {
    if !privileged("overlay_probe_works_here_as_root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(super::overlay::probe(dir.path()).is_ok());
    let s = super::open(dir.path()).unwrap();
    assert_eq!(s.name(), "overlayfs");
    // The probe leaves nothing behind but the remembered answer.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".driver" && n != ".boot-id" && n != ".boot-id.lock")
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".driver")).unwrap(),
        "overlayfs"
    );
    // A second open reads the answer instead of mounting again.
    assert_eq!(super::open(dir.path()).unwrap().name(), "overlayfs");
}
