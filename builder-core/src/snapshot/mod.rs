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
//! [`open`] picks overlayfs when a probe mount works under the store and the copy snapshotter
//! otherwise.
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
mod overlay;
mod store;

#[cfg(test)]
mod conformance;

use std::io;
use std::path::{Path, PathBuf};

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

/// Opens the best snapshotter for the directory `dir`: overlayfs when a probe mount works there,
/// the copy snapshotter otherwise.
pub fn open(dir: impl AsRef<Path>) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    let dir = dir.as_ref();
    // The probe mounts a test overlay; its answer for this directory is remembered so that
    // later builds (a no-op rebuild above all) skip it.
    let marker = dir.join(".driver");
    // Rootless overlays keep their markers in `user.` xattrs, the host root's in `trusted.`
    // ones: a store's snapshots are read in the mode that wrote them.
    let (mine, other) = if crate::rootless::current().initial() {
        ("overlayfs", "overlayfs-userxattr")
    } else {
        ("overlayfs-userxattr", "overlayfs")
    };
    let overlay = match std::fs::read_to_string(&marker).as_deref().map(str::trim) {
        Ok(m) if m == mine => true,
        Ok(m) if m == other => {
            let made = if m == "overlayfs" {
                "as root"
            } else {
                "in rootless mode"
            };
            return Err(io_err("open snapshots in", dir)(std::io::Error::other(
                format!(
                    "this store's snapshots were made {made}; use it the same way, or another store (--root)"
                ),
            )));
        }
        Ok("copy") => false,
        _ => {
            let works = overlay::probe(dir);
            let name = if works { mine } else { "copy" };
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
            works
        }
    };
    if overlay {
        Ok(Box::new(OverlaySnapshotter::open(dir)?))
    } else {
        tracing::info!(dir = %dir.display(), "overlayfs unavailable, using the copy snapshotter");
        Ok(Box::new(CopySnapshotter::open(dir)?))
    }
}
