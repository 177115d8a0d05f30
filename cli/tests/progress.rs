//! `kiln build` as people and scripts see it: the live display under a pseudo-terminal (through
//! util-linux `script`), Ctrl-C, the failing-RUN report, and the build flags that shape output.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::io::Read;
use std::process::{Command as Std, Stdio};
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, dockerfile_context, example_context, kiln, tool, try_build};

/// Runs `command` under `script` (a pseudo-terminal) after `env` adjusts its environment;
/// returns what the terminal showed, and fails the test if the command failed.
fn on_a_terminal(command: &str, env: impl FnOnce(&mut Std)) -> String {
    let mut c = Std::new("script");
    c.args(["-qec", command, "/dev/null"]).stdin(Stdio::null());
    env(&mut c);
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

fn kiln_bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("kiln")
}

#[test]
fn tty_progress_renders_and_ends_cleanly() {
    if !require_privileged("tty progress") || !tool("script") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo first-line; sleep 1; echo second-line\n",
    );
    let command = format!(
        "{} --root {} build -t tty:1 {}",
        kiln_bin().display(),
        root.path().display(),
        ctx.path().display()
    );
    let text = on_a_terminal(&command, |c| {
        c.env("TERM", "xterm").env_remove("NO_COLOR");
    });
    assert!(text.contains("[stage-0 3/3] RUN echo first-line"), "{text}");
    assert!(text.contains("DONE"), "{text}");
    // The running step showed its output under it while it ran.
    assert!(text.contains("│ first-line"), "{text}");
    // A spinner frame was drawn, and colors are on for a terminal.
    assert!(text.contains('⠋') && text.contains("\x1b["), "{text}");
    // The display ended before the summary, which starts on a line of its own.
    let summary = text.find("image sha256:").expect("summary");
    assert!(text[..summary].ends_with('\n'), "{text}");
    assert!(text.contains("tagged docker.io/library/tty:1"), "{text}");
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("sha256:"),
        "stdout ends with the id: {last:?}"
    );

    // A cached rebuild, with colors off by NO_COLOR.
    let text = on_a_terminal(&command, |c| {
        c.env("NO_COLOR", "1");
    });
    assert!(text.contains("CACHED"), "{text}");
    assert!(text.contains("3 of 3 steps cached"), "{text}");
    assert!(!text.contains("\x1b[3"), "no colors with NO_COLOR: {text}");

    // An export shows its bytes as they are written.
    let archive = root.path().join("out.tar");
    let export = format!("{command} -o type=oci,dest={}", archive.display());
    let text = on_a_terminal(&export, |c| {
        c.env("TERM", "xterm");
    });
    assert!(
        text.contains("exported 1.") && text.contains("MiB"),
        "{text}"
    );
    assert!(archive.metadata().unwrap().len() > 1 << 20);
}

