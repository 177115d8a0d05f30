//! Checks of a store and of the host after builds: blobs hash to their names, `index.json` parses,
//! no temp files, mounts or sandbox processes are left behind.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::{Duration, Instant};

// ---- store and host checks -------------------------------------------------------------------

/// Every file under `dir`, recursively (symlinks not followed).
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
        out.push(p);
    }
}

/// The store is consistent: every blob hashes to its name, `index.json` parses and each tagged
/// manifest's blobs are present, no temp file or temp snapshot is left, nothing is mounted under
/// `root` and no sandbox process survives.
pub fn assert_store_consistent(root: &Path) {
    assert_store_consistent_but(root, false);
}

/// [`assert_store_consistent`], optionally tolerating per-run state directories (`kiln/run/`).
pub fn assert_store_consistent_but(root: &Path, tolerate_run_dirs: bool) {
    let blobs = root.join("blobs/sha256");
    let names: Vec<PathBuf> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!names.is_empty(), "the store has blobs");
    for chunk in names.chunks(64) {
        let out = Std::new("sha256sum").args(chunk).output().unwrap();
        assert!(out.status.success());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (hash, path) = line.split_once("  ").unwrap();
            let name = Path::new(path).file_name().unwrap().to_string_lossy();
            assert_eq!(hash, name, "blob {path} hashes to its name");
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("index.json")).unwrap())
            .expect("index.json parses");
    for m in index["manifests"].as_array().unwrap() {
        let digest = m["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blobs.join(hex)).unwrap()).unwrap();
        let mut wanted = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
        for l in manifest["layers"].as_array().unwrap() {
            wanted.push(l["digest"].as_str().unwrap().to_string());
        }
        for d in wanted {
            let p = blobs.join(d.strip_prefix("sha256:").unwrap());
            assert!(p.is_file(), "{digest} references a missing blob {d}");
        }
    }

    let mut files = Vec::new();
    walk(&root.join("kiln"), &mut files);
    let leftovers: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let name = p.file_name().unwrap().to_string_lossy();
            // Temp blobs, temp snapshot entries and their locks, per-run state, and the temp
            // files of atomic metadata writes.
            (rel.starts_with("kiln/tmp/") && !rel.ends_with("kiln/tmp"))
                || (rel.starts_with("kiln/snapshots/tmp/"))
                || (rel.starts_with("kiln/run/") && !tolerate_run_dirs)
                || name.starts_with(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "leftover temp files: {leftovers:#?}");

    assert_no_mounts_under(root);
    assert_no_processes_under(root);
}

pub fn assert_no_mounts_under(root: &Path) {
    let canon = root.canonicalize().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let under: Vec<&str> = mountinfo
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| Path::new(mp).starts_with(&canon))
        })
        .collect();
    assert!(under.is_empty(), "mounts left under the store: {under:#?}");
}

/// Processes that are sandbox helpers or whose cwd, root or command line mention `root`.
pub fn processes_under(root: &Path) -> Vec<String> {
    let canon = root.canonicalize().unwrap();
    let needle = canon.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let dir = e.path();
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
        let helper = String::from_utf8_lossy(&environ).contains("KILN_SANDBOX_HELPER=");
        let in_root = ["cwd", "root"]
            .iter()
            .any(|l| std::fs::read_link(dir.join(l)).is_ok_and(|t| t.starts_with(&canon)));
        if helper || in_root || cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

pub fn assert_no_processes_under(root: &Path) {
    // A killed build's helpers notice the hang-up at once; allow a moment for the kernel.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = processes_under(root);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("processes survive the build: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Host processes whose command line is exactly `args`.
pub fn host_processes(args: &[&str]) -> Vec<String> {
    let want = args.join("\0") + "\0";
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            (cmd == want.as_bytes()).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}
