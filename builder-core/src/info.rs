//! What `docker info` and `buildah info` users look for, about this machine and a store: version,
//! store path and size, snapshotter, executor, rootless or not, network, cgroup version, seccomp
//! and the platforms RUN steps can run through emulators.
//!
//! ```no_run
//! let info = kiln_builder_core::info::SystemInfo::gather(std::path::Path::new("/var/lib/kiln"))?;
//! println!("{} snapshots, seccomp {}", info.snapshotter, info.seccomp);
//! # Ok::<(), kiln_builder_core::builder::SnapshotError>(())
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
    /// `overlayfs`, `fuse-overlayfs` or `copy`.
    pub snapshotter: String,
    /// The storage driver asked for: `auto`, `overlay`, `fuse-overlayfs` or `copy` (see
    /// [`crate::snapshot::StorageDriver`]).
    pub storage_driver: String,
    /// The default executor of RUN steps.
    pub executor: String,
    /// Whether kiln runs without root (user namespaces).
    pub rootless: bool,
    /// The user and group ids kiln runs as, on the host.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Rootless: the user namespace's uid map (empty as the host's root).
    pub uid_map: Vec<crate::rootless::IdRange>,
    /// Rootless: the user namespace's gid map.
    pub gid_map: Vec<crate::rootless::IdRange>,
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
        let ns = crate::rootless::current();
        let network = if crate::exec::user_mode_available() {
            "default: own network namespace with slirp4netns (host loopback unreachable)"
        } else {
            network_unavailable_reason()
        };
        let seccomp = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
            .unwrap_or(false);
        Ok(SystemInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            store: root.to_path_buf(),
            store_size: size_of(root),
            snapshotter: snapshots.name().to_owned(),
            storage_driver: crate::snapshot::storage_driver().name().to_owned(),
            executor: "sandbox".to_owned(),
            rootless: ns.rootless(),
            uid: ns.host_uid(rustix::process::geteuid().as_raw()),
            gid: ns.host_gid(rustix::process::getegid().as_raw()),
            uid_map: if ns.initial() {
                Vec::new()
            } else {
                ns.uid_map.clone()
            },
            gid_map: if ns.initial() {
                Vec::new()
            } else {
                ns.gid_map.clone()
            },
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

pub use crate::worker::emulate::EmulationError;

/// Whether RUN steps for `platform` can run on this machine: natively, or through a binfmt_misc
/// emulator; the error says why not and how to install one.
pub fn can_run(platform: &crate::image::Platform) -> Result<(), EmulationError> {
    crate::worker::emulate::emulator_for(platform).map(|_| ())
}

/// Why RUN steps fall back to the host's network, for the build's warning and `kiln info`.
pub(crate) fn network_unavailable_reason() -> &'static str {
    if !rustix::process::geteuid().is_root() {
        "RUN steps use the host's network (a network namespace of their own needs root or kiln's rootless user namespace; pass --network none for none)"
    } else if !crate::exec::slirp4netns_installed() {
        "slirp4netns is not installed: RUN steps use the host's network (install slirp4netns for a network namespace of their own, or pass --network none)"
    } else {
        "/dev/net/tun cannot be opened: RUN steps use the host's network (make it mode 0666, as distributions do, for a network namespace of their own, or pass --network none)"
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
