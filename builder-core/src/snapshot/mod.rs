//! Snapshots: the root filesystems steps run in and the committed layers they come from.
//!
//! This module owns the [`Snapshotter`] trait and two implementations that pass one conformance
//! suite:
//!
//! - [`OverlaySnapshotter`]: every committed snapshot is one layer directory holding only that
//!   layer's changes (overlayfs whiteouts: 0/0 character devices, `trusted.overlay.opaque`); an
//!   active snapshot is an overlay mount of its parent chain with a fresh upper directory, and its
//!   changes are read from the upper directory. Lower directories are passed one by one with the
//!   `lowerdir+` mount option of the new mount API (Linux 6.8+), so long chains do not hit the
//!   one-page limit of the classic option string; older kernels fall back to that string.
//! - [`CopySnapshotter`]: every snapshot is a full copy of its tree (owners, modes, times,
//!   xattrs, devices and hard links preserved; no reflinks); changes are found by comparing the
//!   active tree to its parent's.
//!
//! The overlay snapshotter mounts through the kernel, or in rootless mode on kernels whose
//! overlayfs cannot be mounted in a user namespace, through the fuse-overlayfs program (same
//! layer directories; its own markers in upper directories are read too).
//!
//! [`open`] picks overlayfs when a probe mount works under the store, else (rootless)
//! fuse-overlayfs when installed and a probe mount works, else the copy snapshotter; or the
//! [`StorageDriver`] asked for. A store keeps the driver it was made with.
//!
//! Layout under the directory kiln gives the snapshotter:
//!
//! ```text
//! snapshots/<sha256 of key>/fs       the tree (overlay: the layer; copy: the full rootfs)
//! snapshots/<sha256 of key>/key      the key, for humans and checks
//! snapshots/<sha256 of key>/parent   the parent's key, absent for a base layer
//! snapshots/<sha256 of key>/pending  the caller's note of what the tree lacks yet, if anything
//!                                    ([`Snapshotter::commit_pending`], [`Snapshotter::complete`])
//! tmp/<id>.lock                      held (flock) by the process owning tmp/<id>
//! tmp/<id>/                          an active snapshot, an import or a view in progress
//! ```
//!
//! A snapshot appears under `snapshots/` only complete (built under `tmp/`, then renamed).
//! Opening a snapshotter removes the `tmp/` entries whose lock no process holds (left by a killed
//! build), unmounting their overlays first. Committing a key that exists keeps the existing one.
//!
//! The API is blocking (file trees are copied and walked): call it from a blocking thread. This
//! module must not know about tar, layers or images: [`Snapshotter::import`] lets the caller unpack
//! a layer, and [`Snapshotter::changes`] hands back [`Change`]s for the layer writer.

mod copy;
mod copytree;
mod diff;
mod fuse;
mod overlay;
mod store;

#[cfg(test)]
mod conformance;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use copy::CopySnapshotter;
pub use overlay::OverlaySnapshotter;
pub use store::{Active, View};

/// The keys of every committed snapshot under `dir` (the directory given to [`open`]), whichever
/// snapshotter made them; for the garbage collector.
pub fn committed_keys(dir: impl AsRef<Path>) -> Result<Vec<String>, SnapshotError> {
    let dir = dir.as_ref();
    if !dir.join("snapshots").is_dir() {
        return Ok(Vec::new());
    }
    store::Store::open(dir)?.keys()
}

use crate::changes::{Change, WhiteoutStyle};
use crate::fsroot::{FsError, Root};

/// The error a fill callback of [`Snapshotter::import`] returns.
pub type FillError = Box<dyn std::error::Error + Send + Sync>;

/// The callback of [`Snapshotter::complete`]: writes what the note says is missing into the tree.
pub type CompleteFill<'a> = &'a mut dyn FnMut(&Root, &[u8]) -> Result<(), FillError>;