/// Kills the child if the test fails before it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn ctrl_c_stops_the_build_with_130_and_leaves_nothing() {
    if !require_privileged("ctrl-c") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo started; sleep 4321\n",
    );
    let mut child = KillOnDrop(
        Std::new(kiln_bin())
            .arg("--root")
            .arg(root.path())
            .args(["build", "--progress", "plain"])
            .arg(ctx.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = child.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut signalled = false;
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            // The step's own output line, not its title (which contains the same word).
            if !signalled
                && String::from_utf8_lossy(&all)
                    .lines()
                    .any(|l| l.ends_with(" started"))
            {
                signalled = true;
            }
            if signalled || Instant::now() > deadline {
                break;
            }
        }
        (all, stderr)
    });
    let (seen, mut stderr) = reader.join().unwrap();
    assert!(
        String::from_utf8_lossy(&seen).contains(" started"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let waiting = Instant::now();
    while processes_with("sleep 4321").is_empty() {
        assert!(waiting.elapsed() < Duration::from_secs(20), "the step runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = i32::try_from(child.0.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "kiln did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    // The kernel tears the step's PID namespace down as its init dies; give it a moment.
    let stopping = Instant::now();
    while !processes_with("sleep 4321").is_empty() {
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "the step's processes are gone: {:?}",
            processes_with("sleep 4321")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run_dir = root.path().join("kiln/run");
    let leftovers: Vec<_> = std::fs::read_dir(&run_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("run-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn failing_run_shows_the_line_the_code_and_the_last_20_lines() {
    if !require_privileged("failing run") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN for i in $(seq 1 25); do echo out $i; done; exit 3\n",
    );
    let out = kiln(root.path())
        .env("NO_COLOR", "1")
        .args(["build", "--progress", "quiet", "-f"])
        .arg(ctx.path().join("Dockerfile"))
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stderr).replace(&ctx.path().display().to_string(), "<ctx>");
    insta::assert_snapshot!("failing_run", text);
}

#[test]
fn usage_errors_exit_2() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        vec!["build", "--platform", "linux", "."],
        vec!["build", "--network", "bridge", "."],
        vec!["build", "--progress", "fancy", "."],
        vec!["build"],
        vec!["nonsense"],
    ] {
        let out = kiln(root.path()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = kiln(root.path())
        .args(["build", "--platform", "linux/amd64,linux", "."])
        .output()
        .unwrap();
    insta::assert_snapshot!("platform_invalid", String::from_utf8_lossy(&out.stderr));
    let help = kiln(root.path())
        .args(["build", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--tag",
        "--file",
        "--build-arg",
        "--target",
        "--no-cache",
        "--no-cache-filter",
        "--platform",
        "--label",
        "--network",
        "--secret",
        "--output",
        "--iidfile",
        "--metadata-file",
        "--progress",
        "--quiet",
        "--root",
        "--color",
        "Differences from",
    ] {
        assert!(help.contains(flag), "build --help lacks {flag}");
    }
}

#[test]
fn build_flags_shape_the_outputs() {
    if !require_privileged("build flags") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let ctx = example_context("hello");
    let files = tempfile::tempdir().unwrap();
    let iid = files.path().join("iid");
    let meta = files.path().join("meta.json");
    let out = kiln(r)
        .args([
            "build",
            "-q",
            "-t",
            "app:1",
            "-t",
            "app:latest",
            "--iidfile",
        ])
        .arg(&iid)
        .arg("--metadata-file")
        .arg(&meta)
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.starts_with("sha256:") && id.lines().count() == 1, "{id}");
    assert!(
        out.stderr.is_empty(),
        "quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id.trim());
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], id.trim());
    assert!(
        m["containerimage.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(
        m["image.name"],
        "docker.io/library/app:1,docker.io/library/app:latest"
    );

    // A Dockerfile outside the context, on stdin, and a build arg from the environment.
    let outside = tempfile::tempdir().unwrap();
    let df = "FROM app:1\nARG FROM_ENV\nRUN echo \"$FROM_ENV\" > /env.txt\n";
    std::fs::write(outside.path().join("Build.df"), df).unwrap();
    let mut cmd = kiln(r);
    cmd.env("FROM_ENV", "env-value")
        .args(["build", "-t", "child:1", "--build-arg", "FROM_ENV", "-f"])
        .arg(outside.path().join("Build.df"))
        .arg(ctx.path());
    assert!(cmd.output().unwrap().status.success());
    let got = kiln(r)
        .args(["run", "child:1", "cat", "/env.txt"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "env-value\n");
    let out = kiln(r)
        .args(["build", "-t", "stdin:1", "-f", "-"])
        .arg(ctx.path())
        .write_stdin("FROM app:1\nCOPY motd.txt /copied\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kiln(r)
        .args(["build", "-"])
        .write_stdin("FROM app:1\nLABEL only=stdin\n")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // -o type=tar to stdout: the root filesystem, and nothing else on stdout.
    let out = kiln(r)
        .args(["build", "-o", "type=tar,dest=-"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    for e in archive.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.contains(&"srv/message".to_string()), "{names:?}");
    assert!(names.contains(&"bin/busybox".to_string()));

    // --no-cache-filter reruns the named stage only.
    let multi = dockerfile_context(
        "FROM scratch AS tools\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nFROM tools\nRUN echo final > /f\n",
    );
    build(r, multi.path(), &[]);
    let (ok, _, stderr) = try_build(
        r,
        multi.path(),
        &["--progress", "plain", "--no-cache-filter", "tools"],
    );
    assert!(ok, "{stderr}");
    // The tools stage ran again; the final stage's step (same input) still hit the cache.
    assert!(stderr.contains("#2 DONE"), "{stderr}");
    assert!(stderr.contains("#3 CACHED"), "{stderr}");
}

#[test]
fn tty_push_shows_bytes_sent() {
    if !require_privileged("tty push progress") || !tool("script") {
        return;
    }
    let Some(registry) = kiln_builder_core::testing::registry("tty push progress") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context("FROM scratch\nCOPY busybox /bin/busybox\n");
    let tag = format!(
        "{}/kiln-tests/tty-push:{}",
        registry.addr,
        std::process::id()
    );
    let command = format!(
        "{} --root {} build --push -t {tag} {}",
        kiln_bin().display(),
        root.path().display(),
        ctx.path().display()
    );
    let text = on_a_terminal(&command, |c| {
        c.env("TERM", "xterm");
    });
    // The byte counter ended on the whole layer (busybox gzipped is over 1 MiB), then the
    // summary named the pushed reference.
    assert!(
        text.contains("pushed 1.") && text.contains("MiB/"),
        "{text}"
    );
    assert!(text.contains(&format!("pushed {tag}@sha256:")), "{text}");
}
