//! Isolation of RUN steps as a build sees them, and the confinement of COPY and ADD to the rootfs,
//! through the `kiln` binary. These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing
//! capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::checks::*;
use common::{build_rootfs, dockerfile_context as context, try_build};

// ---- isolation of RUN as a build sees it -----------------------------------------------------

/// A file in the host's /tmp that no RUN may read.
fn host_sentinel() -> (tempfile::NamedTempFile, String) {
    let mut f = tempfile::Builder::new()
        .prefix("kiln-sentinel-")
        .tempfile_in("/tmp")
        .unwrap();
    f.write_all(b"host secret\n").unwrap();
    let path = f.path().display().to_string();
    (f, path)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn host_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn run_steps_are_isolated_from_the_host() {
    if !require_privileged("isolation build") {
        return;
    }
    let (_sentinel, sentinel) = host_sentinel();
    // A duration no other process on the host uses, to find the background sleep afterwards.
    let nap = format!("{}", 3000 + std::process::id() % 5000);
    let dockerfile = format!(
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /out /tmp && hostname > /out/hostname && (cat {sentinel} > /out/sentinel 2>&1; echo $? > /out/sentinel_rc) && ls /tmp > /out/tmp && ls /proc | grep -E '^[0-9]+$' > /out/pids && ps -o pid,args > /out/ps && cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > /out/netdev
RUN sleep {nap} & echo started > /out/bg
"#
    );
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&dockerfile);
    let started = Instant::now();
    let (out, _) = build_rootfs(root.path(), ctx.path(), &["-t", "iso:1"]);
    let took = started.elapsed();
    let fs = out.path().join("rootfs/out");

    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(read(&fs, "hostname"), "kiln\n");
    assert_ne!(host_name.trim(), "kiln");

    assert_ne!(
        read(&fs, "sentinel_rc").trim(),
        "0",
        "the host's /tmp is not visible"
    );
    assert!(!read(&fs, "sentinel").contains("host secret"));
    assert_eq!(read(&fs, "tmp"), "", "the step's /tmp is its own");

    // Only the step's processes: the sandbox's init, the shell and ps (ls and grep for pids).
    let pids: Vec<u32> = read(&fs, "pids")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        !pids.is_empty() && pids.len() <= 6 && pids.iter().all(|p| *p < 20),
        "pids seen by the step: {pids:?}"
    );
    let ps = read(&fs, "ps");
    assert!(ps.lines().count() <= 7, "ps shows only the step:\n{ps}");
    assert!(
        !ps.contains("--root") && !ps.contains("cargo") && !ps.contains("robustness"),
        "no host process is visible:\n{ps}"
    );

    // The default network: a namespace of the step's own with loopback and slirp4netns's tap.
    assert_eq!(
        read(&fs, "netdev"),
        "lo\ntap0\n",
        "the step's network namespace is its own"
    );

    // The background sleep died with its step, and the step did not wait for it.
    assert_eq!(read(&fs, "bg"), "started\n");
    assert!(took < Duration::from_secs(60), "the build took {took:?}");
    assert!(
        host_processes(&["sleep", &nap]).is_empty(),
        "the background sleep survived its step"
    );
    assert_store_consistent(root.path());

    // With --network host the step sees the host's interfaces.
    let ctx = context(
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /out && cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > /out/hostnet
"#,
    );
    let (out, _) = build_rootfs(root.path(), ctx.path(), &["--network", "host"]);
    let seen: Vec<String> = read(&out.path().join("rootfs/out"), "hostnet")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(seen, host_interfaces());
    assert_store_consistent(root.path());
}

// ---- confinement of COPY and ADD ---------------------------------------------------------------

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A tar with these entries, names and link targets written as given (the `tar` crate refuses to
/// build `..` and absolute names through its checked setters).
fn evil_tar(path: &Path, entries: &[Entry<'_>]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, link, data, kind) = match e {
            Entry::File(n, d) => (*n, None, *d, tar::EntryType::Regular),
            Entry::Symlink(n, t) => (*n, Some(*t), &b""[..], tar::EntryType::Symlink),
            Entry::Hardlink(n, t) => (*n, Some(*t), &b""[..], tar::EntryType::Link),
        };
        assert!(name.len() < 100 && link.is_none_or(|l| l.len() < 100));
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.finish().unwrap();
}

/// What a host file looks like, to tell that nothing wrote to or linked it.
fn fingerprint(path: &Path) -> (Vec<u8>, u64) {
    use std::os::unix::fs::MetadataExt;
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().nlink(),
    )
}