/// The callback of [`Snapshotter::import`]: writes a layer's contents into the new snapshot's tree
/// with the given whiteout style.
pub type Fill<'a> = &'a mut dyn FnMut(&Root, WhiteoutStyle) -> Result<(), FillError>;

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No committed snapshot has this key.
    #[error("snapshot {key} does not exist")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] crate::report::IoError),
    /// A confined filesystem operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Mounting an overlay failed.
    #[error("cannot mount overlay of {layers} layers on {target}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// How many lower layers the mount had.
        layers: usize,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The snapshot cannot be removed while a committed child depends on it.
    #[error("snapshot {key} is the parent of {child}")]
    InUse {
        /// The snapshot asked to remove.
        key: String,
        /// A child that depends on it.
        child: String,
    },
    /// The store's snapshots were made by another driver (or as root, and this is rootless mode,
    /// or the other way round).
    #[error(
        "the snapshots in {dir} were made with {made}, not {wanted}; use the store the same way (--storage-driver), or another store (--root)"
    )]
    DriverMismatch {
        /// The snapshot directory.
        dir: PathBuf,
        /// What made them.
        made: String,
        /// What was asked for.
        wanted: String,
    },
    /// The driver asked for does not work here.
    #[error("the {driver} storage driver cannot be used: {reason}")]
    DriverUnavailable {
        /// The driver's name.
        driver: &'static str,
        /// Why.
        reason: String,
    },
    /// The fill callback of an import failed.
    #[error("cannot fill snapshot {key}")]
    Fill {
        /// The key being imported.
        key: String,
        /// What the callback reported.
        #[source]
        source: FillError,
    },
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io(crate::report::IoError { op, path, source })
}

/// Creates, commits and removes snapshots. Blocking; object-safe so the solver can hold a
/// `Box<dyn Snapshotter>` chosen at startup.
pub trait Snapshotter: Send + Sync {
    /// `overlayfs` or `copy`.
    fn name(&self) -> &'static str;

    /// A writable rootfs on top of the committed snapshot `parent` (empty without one). Dropping
    /// the [`Active`] discards it (unmounts and removes it).
    fn prepare(&self, parent: Option<&str>) -> Result<Active, SnapshotError>;

    /// A writable snapshot on `parent` that is not mounted: its [`Active::root`] starts empty and
    /// holds only what the step adds, and the parent's tree is not visible in it. For a step that
    /// only adds entries below paths the parent lacks, after giving the parent's directories on
    /// the way there their parent's metadata (as a copy-up does), this is the same snapshot as
    /// [`Snapshotter::prepare`] gives, without a mount to go through. `None` when the
    /// snapshotter has no such form (the copy snapshotter's trees are whole).
    fn prepare_unmounted(&self, parent: Option<&str>) -> Result<Option<Active>, SnapshotError> {
        let _ = parent;
        Ok(None)
    }

    /// What changed in `active` relative to its parent, sorted by path (parents before children).
    /// The current state of an [`Change::Upsert`]ed entry is read under [`Active::root`].
    fn changes(&self, active: &Active) -> Result<Vec<Change>, SnapshotError>;

    /// Makes `active` an immutable snapshot named `key`. When `key` exists already (another build
    /// committed the same result), the existing snapshot is kept and `active` discarded.
    fn commit(&self, active: Active, key: &str) -> Result<(), SnapshotError>;

    /// Commits `active` as [`Snapshotter::commit`] does, with its tree not complete yet: the
    /// caller's `note` of what is missing is kept with it until [`Snapshotter::complete`] fills
    /// it. Only for snapshots from [`Snapshotter::prepare_unmounted`]; others refuse.
    fn commit_pending(&self, active: Active, key: &str, note: &[u8]) -> Result<(), SnapshotError> {
        let _ = (active, key, note);
        Err(SnapshotError::Io(crate::report::IoError {
            op: "commit an incomplete snapshot",
            path: PathBuf::new(),
            source: io::Error::from(io::ErrorKind::Unsupported),
        }))
    }

    /// Completes the committed snapshot `key` if [`Snapshotter::commit_pending`] made it: `fill`
    /// gets its tree and the note and writes what is missing. Every reader of a snapshot's file
    /// contents (a mount, a view) calls this first; metadata may be read without it.
    fn complete(&self, key: &str, fill: CompleteFill<'_>) -> Result<(), SnapshotError> {
        let _ = (key, fill);
        Ok(())
    }

