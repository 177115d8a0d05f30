//! A RUN step's output cannot exhaust kiln's memory, and a failing step's real error survives
//! any amount of output before it.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::process::{Command, Stdio};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::dockerfile_context;

/// Runs `kiln` with `args` to completion; returns (exit code, stderr, peak RSS in KiB of kiln and
/// the processes it waited for, from `wait4`).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also reports the peak RSS
fn kiln_measured(root: &std::path::Path, args: &[&str]) -> (i32, String, i64) {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(assert_cmd::cargo::cargo_bin("kiln"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not waited for yet; the pointers are valid.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let text = std::fs::read_to_string(stderr.path()).unwrap();
    (code, text, usage.ru_maxrss)
}

#[test]
fn a_flood_of_output_is_clipped_and_memory_stays_bounded() {
    if !require_privileged("output limits") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN yes | head -c 67108864; echo still-running > /done\n",
    );
    let dir = ctx.path().to_str().unwrap();
    for progress in ["plain", "quiet", "json"] {
        let (code, text, peak_kib) = kiln_measured(
            root.path(),
            &["build", "--no-cache", "--progress", progress, dir],
        );
        assert_eq!(code, 0, "{text}");
        if progress != "quiet" {
            assert_eq!(
                text.matches("[output clipped, log limit 2MiB reached]")
                    .count(),
                1,
                "{}",
                &text[text.len().saturating_sub(2000)..]
            );
            // What was shown is the 2 MiB with line prefixes, far from the 64 MiB.
            assert!(text.len() < 16 << 20, "{} bytes shown", text.len());
        }
        assert!(peak_kib < 100 * 1024, "{progress}: peak RSS {peak_kib} KiB");
    }
    // Unlimited: everything is shown, memory stays bounded all the same.
    let (code, text, peak_kib) = kiln_measured(
        root.path(),
        &[
            "build",
            "--no-cache",
            "--progress",
            "plain",
            "--step-log-max-size",
            "-1",
            dir,
        ],
    );
    assert_eq!(code, 0);
    assert!(!text.contains("output clipped"));
    assert!(text.matches(" y\n").count() >= 64 << 19, "every line shown");
    assert!(peak_kib < 100 * 1024, "unlimited: peak RSS {peak_kib} KiB");
}

#[test]
fn the_real_error_of_a_verbose_failing_step_is_reported() {
    if !require_privileged("output limits") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = dockerfile_context(
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN seq 1 1000000; echo REAL-ERROR >&2; exit 3\n",
    );
    let dir = ctx.path().to_str().unwrap();
    for progress in ["quiet", "plain"] {
        let (code, text, _) = kiln_measured(root.path(), &["build", "--progress", progress, dir]);
        assert_eq!(code, 1);
        let report = &text[text.rfind("------\n > ").expect("the step's output")..];
        assert!(
            report.contains("   1000000\n   REAL-ERROR\n------"),
            "{report}"
        );
    }
}
