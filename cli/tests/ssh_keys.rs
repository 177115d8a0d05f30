//! `--ssh default=KEYFILE`: kiln serves the key as an agent of its own, and OpenSSH's `ssh-add`
//! (copied from the host with its libraries) in a `RUN --mount=type=ssh` step lists it.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::Command;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, kiln, tool};

/// Copies `program` and the libraries `ldd` names into `ctx/host/`, at their own paths.
fn copy_with_libraries(program: &str, ctx: &Path) {
    let out = Command::new("ldd").arg(program).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut files = vec![program.to_string()];
    for line in text.lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(str::to_string);
        files.extend(path);
    }
    for f in files {
        let dest = ctx.join("host").join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

#[test]
fn a_key_file_is_served_to_ssh_mounts() {
    if !require_privileged("a_key_file_is_served_to_ssh_mounts")
        || !tool("ldd")
        || !Path::new("/usr/bin/ssh-keygen").exists()
        || !Path::new("/usr/bin/ssh-add").exists()
    {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "from-a-file", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ctx = common::context_with(&[(
        "Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY host/ /\n\
         RUN --mount=type=ssh /usr/bin/ssh-add -L > /keys\n\
         CMD [\"cat\", \"/keys\"]\n",
    )]);
    copy_with_libraries("/usr/bin/ssh-add", ctx.path());
    let root = tempfile::tempdir().unwrap();
    build(
        root.path(),
        ctx.path(),
        &[
            "--ssh",
            &format!("default={}", key.display()),
            "-t",
            "sshkey:1",
        ],
    );
    let out = kiln(root.path())
        .args(["run", "--rm", "sshkey:1"])
        .output()
        .unwrap();
    let public = std::fs::read_to_string(keys.path().join("id_ed25519.pub")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public.trim());

    // An encrypted key fails the build before it starts, naming the file.
    let locked = keys.path().join("locked");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret-pass", "-f"])
        .arg(&locked)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (ok, _, stderr) = common::try_build(
        root.path(),
        ctx.path(),
        &["--ssh", &format!("default={}", locked.display())],
    );
    assert!(!ok);
    assert!(
        stderr.contains("encrypted") && stderr.contains(&locked.display().to_string()),
        "{stderr}"
    );
}