    /// Creates the committed snapshot `key` on top of `parent` by letting `fill` write a layer's
    /// contents into a fresh tree: for overlay an empty layer directory with
    /// [`WhiteoutStyle::Overlay`], for copy a copy of the parent with [`WhiteoutStyle::Apply`].
    /// Does nothing when `key` exists.
    fn import(&self, key: &str, parent: Option<&str>, fill: Fill<'_>) -> Result<(), SnapshotError>;

    /// Whether [`Snapshotter::import`]'s fill starts from an empty tree whatever the parent, so
    /// that the layers of a chain may be filled at the same time. The parent must still be
    /// committed when `import` commits (it is checked after the fill).
    fn imports_are_independent(&self) -> bool {
        false
    }

    /// A read-only view of the committed snapshot's full tree (e.g. for `COPY --from`). Nothing may
    /// be written under [`View::path`]; dropping the view releases it.
    fn view(&self, key: &str) -> Result<View, SnapshotError>;

    /// Whether `key` is committed.
    fn exists(&self, key: &str) -> bool;

    /// The parent key of a committed snapshot.
    fn parent(&self, key: &str) -> Result<Option<String>, SnapshotError>;

    /// Removes the committed snapshot `key`. Fails while a committed child needs it.
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;
}

/// Which snapshotter a store uses: chosen by kiln ([`StorageDriver::Auto`]) or asked for, as
/// podman's `--storage-driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageDriver {
    /// The kernel's overlayfs where a probe mount works, else (rootless) fuse-overlayfs where
    /// installed and working, else the copy snapshotter. A store keeps what it was made with.
    #[default]
    Auto,
    /// The kernel's overlayfs (in a user namespace: `userxattr`, Linux 5.11).
    Overlay,
    /// The fuse-overlayfs program (rootless only).
    FuseOverlayfs,
    /// Full copies of every snapshot; works anywhere.
    Copy,
}

impl StorageDriver {
    /// Every driver, in the order of [`StorageDriver::name`].
    pub const ALL: [StorageDriver; 4] = [
        StorageDriver::Auto,
        StorageDriver::Overlay,
        StorageDriver::FuseOverlayfs,
        StorageDriver::Copy,
    ];

    /// `auto`, `overlay`, `fuse-overlayfs` or `copy`.
    pub fn name(self) -> &'static str {
        match self {
            StorageDriver::Auto => "auto",
            StorageDriver::Overlay => "overlay",
            StorageDriver::FuseOverlayfs => "fuse-overlayfs",
            StorageDriver::Copy => "copy",
        }
    }

    /// The driver named `name` (see [`StorageDriver::name`]; `overlayfs` is taken too).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "overlayfs" => Some(StorageDriver::Overlay),
            _ => Self::ALL.into_iter().find(|d| d.name() == name),
        }
    }
}

static DRIVER: OnceLock<StorageDriver> = OnceLock::new();

/// Sets the driver `open` uses in this process (the command line's `--storage-driver`). Only the
/// first call counts. Without one, the environment variable `KILN_STORAGE_DRIVER` decides, else
/// [`StorageDriver::Auto`].
pub fn set_storage_driver(driver: StorageDriver) {
    let _ = DRIVER.set(driver);
}

/// The driver [`open`] uses: see [`set_storage_driver`].
pub fn storage_driver() -> StorageDriver {
    *DRIVER.get_or_init(|| match std::env::var("KILN_STORAGE_DRIVER") {
        Ok(v) if !v.is_empty() => StorageDriver::from_name(&v).unwrap_or_else(|| {
            tracing::warn!(value = %v, "unknown KILN_STORAGE_DRIVER, choosing automatically");
            StorageDriver::Auto
        }),
        _ => StorageDriver::Auto,
    })
}

/// Opens the snapshotter for the directory `dir` that [`storage_driver`] names.
pub fn open(dir: impl AsRef<Path>) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    open_with(dir, storage_driver())
}

/// The `.driver` marker values: what made a store's snapshots.
const KERNEL_ROOT: &str = "overlayfs";
const KERNEL_USERNS: &str = "overlayfs-userxattr";
const FUSE: &str = "fuse-overlayfs";
const COPY: &str = "copy";

