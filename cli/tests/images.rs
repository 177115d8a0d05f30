//! Image management and `kiln run` through the binary: images, tag, rmi, inspect, history,
//! save, load, run, completions, man and their error paths. Output that names digests or times
//! is redacted before it is compared with the insta snapshots.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::path::Path;
use std::process::Command as Std;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, example_context, kiln, tool};

/// Replaces what changes from run to run: hex digests and ids (64 or 12 digits), relative
/// times, and runs of spaces (table columns follow the widths of what was redacted).
fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            let mut run = String::from(c);
            while let Some(&n) = chars.peek() {
                if n.is_ascii_digit() || ('a'..='f').contains(&n) {
                    run.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            let boundary = chars.peek().is_none_or(|n| !n.is_ascii_alphanumeric());
            let prev_ok = !out.ends_with(|p: char| p.is_ascii_alphanumeric());
            match run.len() {
                64 if boundary => out.push_str("<digest>"),
                12 if boundary && prev_ok => out.push_str("<id>"),
                _ => out.push_str(&run),
            }
        } else {
            out.push(c);
        }
    }
    let mut words: Vec<String> = Vec::new();
    for line in out.lines() {
        let mut l = line.split_whitespace().collect::<Vec<_>>().join(" ");
        for unit in ["second", "minute", "hour"] {
            for n in (1..=59).rev() {
                for form in [format!("{n} {unit}s ago"), format!("{n} {unit} ago")] {
                    l = l.replace(&form, "<when>");
                }
            }
        }
        l = l.replace("less than a second ago", "<when>");
        words.push(l);
    }
    words.join("\n")
}

fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn built_hello(root: &Path) -> String {
    let ctx = example_context("hello");
    build(root, ctx.path(), &["-t", "app:1"]).0
}

#[test]
fn images_tag_rmi_inspect_history() {
    if !require_privileged("image commands") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let id = built_hello(root.path());
    let r = root.path();

    kiln(r).args(["tag", "app:1", "other:2"]).assert().success();
    // The platform column names the machine the test runs on.
    let host = kiln_builder_core::image::Platform::host().to_string();
    insta::assert_snapshot!(
        "images_table",
        redact(&stdout_of(kiln(r).arg("images"))).replace(&host, "<host>")
    );
    let quiet = stdout_of(kiln(r).args(["images", "-q", "--no-trunc"]));
    assert_eq!(quiet.trim(), id, "one id for two names");
    let json = stdout_of(kiln(r).args(["images", "--format", "json", "other"]));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["name"], "docker.io/library/other:2");
    assert_eq!(v["id"], id);

    let inspect: serde_json::Value =
        serde_json::from_str(&stdout_of(kiln(r).args(["inspect", "other:2"]))).unwrap();
    assert_eq!(inspect["Id"], id);
    assert_eq!(inspect["Config"]["config"]["WorkingDir"], "/srv");
    assert_eq!(inspect["Manifest"]["layers"].as_array().unwrap().len(), 4);
    assert_eq!(
        inspect["RepoTags"],
        serde_json::json!(["docker.io/library/app:1", "docker.io/library/other:2"])
    );
    let config: serde_json::Value = serde_json::from_str(&stdout_of(kiln(r).args([
        "inspect",
        "--only",
        "config",
        &id[7..19],
    ])))
    .unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);

    insta::assert_snapshot!(
        "history_table",
        redact(&stdout_of(kiln(r).args(["history", "app:1"])))
    );

    // By id, with two names: refused without --force.
    let out = kiln(r).args(["rmi", &id]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(
        "rmi_by_id_with_two_names",
        redact(&String::from_utf8_lossy(&out.stderr))
    );
    insta::assert_snapshot!("rmi_by_name", stdout_of(kiln(r).args(["rmi", "other:2"])));
    let out = kiln(r).args(["rmi", "other:2", "app:1"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a missing name fails the command"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Untagged: docker.io/library/app:1"));
    assert_eq!(stdout_of(kiln(r).args(["images", "-q"])), "");
}

