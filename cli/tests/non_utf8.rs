//! A Dockerfile with Latin-1 bytes (`testdata/non-utf8/Dockerfile`): the bytes reach RUN
//! commands, their environment and working directory, COPY sources and destinations, heredoc
//! files and the layer tar unchanged; the image config shows them as U+FFFD, as Docker's does.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, kiln};

fn dockerfile() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/non-utf8/Dockerfile");
    std::fs::read(path).unwrap()
}

/// The context: the Dockerfile, busybox, and a file whose name holds byte 0xE9.
fn context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(ctx.path().join(name), b"content \xe9\n").unwrap();
    ctx
}

/// The names of the entries of every layer of `image`, as bytes.
fn layer_names(root: &Path, image: &str) -> Vec<Vec<u8>> {
    let out = kiln(root).args(["inspect", image]).output().unwrap();
    assert!(out.status.success(), "inspect: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = Vec::new();
    for id in v["Config"]["rootfs"]["diff_ids"].as_array().unwrap() {
        let hex = id.as_str().unwrap().trim_start_matches("sha256:");
        let blob: PathBuf = root.join("blobs/sha256").join(hex);
        let mut tar = tar::Archive::new(std::fs::File::open(&blob).unwrap());
        for e in tar.entries().unwrap() {
            names.push(e.unwrap().path_bytes().into_owned());
        }
    }
    names
}

#[test]
fn latin1_bytes_are_kept_where_they_reach_the_system() {
    if !require_privileged("latin1_bytes_are_kept_where_they_reach_the_system") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context();
    let (_, stderr) = build(root.path(), ctx.path(), &["-t", "latin1:1"]);
    assert!(stderr.contains("not valid UTF-8"), "a warning: {stderr}");

    let out = kiln(root.path())
        .args(["run", "--rm", "latin1:1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let want: &[u8] = b"caf\xe9\n\
caf\xe9\n\
/w\xe9\n\
caf\xe9.txt\n\
h\xe9redoc\n\
content \xe9\n\
json-form \xe9\n\
\xf4\x8f\xbf\xa9\n\
caf\xef\xbf\xbd\n";
    assert_eq!(
        out.stdout,
        want,
        "{:?} vs {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(want)
    );

    // The layer of `COPY caf\xe9.txt /d\xe9st/` names the file with the file's bytes.
    let names = layer_names(root.path(), "latin1:1");
    for want in [&b"d\xe9st/caf\xe9.txt"[..], b"h\xe9re", b"w\xe9/"] {
        assert!(
            names.iter().any(|n| n == want),
            "{:?} not in {names:?}",
            String::from_utf8_lossy(want)
        );
    }

    // The config: U+FFFD per invalid byte, as Go's JSON encoder writes it; valid UTF-8 as it is.
    let out = kiln(root.path())
        .args(["inspect", "latin1:1"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["Config"]["config"];
    assert_eq!(c["Labels"]["l"], "caf\u{FFFD}");
    assert_eq!(c["Labels"]["both"], "é\u{FFFD}");
    assert_eq!(c["Labels"]["reserved"], "\u{10FFE9}");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"E=caf\u{FFFD}"), "{env:?}");
    assert!(env.contains(&"F=\u{FFFD}\u{FFFD}"), "{env:?}");
    assert_eq!(c["WorkingDir"], "/w\u{FFFD}");
    assert_eq!(
        c["Cmd"][2].as_str().unwrap().chars().last(),
        Some('\u{FFFD}')
    );
    let history = v["Config"]["history"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["created_by"]
            .as_str()
            .unwrap()
            .contains("echo caf\u{FFFD} >")),
        "{history:?}"
    );
}

#[test]
fn kiln_run_passes_argument_bytes() {
    if !require_privileged("kiln_run_passes_argument_bytes") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = common::context_with(&[(
        "Dockerfile",
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )]);
    build(root.path(), ctx.path(), &["-t", "argbytes:1"]);
    let out = kiln(root.path())
        .args(["run", "--rm", "-e"])
        .arg(OsStr::from_bytes(b"V=\xff"))
        .arg("argbytes:1")
        .args(["sh", "-c"])
        .arg(OsStr::from_bytes(b"printf '%s|%s' \"$V\" \xe9"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"\xff|\xe9");
}

#[test]
fn parse_json_prints_u_fffd_and_errors_as_json() {
    let out = kiln_bare()
        .args(["parse", "--json", "-"])
        .write_stdin(dockerfile())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let label = &v["instructions"][3];
    assert_eq!(label["keyword"], "LABEL");
    assert_eq!(
        label["args"],
        serde_json::json!(["l", "\"caf\u{FFFD}\"", "=", "both", "\"é\u{FFFD}\"", "="])
    );
    // A parse error in such a file is one JSON object with the error.
    let out = kiln_bare()
        .args(["parse", "--json", "-"])
        .write_stdin(&b"FROM scratch\nCOPYY caf\xe9 /x\n"[..])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("error JSON on stdout");
    assert_eq!(v["line"], 2);
    assert!(v["error"].as_str().unwrap().contains("COPYY"), "{v}");
}

fn kiln_bare() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("kiln").unwrap()
}
