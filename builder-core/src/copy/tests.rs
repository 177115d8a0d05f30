//! COPY/ADD tests over temporary contexts and root filesystems.

use super::*;
use crate::chmod::ChmodSpec;
use crate::context::{BuildContext, CachingHasher, ContextIndex, Sha256Digest, StatCache};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

pub(super) struct Fixture {
    _dirs: Vec<tempfile::TempDir>,
    pub(super) ctx: BuildContext,
    pub(super) index: ContextIndex,
    pub(super) dest_dir: PathBuf,
    pub(super) dest: Root,
    pub(super) outside: PathBuf,
}

pub(super) fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// A context built by `setup`, an empty destination root and a sentinel directory outside both.
pub(super) fn fixture(setup: impl FnOnce(&Path)) -> Fixture {
    let ctx_dir = tempfile::tempdir().unwrap();
    let dest_dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "sentinel", b"host");
    setup(ctx_dir.path());
    let ctx = BuildContext::open(ctx_dir.path(), None).unwrap();
    let index = ctx.walk().unwrap();
    let dest = Root::open(dest_dir.path()).unwrap();
    Fixture {
        dest_dir: dest_dir.path().to_path_buf(),
        outside: outside.path().to_path_buf(),
        _dirs: vec![ctx_dir, dest_dir, outside],
        ctx,
        index,
        dest,
    }
}

impl Fixture {
    fn copy(&self, req: &CopyRequest) -> Result<CopyOutput, CopyError> {
        let hasher = CachingHasher::new(StatCache::new());
        let src = ContextSource::new(self.ctx.root(), &self.index, &hasher);
        let sel = select(&src, req)?;
        apply(&src, &sel, req, &self.dest, &ApplyOptions::default())
    }
    pub(super) fn digest(&self, req: &CopyRequest) -> Sha256Digest {
        let hasher = CachingHasher::new(StatCache::new());
        let src = ContextSource::new(self.ctx.root(), &self.index, &hasher);
        select(&src, req).unwrap().digest(&src, req).unwrap()
    }
    pub(super) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dest_dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
    pub(super) fn exists(&self, rel: &str) -> bool {
        self.dest_dir.join(rel).symlink_metadata().is_ok()
    }
    pub(super) fn assert_outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sentinel"]);
        assert_eq!(
            std::fs::read(self.outside.join("sentinel")).unwrap(),
            b"host"
        );
    }
}