#[test]
fn missing_images_are_errors() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        vec!["inspect", "nope:1"],
        vec!["history", "nope:1"],
        vec!["tag", "nope:1", "x"],
        vec!["rmi", "nope:1"],
    ] {
        let out = kiln(root.path())
            .env("NO_COLOR", "1")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        insta::assert_snapshot!(
            format!("missing_{}", args[0]),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = kiln(root.path())
        .args(["save", "nope:1", "-o", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = kiln(root.path()).args(["rmi"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn save_and_load_round_trip_and_skopeo_reads_the_archive() {
    if !require_privileged("save and load") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let id = built_hello(root.path());
    let out = tempfile::tempdir().unwrap();
    let docker = out.path().join("app.tar");
    let oci = out.path().join("app-oci.tar");
    kiln(root.path())
        .args(["save", "app:1", "-o"])
        .arg(&docker)
        .assert()
        .success();
    kiln(root.path())
        .args(["save", "--format", "oci", "app:1", "-o"])
        .arg(&oci)
        .assert()
        .success();
    for archive in [&docker, &oci] {
        let other = tempfile::tempdir().unwrap();
        let loaded = stdout_of(kiln(other.path()).args(["load", "-i"]).arg(archive));
        assert_eq!(loaded, "Loaded image: docker.io/library/app:1\n");
        let ids = stdout_of(kiln(other.path()).args(["images", "-q", "--no-trunc"]));
        assert_eq!(ids.trim(), id);
        // The loaded image runs too (its layers came in compressed).
        let run = stdout_of(kiln(other.path()).args(["run", "--rm", "app:1"]));
        assert!(run.starts_with("hello from kiln\n"), "{run}");
    }
    // From standard input.
    let other = tempfile::tempdir().unwrap();
    let loaded = stdout_of(
        kiln(other.path())
            .args(["load", "-q"])
            .pipe_stdin(&docker)
            .unwrap(),
    );
    assert_eq!(loaded.trim(), id);
    // `docker load` reads the same format as podman; podman runs with a private store here.
    let podman_found = Std::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if podman_found {
        let store = tempfile::tempdir().unwrap();
        let st = Std::new("podman")
            .arg("--root")
            .arg(store.path().join("root"))
            .arg("--runroot")
            .arg(store.path().join("run"))
            .args(["--storage-driver", "vfs", "load", "-i"])
            .arg(&docker)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&st.stdout);
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        assert!(
            text.contains("Loaded image: docker.io/library/app:1"),
            "{text}"
        );
    }
    if tool("skopeo") {
        let dest = out.path().join("layout");
        let st = Std::new("skopeo")
            .arg("copy")
            .arg(format!("docker-archive:{}", docker.display()))
            .arg(format!("oci:{}:app", dest.display()))
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let st = Std::new("skopeo")
            .arg("copy")
            .arg(format!("oci-archive:{}", oci.display()))
            .arg(format!("oci:{}:app2", dest.display()))
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
}

#[test]
fn run_prints_the_example_output_and_passes_exit_codes() {
    if !require_privileged("kiln run") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    built_hello(root.path());
    let r = root.path();
    assert_eq!(
        stdout_of(kiln(r).args(["run", "--rm", "app:1"])),
        "hello from kiln\nbuilt by kiln from testdata/examples/hello\n"
    );
    let out = kiln(r)
        .args(["run", "--rm", "app:1", "sh", "-c", "echo err >&2; exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // The command is PID 1, as under `docker run`; `--init` puts a reaper there instead.
    assert_eq!(
        stdout_of(kiln(r).args(["run", "--rm", "app:1", "sh", "-c", "echo $$"])),
        "1\n"
    );
    assert_eq!(
        stdout_of(kiln(r).args(["run", "--rm", "--init", "app:1", "sh", "-c", "echo $$"])),
        "2\n"
    );
    let out = kiln(r)
        .args(["run", "--rm", "app:1", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in.txt"), "from the host\n").unwrap();
    let vol = format!("{}:/data", host.path().display());
    let ro = format!("{}:/ro:ro", host.path().display());
    let out = stdout_of(
        kiln(r)
            .env("FROM_HOST", "h")
            .args(["run", "--rm", "-e", "A=1", "-e", "FROM_HOST", "-w", "/work"])
            .args(["-v", &vol, "-v", &ro, "app:1", "sh", "-c"])
            .arg("echo $A $FROM_HOST $GREETING; pwd; cat /data/in.txt; echo out > /data/out.txt; touch /ro/x 2>/dev/null || echo read-only; hostname"),
    );
    assert_eq!(
        out,
        "1 h hello from kiln\n/work\nfrom the host\nread-only\nkiln\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("out.txt")).unwrap(),
        "out\n"
    );
    let out = stdout_of(
        kiln(r)
            .args(["run", "-i", "app:1", "sh", "-c", "tr a-z A-Z"])
            .write_stdin("piped\n"),
    );
    assert_eq!(out, "PIPED\n");
    // Without -i the command reads nothing.
    let out = stdout_of(
        kiln(r)
            .args(["run", "app:1", "sh", "-c", "cat; echo end"])
            .write_stdin("ignored\n"),
    );
    assert_eq!(out, "end\n");
    // Nothing the container wrote stays in the image.
    let out = stdout_of(kiln(r).args(["run", "app:1", "sh", "-c", "ls /work 2>&1 || echo gone"]));
    assert!(
        out.contains("gone") || out.contains("No such file"),
        "{out}"
    );
    let out = kiln(r)
        .args(["run", "app:1", "/nonexistent"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let out = kiln(r)
        .args(["run", "-v", "rel:x", "app:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    if tool("runc") {
        let out = kiln(r)
            .args(["run", "--runtime", "runc", "-i", "app:1", "sh", "-c"])
            .arg("cat; echo $GREETING; exit 5")
            .write_stdin("via runc\n")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "via runc\nhello from kiln\n"
        );
    }
}

#[test]
fn ctrl_c_stops_a_container_with_130() {
    if !require_privileged("kiln run ctrl-c") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    built_hello(root.path());
    let mut child = Std::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root.path())
        .args(["run", "app:1", "sh", "-c", "echo up; exec sleep 5678"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 3];
    let read = std::io::Read::read_exact(&mut stdout, &mut first);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) },
        0
    );
    let status = child.wait().unwrap();
    read.unwrap();
    assert_eq!(&first, b"up\n");
    assert_eq!(status.code(), Some(130));
    let sleeping = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains("sleep 5678")
            })
        })
    };
    let t = std::time::Instant::now();
    while sleeping() {
        assert!(
            t.elapsed().as_secs() < 5,
            "the container's process outlived kiln"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run_dir = root.path().join("kiln/run");
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with("run-")),
        "{left:?}"
    );
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let root = tempfile::tempdir().unwrap();
    let err = |extra: &[&str], no_color: bool| {
        let mut c = kiln(root.path());
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        let out = c.args(extra).args(["inspect", "nope"]).output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err(&["--color", "always"], true).contains("\x1b["));
    assert!(!err(&["--color", "never"], false).contains("\x1b["));
    assert!(
        !err(&[], false).contains("\x1b["),
        "auto: stderr is not a terminal"
    );
}

#[test]
fn completions_and_man_page() {
    let root = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "_kiln()"),
        ("zsh", "#compdef kiln"),
        ("fish", "complete -c kiln"),
    ] {
        let out = stdout_of(kiln(root.path()).args(["completions", shell]));
        assert!(out.contains(marker), "{shell}: {out}");
        assert!(
            out.contains("no-cache-filter"),
            "{shell} completes build flags"
        );
    }
    let man = stdout_of(kiln(root.path()).arg("man"));
    assert!(man.contains(".TH kiln"), "{man}");
    assert!(man.contains("images"));
    let dir = tempfile::tempdir().unwrap();
    kiln(root.path())
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .success();
    assert!(dir.path().join("kiln-build.1").is_file());
    let out = kiln(root.path())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
