//! The agent against OpenSSH's own clients: `ssh-add -l` lists the key, `ssh-keygen -Y sign`
//! signs through the agent and `ssh-keygen -Y check-novalidate` verifies the signature.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use super::*;

fn tool(name: &str) -> bool {
    Command::new(name).arg("-?").output().is_ok()
}

fn keygen(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", "kiln-test", "-f"])
        .arg(&key)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    key
}

#[test]
fn ssh_add_lists_and_ssh_keygen_signs_through_the_agent() {
    if !tool("ssh-keygen") || !tool("ssh-add") {
        eprintln!("skipped: no ssh-keygen/ssh-add");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "id_ed25519", &["-N", ""]);
    let agent = KeyAgent::start("default", std::slice::from_ref(&key), Some(dir.path())).unwrap();

    let out = Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", agent.socket())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(dir.path().join("id_ed25519.pub")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public.trim());

    // Only the public key on disk: ssh-keygen must ask the agent to sign.
    let pub_only = dir.path().join("only.pub");
    std::fs::copy(dir.path().join("id_ed25519.pub"), &pub_only).unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"signed through kiln's agent\n").unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "file", "-f"])
        .arg(&pub_only)
        .arg(&data)
        .env("SSH_AUTH_SOCK", agent.socket())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", "file", "-s"])
        .arg(dir.path().join("data.sig"))
        .stdin(std::fs::File::open(&data).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "the signature verifies: {out:?}");

    // Requests the agent does not serve fail politely.
    let out = Command::new("ssh-add")
        .arg("-D")
        .env("SSH_AUTH_SOCK", agent.socket())
        .output()
        .unwrap();
    assert!(!out.status.success());
    drop(agent);
}

#[test]
fn an_encrypted_key_is_refused_with_its_name() {
    if !tool("ssh-keygen") {
        eprintln!("skipped: no ssh-keygen");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "locked", &["-N", "passphrase"]);
    let err = KeyAgent::start("git", std::slice::from_ref(&key), Some(dir.path())).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("--ssh git") && text.contains("locked"),
        "{text}"
    );
    assert!(text.contains("encrypted"), "{text}");
}

#[test]
fn garbage_is_not_a_key_and_requests_are_framed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junk");
    std::fs::write(&file, "not a key").unwrap();
    let err = KeyAgent::start("x", &[file], None).unwrap_err();
    assert!(
        err.to_string().contains("not an OpenSSH private key"),
        "{err}"
    );
    // A sign request for a key the agent does not hold, a truncated one, an unknown type.
    assert_eq!(answer(&[SIGN_REQUEST, 0, 0, 0, 1, 7], &[]), [FAILURE]);
    assert_eq!(answer(&[SIGN_REQUEST, 0, 0], &[]), [FAILURE]);
    assert_eq!(answer(&[99], &[]), [FAILURE]);
    assert_eq!(
        answer(&[REQUEST_IDENTITIES], &[]),
        [IDENTITIES_ANSWER, 0, 0, 0, 0]
    );
}
