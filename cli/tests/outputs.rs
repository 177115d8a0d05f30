//! Where tar outputs go (`kiln build -o type=oci|docker|tar,dest=X`, `kiln save -o X`): a regular
//! file is replaced atomically, a device or FIFO is written into and stays what it was, a symlink
//! is followed and stays a link, a directory is an error, `-` is stdout; a directory output
//! (`tar=false`) does not follow symlinks out of its destination.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{dockerfile_context, kiln};

/// A store holding `app:1`, a `FROM scratch` image with one file (no RUN, so no sandbox).
fn store_with_image() -> (tempfile::TempDir, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context("FROM scratch\nCOPY Dockerfile /Dockerfile\n");
    let out = kiln(root.path())
        .args(["build", "-q", "-t", "app:1"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (root, ctx)
}

/// The names of the entries of a tar.
fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// `mknod(2)`; whether it worked.
fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::mknod(c.as_ptr(), mode, dev) == 0 }
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_fifo_is_written_into_not_replaced() {
    let (root, ctx) = store_with_image();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    assert!(mknod(&fifo, libc::S_IFIFO | 0o600, 0), "mkfifo");
    for args in [
        vec!["save".to_string(), "app:1".into(), "-o".into()],
        vec![
            "build".to_string(),
            "-q".into(),
            ctx.path().display().to_string(),
            "-o".into(),
        ],
    ] {
        let (tx, rx) = mpsc::channel();
        let reader_path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(std::fs::read(&reader_path).unwrap());
        });
        let spec = if args[0] == "save" {
            fifo.display().to_string()
        } else {
            format!("type=oci,dest={}", fifo.display())
        };
        let out = kiln(root.path()).args(&args).arg(&spec).output().unwrap();
        let got = rx.recv_timeout(Duration::from_secs(30));
        if got.is_err() {
            // Unblock the reader so the test ends: the FIFO was replaced and never opened.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        assert_ok(&out);
        let meta = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(
            meta.file_type().is_fifo(),
            "{args:?}: the FIFO was replaced"
        );
        let bytes = got.expect("the FIFO's reader got the archive");
        assert!(
            tar_names(&bytes).iter().any(|n| n == "index.json"),
            "{args:?}"
        );
    }
}

#[test]
fn a_symlink_is_followed_and_stays_a_link() {
    let (root, ctx) = store_with_image();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.tar");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link.tar");
    std::os::unix::fs::symlink("target.tar", &link).unwrap();
    // A dangling link gets its target created.
    let dangling = dir.path().join("dangling.tar");
    std::os::unix::fs::symlink("new.tar", &dangling).unwrap();
    let out = kiln(root.path())
        .args(["save", "app:1", "-o"])
        .arg(&link)
        .output()
        .unwrap();
    assert_ok(&out);
    let out = kiln(root.path())
        .args(["build", "-q", "-o"])
        .arg(format!("type=docker,dest={}", dangling.display()))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_ok(&out);
    for (l, t) in [(&link, "target.tar"), (&dangling, "new.tar")] {
        assert!(
            std::fs::symlink_metadata(l)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_link(l).unwrap(), Path::new(t));
        let bytes = std::fs::read(dir.path().join(t)).unwrap();
        assert!(tar_names(&bytes).iter().any(|n| n == "manifest.json"));
    }
}

#[test]
fn a_character_device_stays_a_device() {
    let (root, ctx) = store_with_image();
    let dir = tempfile::tempdir().unwrap();
    // A null device of our own (root can make one); otherwise a link to the host's /dev/null.
    let node = dir.path().join("null");
    let made = mknod(&node, libc::S_IFCHR | 0o666, libc::makedev(1, 3));
    if !made {
        std::os::unix::fs::symlink("/dev/null", &node).unwrap();
    }
    for ty in ["oci", "docker", "tar"] {
        let out = kiln(root.path())
            .args(["build", "-q", "-o"])
            .arg(format!("type={ty},dest={}", node.display()))
            .arg(ctx.path())
            .output()
            .unwrap();
        assert_ok(&out);
    }
    let out = kiln(root.path())
        .args(["save", "app:1", "-o"])
        .arg(&node)
        .output()
        .unwrap();
    assert_ok(&out);
    let meta = std::fs::metadata(&node).unwrap();
    assert!(meta.file_type().is_char_device(), "the device was replaced");
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn a_directory_is_an_error_and_dash_is_stdout() {
    let (root, ctx) = store_with_image();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    std::fs::create_dir(&d).unwrap();
    for args in [
        vec![
            "save".to_string(),
            "app:1".into(),
            "-o".into(),
            d.display().to_string(),
        ],
        vec![
            "build".to_string(),
            "-q".into(),
            "-o".into(),
            format!("type=oci,dest={}", d.display()),
            ctx.path().display().to_string(),
        ],
    ] {
        let out = kiln(root.path()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&d.display().to_string()) && err.contains("is a directory"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    }
    let out = kiln(root.path())
        .args(["build", "-o", "type=tar,dest=-", "--progress", "quiet"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(tar_names(&out.stdout), vec!["Dockerfile".to_string()]);
    let out = kiln(root.path())
        .args(["save", "app:1", "-o", "-"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(tar_names(&out.stdout).iter().any(|n| n == "manifest.json"));
}

#[test]
fn a_layout_directory_does_not_follow_symlinks_out() {
    let (root, ctx) = store_with_image();
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let dest = dir.path().join("layout");
    std::fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("blobs")).unwrap();
    std::os::unix::fs::symlink(outside.join("index"), dest.join("index.json")).unwrap();
    let out = kiln(root.path())
        .args(["build", "-q", "-o"])
        .arg(format!("type=oci,tar=false,dest={}", dest.display()))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "the export wrote through a symlink out of its destination"
    );
    let index = std::fs::read(dest.join("index.json")).unwrap();
    assert!(index.starts_with(b"{"));

    // A root filesystem directory: the image's /Dockerfile replaces a symlink that stood there.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::os::unix::fs::symlink(outside.join("Dockerfile"), rootfs.join("Dockerfile")).unwrap();
    let out = kiln(root.path())
        .args(["build", "-q", "-o"])
        .arg(format!("type=local,dest={}", rootfs.display()))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(
        std::fs::symlink_metadata(rootfs.join("Dockerfile"))
            .unwrap()
            .is_file()
    );
}