pub(super) fn paths(out: &CopyOutput) -> Vec<String> {
    out.written
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn basic(dir: &Path) {
    write(dir, "a.txt", b"A");
    write(dir, "b.txt", b"B");
    write(dir, "src/main.rs", b"fn main() {}");
    write(dir, "src/lib/mod.rs", b"mod x;");
    write(dir, "docs/readme.md", b"docs");
}

#[test]
fn destination_rules() {
    // (sources, dest, workdir, expected files with contents)
    type Case = (
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    let cases: &[Case] = &[
        (&["a.txt"], "/out/", "/", &[("out/a.txt", "A")]),
        (&["a.txt"], "/out", "/", &[("out", "A")]),
        (&["a.txt"], "renamed", "/work", &[("work/renamed", "A")]),
        (&["a.txt"], ".", "/work", &[("work/a.txt", "A")]),
        (
            &["a.txt", "b.txt"],
            "/multi",
            "/",
            &[("multi/a.txt", "A"), ("multi/b.txt", "B")],
        ),
        (
            &["src"],
            "/app",
            "/",
            &[
                ("app/main.rs", "fn main() {}"),
                ("app/lib/mod.rs", "mod x;"),
            ],
        ),
        (&["src/"], "/app/", "/", &[("app/main.rs", "fn main() {}")]),
        (
            &["."],
            "/all/",
            "/",
            &[("all/a.txt", "A"), ("all/src/lib/mod.rs", "mod x;")],
        ),
        (&["/src/../a.txt"], "/x/", "/", &[("x/a.txt", "A")]),
        (&["../../a.txt"], "../../y/", "/w", &[("y/a.txt", "A")]),
        (
            &["*.txt"],
            "/glob/",
            "/",
            &[("glob/a.txt", "A"), ("glob/b.txt", "B")],
        ),
        (&["s*"], "/g2/", "/", &[("g2/main.rs", "fn main() {}")]),
        (&["*/*.rs"], "/g3/", "/", &[("g3/main.rs", "fn main() {}")]),
        (
            &["[ab].txt"],
            "/g4/",
            "/",
            &[("g4/a.txt", "A"), ("g4/b.txt", "B")],
        ),
    ];
    for (sources, dest, workdir, want) in cases {
        let f = fixture(basic);
        let mut req = CopyRequest::new(sources, dest);
        req.workdir = workdir.to_string();
        f.copy(&req)
            .unwrap_or_else(|e| panic!("{sources:?} -> {dest}: {e}"));
        for (path, content) in *want {
            assert_eq!(f.read(path), *content, "{sources:?} -> {dest}: {path}");
        }
    }
}

#[test]
fn file_into_existing_directory_and_written_paths() {
    let f = fixture(basic);
    std::fs::create_dir_all(f.dest_dir.join("existing")).unwrap();
    let out = f.copy(&CopyRequest::new(&["a.txt"], "/existing")).unwrap();
    assert_eq!(f.read("existing/a.txt"), "A");
    assert_eq!(paths(&out), ["existing/a.txt"]);
    let out = f.copy(&CopyRequest::new(&["src"], "/new/deep/")).unwrap();
    assert_eq!(
        paths(&out),
        [
            "new",
            "new/deep",
            "new/deep/lib",
            "new/deep/lib/mod.rs",
            "new/deep/main.rs"
        ]
    );
    let mode = std::fs::metadata(f.dest_dir.join("new")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o755);
}

#[test]
fn only_a_directory_lands_on_a_directory() {
    let f = fixture(|dir| {
        write(dir, "file/x", b"F");
        std::fs::create_dir_all(dir.join("link")).unwrap();
        symlink("target", dir.join("link/x")).unwrap();
        std::fs::create_dir_all(dir.join("fifo")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo/x"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        write(dir, "dir/x/inner", b"D");
    });
    std::fs::create_dir_all(f.dest_dir.join("out/x/kept")).unwrap();
    for src in ["file", "link", "fifo"] {
        match f.copy(&CopyRequest::new(&[src], "/out")) {
            Err(CopyError::ReplaceDir { path }) => assert_eq!(path, Path::new("out/x"), "{src}"),
            other => panic!("{src}: {other:?}"),
        }
    }
    f.copy(&CopyRequest::new(&["dir"], "/out")).unwrap();
    assert_eq!(f.read("out/x/inner"), "D");
    assert!(f.exists("out/x/kept"));
}

#[test]
fn missing_sources_are_errors_naming_them() {
    let f = fixture(basic);
    for src in ["nope.txt", "*.none", "src/*.py", "nodir/*"] {
        let err = f
            .copy(&CopyRequest::new(&[src], "/x/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(src), "{src}: {err}");
        assert!(err.contains("no such file or directory"), "{err}");
    }
}

#[test]
fn dockerignored_entries_do_not_exist_for_copy() {
    let f = fixture(|d| {
        basic(d);
        write(d, ".dockerignore", b"secret.txt\ndocs\n");
        write(d, "secret.txt", b"S");
        symlink("secret.txt", d.join("link-to-secret")).unwrap();
    });
    assert!(f.copy(&CopyRequest::new(&["secret.txt"], "/x/")).is_err());
    assert!(
        f.copy(&CopyRequest::new(&["link-to-secret"], "/x/"))
            .is_err()
    );
    f.copy(&CopyRequest::new(&["."], "/all/")).unwrap();
    assert!(!f.exists("all/secret.txt"));
    assert!(!f.exists("all/docs"));
    assert!(f.exists("all/.dockerignore"));
    assert_eq!(
        std::fs::read_link(f.dest_dir.join("all/link-to-secret")).unwrap(),
        Path::new("secret.txt")
    );
}

#[test]
fn context_symlinks_never_reach_the_host() {
    let f = fixture(|d| {
        basic(d);
        symlink("/etc", d.join("evil")).unwrap();
        symlink("../../../../../../../../", d.join("up")).unwrap();
        symlink("a.txt", d.join("good")).unwrap();
    });
    // Copied as part of a directory: symlinks stay symlinks.
    f.copy(&CopyRequest::new(&["."], "/ctx/")).unwrap();
    assert_eq!(
        std::fs::read_link(f.dest_dir.join("ctx/evil")).unwrap(),
        Path::new("/etc")
    );
    assert!(!f.exists("ctx/evil/passwd") || f.dest_dir.join("ctx/evil").is_symlink());
    // Named explicitly: followed, but inside the context only.
    assert!(f.copy(&CopyRequest::new(&["evil/passwd"], "/x/")).is_err());
    assert!(f.copy(&CopyRequest::new(&["evil"], "/x/")).is_err());
    f.copy(&CopyRequest::new(&["good"], "/g")).unwrap();
    assert_eq!(f.read("g"), "A");
    assert!(!f.dest_dir.join("g").is_symlink());
    // `up` resolves to the context root itself.
    f.copy(&CopyRequest::new(&["up/a.txt"], "/u/")).unwrap();
    assert_eq!(f.read("u/a.txt"), "A");
    f.assert_outside_untouched();
}

#[test]
fn destination_symlinks_stay_inside_the_root() {
    for link in ["/", "../../..", "/../.."] {
        let f = fixture(basic);
        symlink(link, f.dest_dir.join("app")).unwrap();
        let out_link = f.outside.join("x");
        symlink(&out_link, f.dest_dir.join("escape")).unwrap();
        let out = f
            .copy(&CopyRequest::new(&["a.txt", "src"], "/app/"))
            .unwrap();
        // /app is the root: the files land at the top of the destination root.
        assert_eq!(f.read("a.txt"), "A", "{link}");
        // A directory source copies its contents.
        assert_eq!(f.read("main.rs"), "fn main() {}");
        assert!(
            paths(&out).contains(&"a.txt".to_string()),
            "{:?}",
            paths(&out)
        );
        // A file written over a symlink replaces the link, never writes through it.
        f.copy(&CopyRequest::new(&["b.txt"], "/escape")).unwrap();
        assert_eq!(f.read("escape"), "B");
        // Writing below an absolute symlink to a host path creates it inside the root.
        f.copy(&CopyRequest::new(&["b.txt"], "/escape-dir/"))
            .unwrap();
        f.assert_outside_untouched();
    }
}

#[test]
fn ownership_modes_and_chown() {
    let f = fixture(|d| {
        basic(d);
        std::fs::set_permissions(d.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::lchown(d.join("a.txt"), Some(1234), Some(5678)).unwrap();
    });
    write(
        &f.dest_dir,
        "etc/passwd",
        b"app:x:1000:1001::/home/app:/bin/sh\n",
    );
    write(&f.dest_dir, "etc/group", b"staff:x:50:\n");
    f.copy(&CopyRequest::new(&["a.txt"], "/plain/")).unwrap();
    let m = std::fs::metadata(f.dest_dir.join("plain/a.txt")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o640));

    let mut req = CopyRequest::new(&["a.txt", "src"], "/owned/sub/");
    req.chown = Some("app:staff".into());
    req.chmod = Some(ChmodSpec::parse("u+x,g-r").unwrap());
    let out = f.copy(&req).unwrap();
    for p in [
        "owned",
        "owned/sub",
        "owned/sub/a.txt",
        "owned/sub/main.rs",
        "owned/sub/lib",
    ] {
        let m = std::fs::metadata(f.dest_dir.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1000, 50), "{p}");
        assert_eq!(out.owners[Path::new(p)], (1000, 50), "{p}");
    }
    let mode = |p: &str| std::fs::metadata(f.dest_dir.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("owned/sub/a.txt"), 0o700);
    assert_eq!(mode("owned/sub/lib"), 0o715);
    assert_eq!(mode("owned"), 0o755, "created parents are not chmod'ed");

    let mut req = CopyRequest::new(&["a.txt"], "/x/");
    req.chown = Some("nobody".into());
    let err = crate::report::chain(&f.copy(&req).unwrap_err());
    assert!(
        err.contains("nobody") && err.contains("/etc/passwd"),
        "{err}"
    );
}

#[test]
fn from_a_stage_keeps_owners_and_hard_links() {
    let stage = tempfile::tempdir().unwrap();
    write(stage.path(), "app/bin", b"binary");
    std::fs::hard_link(stage.path().join("app/bin"), stage.path().join("app/bin2")).unwrap();
    std::os::unix::fs::lchown(stage.path().join("app/bin"), Some(7), Some(8)).unwrap();
    symlink("bin", stage.path().join("app/link")).unwrap();
    let stage_root = Root::open(stage.path()).unwrap();
    let src = RootfsSource::new(&stage_root);
    let dest_dir = tempfile::tempdir().unwrap();
    let dest = Root::open(dest_dir.path()).unwrap();
    let req = CopyRequest::new(&["/app"], "/opt/app");
    let sel = select(&src, &req).unwrap();
    apply(&src, &sel, &req, &dest, &ApplyOptions::default()).unwrap();
    let a = std::fs::metadata(dest_dir.path().join("opt/app/bin")).unwrap();
    let b = std::fs::metadata(dest_dir.path().join("opt/app/bin2")).unwrap();
    assert_eq!((a.uid(), a.gid()), (7, 8));
    assert_eq!(a.ino(), b.ino(), "hard link preserved");
    assert!(dest_dir.path().join("opt/app/link").is_symlink());
}

#[test]
fn exclude_and_parents() {
    let f = fixture(|d| {
        basic(d);
        write(d, "src/x.md", b"md");
        write(d, "src/lib/y.md", b"md");
        write(d, "a/b/c.txt", b"c");
        write(d, "a/b/d.log", b"d");
        write(d, "a/e/f.txt", b"f");
    });
    let mut req = CopyRequest::new(&["src"], "/e1/");
    req.excludes = vec!["*.md".into()];
    f.copy(&req).unwrap();
    assert!(!f.exists("e1/x.md"));
    assert!(
        f.exists("e1/lib/y.md"),
        "*.md only matches at the top, as in BuildKit"
    );
    req.excludes = vec!["**/*.md".into(), "lib".into()];
    req.dest = "/e2/".into();
    f.copy(&req).unwrap();
    assert!(!f.exists("e2/x.md") && !f.exists("e2/lib"));
    assert!(f.exists("e2/main.rs"));
    let mut req = CopyRequest::new(&["*.txt"], "/e3/");
    req.excludes = vec!["b.txt".into()];
    f.copy(&req).unwrap();
    assert!(f.exists("e3/a.txt") && !f.exists("e3/b.txt"));

    let mut req = CopyRequest::new(&["a/b/c.txt", "a/*/f.txt"], "/p1/");
    req.parents = true;
    f.copy(&req).unwrap();
    assert_eq!(f.read("p1/a/b/c.txt"), "c");
    assert_eq!(f.read("p1/a/e/f.txt"), "f");
    assert!(!f.exists("p1/a/b/d.log"));
    let mut req = CopyRequest::new(&["a/./b"], "/p2/");
    req.parents = true;
    f.copy(&req).unwrap();
    assert_eq!(f.read("p2/b/c.txt"), "c");
    assert_eq!(f.read("p2/b/d.log"), "d");
    assert!(!f.exists("p2/a"));
}

#[test]
fn cache_digest_covers_layer_metadata_only() {
    let f = fixture(basic);
    let req = CopyRequest::new(&["."], "/app/");
    let base = f.digest(&req);
    assert_eq!(base, f.digest(&req), "deterministic");
    let mut other = req.clone();
    other.dest = "/other/".into();
    assert_ne!(base, f.digest(&other));
    let mut chowned = req.clone();
    chowned.chown = Some("1:1".into());
    assert_ne!(base, f.digest(&chowned));
    let mut linked = req.clone();
    linked.link = true;
    assert_ne!(base, f.digest(&linked));

    let ctx = f.ctx.root().path().to_path_buf();
    let again = |f: &Fixture| {
        let ctx = BuildContext::open(f.ctx.root().path(), None).unwrap();
        let index = ctx.walk().unwrap();
        let hasher = CachingHasher::new(StatCache::new());
        let src = ContextSource::new(ctx.root(), &index, &hasher);
        select(&src, &req).unwrap().digest(&src, &req).unwrap()
    };
    // mtime alone does not count.
    let file = std::fs::File::options()
        .write(true)
        .open(ctx.join("a.txt"))
        .unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(again(&f), base);
    // Mode, content and a new file do; an ignored file does not.
    std::fs::set_permissions(ctx.join("a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let after_mode = again(&f);
    assert_ne!(after_mode, base);
    std::fs::write(ctx.join("a.txt"), b"changed").unwrap();
    let after_content = again(&f);
    assert_ne!(after_content, after_mode);
    std::fs::write(ctx.join(".dockerignore"), b"ignored\n").unwrap();
    let with_ignore = again(&f);
    std::fs::write(ctx.join("ignored"), b"x").unwrap();
    assert_eq!(again(&f), with_ignore);
}

pub(super) struct RecordingExtractor(pub(super) std::sync::Mutex<Vec<u8>>);

impl ArchiveExtractor for RecordingExtractor {
    fn extract(
        &self,
        dest: &Root,
        dest_dir: &Path,
        tar: &mut dyn std::io::Read,
        _owner: Option<(u32, u32)>,
    ) -> Result<Vec<PathBuf>, String> {
        let mut data = Vec::new();
        tar.read_to_end(&mut data).map_err(|e| e.to_string())?;
        *self.0.lock().unwrap() = data;
        dest.create_file(&dest_dir.join("extracted"), 0o644)
            .map_err(|e| e.to_string())?;
        Ok(vec![dest_dir.join("extracted")])
    }
}

#[test]
fn a_large_directory_is_copied_on_several_threads_like_in_order() {
    // Over `PARALLEL_MIN` entries: files are created by several threads after the directories.
    let f = fixture(|d| {
        for i in 0..700 {
            write(
                d,
                &format!("src/m{:02}/f{i:03}.txt", i % 30),
                format!("{i}").as_bytes(),
            );
        }
        std::fs::create_dir_all(d.join("src/empty")).unwrap();
        symlink("m00/f000.txt", d.join("src/link")).unwrap();
        std::fs::set_permissions(
            d.join("src/m01/f001.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    });
    // `/app` exists and holds a file the copy replaces.
    write(&f.dest_dir, "app/src/m02/f002.txt", b"old");
    let out = f.copy(&CopyRequest::new(&["."], "/app")).unwrap();
    assert_eq!(
        out.written.len(),
        1 + 1 + 30 + 1 + 1 + 700,
        "{:?}",
        &out.written[..5]
    );
    assert!(out.written.is_sorted());
    for i in 0..700 {
        assert_eq!(
            f.read(&format!("app/src/m{:02}/f{i:03}.txt", i % 30)),
            format!("{i}")
        );
    }
    let src = f.ctx.root().path();
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    let (a, b) = (
        meta(&src.join("src/m05/f005.txt")),
        meta(&f.dest_dir.join("app/src/m05/f005.txt")),
    );
    assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
    assert_eq!(b.uid(), 0);
    assert_eq!(
        meta(&f.dest_dir.join("app/src/m01/f001.txt")).mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_link(f.dest_dir.join("app/src/link")).unwrap(),
        Path::new("m00/f000.txt")
    );
    // A directory nothing was created in keeps its source's time.
    let (a, b) = (
        meta(&src.join("src/empty")),
        meta(&f.dest_dir.join("app/src/empty")),
    );
    assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
    f.assert_outside_untouched();
}

#[test]
fn a_selection_shares_the_index_entries_and_names_them_relative_to_the_item() {
    let f = fixture(|d| {
        basic(d);
        write(d, "src/x.md", b"md");
    });
    let hasher = CachingHasher::new(StatCache::new());
    let src = ContextSource::new(f.ctx.root(), &f.index, &hasher);
    // The whole subtree (shared from the index) and a filtered one (collected child by child).
    let whole = select(&src, &CopyRequest::new(&["src"], "/a/")).unwrap();
    let mut req = CopyRequest::new(&["src"], "/b/");
    req.excludes = vec!["*.md".into()];
    let filtered = select(&src, &req).unwrap();
    let rels = |sel: &Selection| -> Vec<String> {
        sel.items[0]
            .contents
            .iter()
            .map(|s| s.rel().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(rels(&whole), ["lib", "lib/mod.rs", "main.rs", "x.md"]);
    assert_eq!(rels(&filtered), ["lib", "lib/mod.rs", "main.rs"]);
    for s in whole.items[0].contents.iter() {
        let in_index = f.index.get_shared(&s.entry.path).unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&s.entry, in_index),
            "{:?} is a copy",
            s.rel()
        );
    }
    let root = select(&src, &CopyRequest::new(&["."], "/c/")).unwrap();
    assert_eq!(root.items[0].contents[0].rel(), Path::new("a.txt"));
    assert_eq!(
        root.items[0]
            .contents
            .iter()
            .find(|s| s.rel() == Path::new("src/main.rs"))
            .map(|s| &s.entry.path),
        Some(&PathBuf::from("src/main.rs"))
    );
}
