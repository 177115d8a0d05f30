//! Tests of the confined root: nothing resolves or writes outside it.

use super::*;
use std::io::{Read, Write};

fn setup() -> (tempfile::TempDir, tempfile::TempDir, Root) {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"host secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = Root::open(dir.path()).unwrap();
    (outside, dir, root)
}

#[test]
fn clean_clamps_parent_dirs() {
    assert_eq!(
        clean(Path::new("/../../etc/passwd")),
        PathBuf::from("etc/passwd")
    );
    assert_eq!(clean(Path::new("a/./b/../c")), PathBuf::from("a/c"));
    assert_eq!(clean(Path::new("..")), PathBuf::new());
}

#[test]
fn absolute_symlink_resolves_inside_root() {
    let (outside, dir, root) = setup();
    // An absolute link to the outside directory resolves inside the root.
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
    let err = root.open_file(Path::new("escape/secret")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // Writing through it creates the file inside the root, not outside.
    let mut f = root.create_file(Path::new("escape/new"), 0o644).unwrap();
    f.write_all(b"x").unwrap();
    assert!(!outside.path().join("new").exists());
    let inside = dir
        .path()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("new");
    assert!(inside.exists(), "{}", inside.display());
}

#[test]
fn relative_symlink_with_dotdot_stays_inside() {
    let (_outside, dir, root) = setup();
    std::os::unix::fs::symlink("../../../../../../../", dir.path().join("up")).unwrap();
    let fd = root.open_dir(Path::new("up")).unwrap();
    let st = rustix::fs::fstat(&fd).unwrap();
    let root_st = rustix::fs::fstat(root.as_fd()).unwrap();
    assert_eq!((st.st_dev, st.st_ino), (root_st.st_dev, root_st.st_ino));
}

#[test]
fn create_file_replaces_symlink_instead_of_following() {
    let (outside, dir, root) = setup();
    let target = outside.path().join("secret");
    std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
    root.create_file(Path::new("link"), 0o600)
        .unwrap()
        .write_all(b"new")
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"host secret");
    let meta = std::fs::symlink_metadata(dir.path().join("link")).unwrap();
    assert!(meta.is_file());
}

#[test]
fn mkdir_all_and_remove_all() {
    let (_o, dir, root) = setup();
    root.mkdir_all(Path::new("/a/b/c"), 0o755).unwrap();
    root.create_file(Path::new("a/b/c/f"), 0o644).unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("a/b/rootlink")).unwrap();
    root.remove_all(Path::new("a")).unwrap();
    assert!(!dir.path().join("a").exists());
    root.remove_all(Path::new("missing/x")).unwrap();
}

#[test]
fn mkdir_all_sets_exact_mode_and_xattr_lands_on_the_file() {
    let (_o, dir, root) = setup();
    root.mkdir_all(Path::new("m/n"), 0o750).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("m/n"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750);
    root.create_file(Path::new("m/f"), 0o644).unwrap();
    root.set_xattr(Path::new("m/f"), OsStr::new("user.kiln"), b"v")
        .unwrap();
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(dir.path().join("m/f"), "user.kiln", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"v");
}

#[test]
fn hard_link_and_read_back() {
    let (_o, dir, root) = setup();
    root.create_file(Path::new("f"), 0o644)
        .unwrap()
        .write_all(b"data")
        .unwrap();
    root.hard_link(Path::new("f"), Path::new("d/g")).unwrap();
    let mut s = String::new();
    root.open_file(Path::new("d/g"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "data");
    let a = std::fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&a), 2);
}

#[test]
fn real_path_is_inside_root() {
    let (_o, dir, root) = setup();
    std::os::unix::fs::symlink("/data", dir.path().join("etc")).unwrap();
    // mkdir -p through a dangling absolute link creates its target inside the root.
    root.mkdir_all(Path::new("etc/sub"), 0o755).unwrap();
    assert!(dir.path().join("etc").is_symlink());
    assert!(dir.path().join("data/sub").is_dir());
    let p = root.real_path(Path::new("etc/sub")).unwrap();
    assert_eq!(p, dir.path().canonicalize().unwrap().join("data/sub"));
    // A link to itself is a loop, reported as such rather than followed forever.
    std::os::unix::fs::symlink("/loop", dir.path().join("loop")).unwrap();
    let err = root.mkdir_all(Path::new("loop/x"), 0o755).unwrap_err();
    assert_eq!(err.source.raw_os_error(), Some(libc::ELOOP), "{err}");
}
