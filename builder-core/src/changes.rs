//! The vocabulary shared by snapshotters (which find what a step changed) and the layer writer
//! (which turns those changes into a tar), so neither needs to know the other.

use std::path::PathBuf;

/// One change a step made to its root filesystem, relative to the parent snapshot.
///
/// Paths are relative to the root (no leading `/`), lexically clean, and never empty.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// The entry was added or modified: its current state (type, mode, owner, times, xattrs,
    /// content or link target) is read from the changed tree and written to the layer.
    Upsert(PathBuf),
    /// The entry was removed: the layer records a whiteout (`.wh.<name>`).
    Delete(PathBuf),
    /// The directory replaces whatever lower layers had at that path: the layer records an opaque
    /// whiteout (`<dir>/.wh..wh..opq`) besides the directory entry itself. Entries that exist in
    /// the directory now are listed as their own [`Change::Upsert`]s.
    Opaque(PathBuf),
}

impl Change {
    /// The path the change is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Change::Upsert(p) | Change::Delete(p) | Change::Opaque(p) => p,
        }
    }
}

/// How whiteouts are represented in a directory that holds unpacked layer contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutStyle {
    /// The directory is a merged tree: a whiteout removes the entry it names, an opaque whiteout
    /// empties its directory. Used when applying a layer on top of a copy of its parent, and for
    /// extracting ADD archives (which never contain whiteouts in practice, but are handled alike).
    Apply,
    /// The directory is one overlayfs lower layer: a whiteout becomes a 0/0 character device and an
    /// opaque whiteout sets the `trusted.overlay.opaque=y` xattr on its directory.
    Overlay,
}