/// Opens the snapshotter `driver` for the directory `dir`. With [`StorageDriver::Auto`]: the one
/// the store was made with, or for a new store the kernel's overlayfs when a probe mount works
/// there, else (rootless) fuse-overlayfs when installed and a probe mount works, else the copy
/// snapshotter. A store made by one driver is refused by another (their snapshots differ), and
/// so is a store made as root in rootless mode and the other way round (overlayfs keeps its
/// markers in `trusted.` xattrs as root, `user.` ones in a user namespace).
pub fn open_with(
    dir: impl AsRef<Path>,
    driver: StorageDriver,
) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    let dir = dir.as_ref();
    // The probe mounts a test overlay; its answer for this directory is remembered so that
    // later builds (a no-op rebuild above all) skip it.
    let marker = dir.join(".driver");
    let root = crate::rootless::current().initial();
    let kernel = if root { KERNEL_ROOT } else { KERNEL_USERNS };
    let made = match std::fs::read_to_string(&marker) {
        Ok(m) => Some(m.trim().to_owned()),
        Err(_) => None,
    };
    let mismatch = |made: &str| SnapshotError::DriverMismatch {
        dir: dir.to_path_buf(),
        made: describe(made),
        wanted: match driver {
            StorageDriver::Overlay => describe(kernel),
            d => describe(d.name()),
        },
    };
    let chosen = match made.as_deref() {
        Some(m) if m == KERNEL_ROOT || m == KERNEL_USERNS => {
            if m != kernel || !matches!(driver, StorageDriver::Auto | StorageDriver::Overlay) {
                return Err(mismatch(m));
            }
            m
        }
        Some(FUSE) => {
            if root || !matches!(driver, StorageDriver::Auto | StorageDriver::FuseOverlayfs) {
                return Err(mismatch(FUSE));
            }
            FUSE
        }
        Some(COPY) => {
            if !matches!(driver, StorageDriver::Auto | StorageDriver::Copy) {
                return Err(mismatch(COPY));
            }
            COPY
        }
        _ => {
            let name = choose(dir, driver, kernel, root)?;
            if std::fs::create_dir_all(dir).is_ok() {
                // Temp files of marker writes that a killed process left: the only atomic writes
                // in this directory. Removing a live writer's temp only makes its (best-effort)
                // write fail.
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    if e.file_name().as_encoded_bytes().starts_with(b".tmp-") {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
                let _ = crate::content::write_atomic(&marker, name.as_bytes());
            }
            name
        }
    };
    match chosen {
        COPY => {
            if driver == StorageDriver::Auto {
                tracing::info!(dir = %dir.display(), "overlayfs unavailable, using the copy snapshotter");
            }
            Ok(Box::new(CopySnapshotter::open(dir)?))
        }
        FUSE => {
            let program = fuse::program().ok_or_else(|| SnapshotError::DriverUnavailable {
                driver: StorageDriver::FuseOverlayfs.name(),
                reason: "fuse-overlayfs is not on PATH (Debian package fuse-overlayfs), and this store's snapshots were made with it".to_owned(),
            })?;
            Ok(Box::new(OverlaySnapshotter::open_fuse(dir, program)?))
        }
        _ => Ok(Box::new(OverlaySnapshotter::open(dir)?)),
    }
}

/// The driver for a new store: its marker value.
fn choose(
    dir: &Path,
    driver: StorageDriver,
    kernel: &'static str,
    root: bool,
) -> Result<&'static str, SnapshotError> {
    let unavailable = |d: StorageDriver, reason: String| SnapshotError::DriverUnavailable {
        driver: d.name(),
        reason,
    };
    let fuse_probe = || -> Result<(), String> {
        if root {
            return Err("it is for rootless mode; as root the kernel's overlayfs works".to_owned());
        }
        let program = fuse::program()
            .ok_or("fuse-overlayfs is not on PATH (Debian package fuse-overlayfs)")?;
        fuse::probe(&program, dir).map_err(|e| {
            format!("{e} (it needs /dev/fuse readable and writable by the user, mode 0666 as distributions set it)")
        })
    };
    match driver {
        StorageDriver::Copy => Ok(COPY),
        StorageDriver::Overlay => match overlay::probe(dir) {
            Ok(()) => Ok(kernel),
            Err(e) => Err(unavailable(driver, e.to_string())),
        },
        StorageDriver::FuseOverlayfs => match fuse_probe() {
            Ok(()) => Ok(FUSE),
            Err(e) => Err(unavailable(driver, e)),
        },
        StorageDriver::Auto => {
            if let Err(e) = overlay::probe(dir) {
                tracing::debug!(error = %crate::report::chain(&e), "overlayfs probe failed");
            } else {
                return Ok(kernel);
            }
            if root {
                return Ok(COPY);
            }
            match fuse_probe() {
                Ok(()) => Ok(FUSE),
                Err(e) => {
                    tracing::debug!(error = %e, "fuse-overlayfs probe failed");
                    Ok(COPY)
                }
            }
        }
    }
}

/// A marker value in words, for errors.
fn describe(marker: &str) -> String {
    match marker {
        KERNEL_ROOT => "overlayfs as root".to_owned(),
        KERNEL_USERNS => "overlayfs in rootless mode".to_owned(),
        FUSE => "fuse-overlayfs (rootless mode)".to_owned(),
        other => other.to_owned(),
    }
}