#[test]
fn add_of_a_hostile_tar_never_writes_outside_the_rootfs() {
    if !require_privileged("confinement build") {
        return;
    }
    // Every escape aims at this host directory; afterwards it must hold only `target`, unchanged.
    let host = tempfile::Builder::new()
        .prefix("kiln-escape-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(host.path().join("target"), b"original\n").unwrap();
    let h = host.path().display().to_string();
    let h_rel = h.trim_start_matches('/');
    let passwd_before = fingerprint(Path::new("/etc/passwd"));

    let dotdot = format!("../../../../../../../../../../../../{h_rel}/dotdot");
    let absolute = format!("{h}/absolute");
    let through_root = format!("rootlink/{h_rel}/through-root-symlink");
    let target = format!("{h}/target");
    let through_up = format!("up/{h_rel}/through-up-symlink");
    let cases: Vec<(&str, Vec<Entry<'_>>)> = vec![
        ("dotdot", vec![Entry::File(&dotdot, b"escaped\n")]),
        ("absolute", vec![Entry::File(&absolute, b"escaped\n")]),
        (
            "through-root-symlink",
            vec![
                Entry::Symlink("rootlink", "/"),
                Entry::File(&through_root, b"escaped\n"),
            ],
        ),
        (
            "through-dir-symlink",
            vec![
                Entry::Symlink("dirlink", &h),
                Entry::File("dirlink/through-dir-symlink", b"escaped\n"),
            ],
        ),
        (
            "through-up-symlink",
            vec![
                Entry::Symlink("up", "../../../../../../../../../../.."),
                Entry::File(&through_up, b"escaped\n"),
            ],
        ),
        ("passwd", vec![Entry::Hardlink("pw", "/etc/passwd")]),
        (
            "target",
            vec![
                Entry::Hardlink("hl", &target),
                Entry::File("hl", b"pwned\n"),
            ],
        ),
    ];

    let root = tempfile::tempdir().unwrap();
    for (name, entries) in &cases {
        let ctx = context(
            "FROM scratch\nCOPY busybox /bin/busybox\nADD evil.tar /dst/\nCMD [\"/bin/busybox\"]\n",
        );
        evil_tar(&ctx.path().join("evil.tar"), entries);
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("rootfs");
        let (ok, _, stderr) = try_build(
            root.path(),
            ctx.path(),
            &["--output", &format!("type=local,dest={}", dest.display())],
        );

        let mut left: Vec<String> = std::fs::read_dir(host.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["target"],
            "{name}: nothing is written outside the rootfs"
        );
        assert_eq!(
            std::fs::read(host.path().join("target")).unwrap(),
            b"original\n",
            "{name}: the host file is untouched"
        );
        assert_eq!(
            fingerprint(Path::new("/etc/passwd")),
            passwd_before,
            "{name}: the host's /etc/passwd is untouched"
        );
        if ok {
            // Confined: whatever landed is inside the image and holds no host bytes.
            let mut files = Vec::new();
            walk(&dest, &mut files);
            for f in files.iter().filter(|f| f.is_file()) {
                let bytes = std::fs::read(f).unwrap();
                assert_ne!(
                    bytes,
                    passwd_before.0,
                    "{name}: {} is the host's passwd",
                    f.display()
                );
                assert_ne!(
                    bytes,
                    b"original\n",
                    "{name}: {} is the host's file",
                    f.display()
                );
            }
            eprintln!(
                "{name}: confined; image has {:?}",
                files
                    .iter()
                    .map(|f| f.strip_prefix(&dest).unwrap())
                    .collect::<Vec<_>>()
            );
        } else {
            assert!(
                stderr.contains(name) || stderr.contains(entries_first_name(entries)),
                "{name}: the error names the entry:\n{stderr}"
            );
            eprintln!(
                "{name}: rejected:
{stderr}"
            );
        }
    }
    assert_store_consistent(root.path());
}

fn entries_first_name<'a>(entries: &[Entry<'a>]) -> &'a str {
    match entries[0] {
        Entry::File(n, _) | Entry::Symlink(n, _) | Entry::Hardlink(n, _) => n,
    }
}

#[test]
fn copy_keeps_context_symlinks_as_symlinks_and_never_reads_the_host() {
    if !require_privileged("confinement build") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let ctx = context("FROM scratch\nCOPY busybox /bin/busybox\nCOPY . /app\n");
    std::os::unix::fs::symlink("/etc", ctx.path().join("evil")).unwrap();
    std::os::unix::fs::symlink("../../..", ctx.path().join("up")).unwrap();
    let (out, _) = build_rootfs(root.path(), ctx.path(), &[]);
    let app = out.path().join("rootfs/app");
    for (link, target) in [("evil", "/etc"), ("up", "../../..")] {
        let meta = std::fs::symlink_metadata(app.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} stays a symlink");
        assert_eq!(
            std::fs::read_link(app.join(link)).unwrap(),
            Path::new(target)
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&app)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Dockerfile", "busybox", "evil", "up"]);

    // Sources that go through the links resolve inside the context, never on the host.
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for (source, what) in [
        ("evil/passwd", "a file behind a link to /etc"),
        ("up/etc/passwd", "a file behind a link out of the context"),
    ] {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM scratch\nCOPY {source} /leak\n"),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("rootfs");
        let (ok, _, stderr) = try_build(
            root.path(),
            ctx.path(),
            &["--output", &format!("type=local,dest={}", dest.display())],
        );
        if ok {
            let leak = std::fs::read(dest.join("leak")).unwrap_or_default();
            assert_ne!(leak, passwd, "{what}: the host's /etc/passwd was copied");
        } else {
            assert!(
                stderr.contains(source.split('/').next().unwrap()) || stderr.contains("passwd"),
                "{what}: {stderr}"
            );
            eprintln!(
                "{source}: rejected:
{stderr}"
            );
        }
    }
    assert_store_consistent(root.path());
}
