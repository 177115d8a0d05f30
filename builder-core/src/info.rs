//! What `docker info` and `buildah info` users look for, about this machine and a store: version,
//! store path and size, snapshotter, executor, rootless or not, network, cgroup version, seccomp
//! and the platforms RUN steps can run through emulators.
//!
//! ```no_run
//! let info = kiln_builder_core::info::SystemInfo::gather(std::path::Path::new("/var/lib/kiln"))?;
//! println!("{} snapshots, seccomp {}", info.snapshotter, info.seccomp);
//! # Ok::<(), kiln_builder_core::snapshot::SnapshotError>(())
//! ```

use std::path::{Path, PathBuf};

/// A report on this machine and a store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SystemInfo {
    /// kiln's version.
    pub version: String,
    /// The store's root directory.
    pub store: PathBuf,
    /// Bytes of files in the store (layers, snapshots, cache).
    pub store_size: u64,
    /// `overlayfs` or `copy`.
    pub snapshotter: String,
    /// The default executor of RUN steps.
    pub executor: String,
    /// Whether kiln runs without root (user namespaces).
    pub rootless: bool,
    /// The user and group ids kiln runs as.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// How RUN steps reach the network by default.
    pub network: String,
    /// `1` or `2`.
    pub cgroup_version: u8,
    /// Whether RUN steps get the seccomp filter (the kernel supports it).
    pub seccomp: bool,
    /// The host's platform.
    pub platform: String,
    /// Other platforms whose RUN steps this machine runs through binfmt_misc emulators.
    pub emulated_platforms: Vec<String>,
}

impl SystemInfo {
    /// Gathers the report for the store at `root` (its snapshot directory is opened, which
    /// probes the snapshotter the first time).
    pub fn gather(root: &Path) -> Result<Self, crate::snapshot::SnapshotError> {
        let snapshots = crate::snapshot::open(root.join("kiln").join("snapshots"))?;
        let euid = rustix::process::geteuid().as_raw();
        let network = if crate::exec::user_mode_available() {
            "default: own network namespace with slirp4netns (host loopback unreachable)"
        } else if euid == 0 {
            "default: the host's network (slirp4netns is not installed)"
        } else {
            "default: the host's network (rootless)"
        };
        let seccomp = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
            .unwrap_or(false);
        Ok(SystemInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            store: root.to_path_buf(),
            store_size: size_of(root),
            snapshotter: snapshots.name().to_owned(),
            executor: "sandbox".to_owned(),
            rootless: euid != 0,
            uid: euid,
            gid: rustix::process::getegid().as_raw(),
            network: network.to_owned(),
            cgroup_version: if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                2
            } else {
                1
            },
            seccomp,
            platform: crate::image::Platform::host().to_string(),
            emulated_platforms: crate::worker::emulate::emulated_platforms()
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }
}

/// Bytes of regular files under `root`, symlinks not followed; unreadable parts count zero.
fn size_of(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
