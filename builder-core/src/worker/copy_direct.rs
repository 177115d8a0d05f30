//! A COPY into a destination the parent state lacks writes straight into the new layer's own
//! directory, without an overlay mount.
//!
//! Going through overlayfs costs: creating 10,000 small files in a mounted overlay takes about
//! 1.7x the kernel time of creating them in a plain directory (credential switches and lookups
//! in every layer), and a COPY's files are all new. When the destination's first missing
//! component is below directories only (no symlink, no file on the way), everything the copy
//! writes lands below that component, where the parent has nothing: the snapshot can be the
//! unmounted upper directory ([`crate::snapshot::Snapshotter::prepare_unmounted`]), with the
//! parent's directories on the way copied up by hand (mode, owner, xattrs, times, as overlayfs'
//! copy-up makes them), and the copy code runs on it unchanged. The snapshotter then finds the
//! same changes it would find after a mounted copy, and the layer has the same bytes.
//!
//! Not used when the copy has to read the destination's tree: `--chown` by name (the user
//! database), heredocs, downloads and repositories (they are written by other code), or `ADD`.

use std::path::PathBuf;

use rustix::fs::FileType;

use super::{LocalWorkerConfig, WorkerError};
use crate::cache::LayerRef;
use crate::copy::CopyRequest;
use crate::fsroot::{Root, clean};
use crate::snapshot::Active;
use crate::solver::FsState;

/// Whether a COPY with this request may be written unmounted (see the module docs).
pub(super) fn eligible(req: &CopyRequest) -> bool {
    !req.is_add
        && req
            .chown
            .as_deref()
            .is_none_or(|c| !crate::userdb::UserDb::chown_needs_lookup(c))
}

/// An unmounted snapshot on `parent` ready for the copy `req`, or `None` when the destination
/// exists, has a symlink or a file on the way, or the snapshotter cannot do it.
pub(super) fn prepare(
    cfg: &LocalWorkerConfig,
    parent: &FsState,
    req: &CopyRequest,
) -> Result<Option<Active>, WorkerError> {
    if parent.layers.is_empty() {
        return Ok(None);
    }
    let dest = clean(&kiln_dockerfile_parser::bytes::to_path(
        &crate::copy::select::normalize_dest(&req.dest, &req.workdir),
    ));
    if dest.as_os_str().is_empty() {
        return Ok(None);
    }
    // Only metadata is read here: big files of earlier COPYs need not have their bytes yet.
    let Some(view) = super::view_metadata(cfg, parent)? else {
        return Ok(None);
    };
    let lower = Root::open(view.path())?;
    // The parent's directories on the way to the first missing component, with their state.
    let mut existing: Vec<(PathBuf, rustix::fs::Stat)> = Vec::new();
    let mut prefix = PathBuf::new();
    let mut missing = false;
    for comp in dest.components() {
        prefix.push(comp);
        match lower.lstat(&prefix) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                existing.push((prefix.clone(), st));
            }
            Ok(_) => return Ok(None),
            Err(e) if e.is_not_found() => {
                missing = true;
                break;
            }
            Err(_) => return Ok(None),
        }
    }
    if !missing {
        return Ok(None);
    }
    let Some(key) = super::chain_ids(&parent.layers).pop() else {
        return Ok(None);
    };
    let Some(active) = cfg.snapshots.prepare_unmounted(Some(&key))? else {
        return Ok(None);
    };
    match copy_up(&active, &lower, &existing) {
        Ok(()) => Ok(Some(active)),
        Err(e) => {
            // A directory whose metadata cannot be copied by hand (an xattr the filesystem
            // refuses): the mounted way copies it up.
            tracing::debug!(
                "copying through the overlay: {e}",
                e = crate::report::chain(&e)
            );
            Ok(None)
        }
    }
}

/// Creates the parent's directories `existing` in `active`'s tree as overlayfs' copy-up does.
fn copy_up(
    active: &Active,
    lower: &Root,
    existing: &[(PathBuf, rustix::fs::Stat)],
) -> Result<(), WorkerError> {
    let upper = Root::open(active.root())?;
    for (rel, st) in existing {
        upper.create_dir(rel, st.st_mode & 0o7777)?;
        upper.lchown(rel, st.st_uid, st.st_gid)?;
        upper.chmod(rel, st.st_mode & 0o7777)?;
        let xattrs = crate::copy::source::read_xattrs(lower, rel)?;
        for (name, value) in xattrs {
            if crate::xattr::is_overlay_own(name.as_encoded_bytes()) {
                continue;
            }
            upper.set_xattr(rel, &name, &value)?;
        }
    }
    // Times last: creating each directory moved its parent's.
    for (rel, st) in existing.iter().rev() {
        upper.set_times(rel, st.st_mtime, st.st_mtime_nsec as i64)?;
    }
    Ok(())
}

/// Turns a snapshot made by [`prepare`] and the copy into a layer and commits it. Every entry in
/// its tree is a change or the parent directory of one (the parent's directories on the way were
/// copied up only to hold the new component), and there are no whiteouts, so the layer is the
/// whole tree as the writer walks it: the same bytes the snapshotter's list of changes gives,
/// without walking the tree twice.
///
/// The `deferred` files are placeholders (see `copy::apply_deferring`): their contents go from
/// their sources into the layer only, and the snapshot is committed with a note of where they
/// lie in it, to be completed when something reads them (`worker::deferred`).
pub(super) fn finish(
    cfg: &LocalWorkerConfig,
    parent: &FsState,
    active: Active,
    deferred: Vec<crate::copy::Deferred>,
) -> Result<Option<LayerRef>, WorkerError> {
    let root = Root::open(active.changes_root())?;
    let opts = crate::layer::LayerOptions {
        source_date_epoch: cfg.source_date_epoch,
    };
    let mut subst = super::deferred::substitutes(deferred).map_err(|source| {
        WorkerError::Io(crate::report::IoError {
            op: "read a placeholder in",
            path: active.changes_root().to_path_buf(),
            source,
        })
    })?;
    let writer = cfg.store.writer()?;
    let (writer, _) = crate::layer::write_tree_substituted(&root, &opts, writer, &mut subst)?;
    let info = writer.commit(None)?;
    drop(root);
    super::verify::stamp(&cfg.store, &info.digest);
    let layer = LayerRef {
        diff_id: info.digest,
        size: info.size,
        packed: None,
    };
    let mut layers = parent.layers.clone();
    layers.push(layer.clone());
    if let Some(key) = super::chain_ids(&layers).pop() {
        if subst.placed.is_empty() {
            cfg.snapshots.commit(active, &key)?;
        } else {
            let note = super::deferred::note(&info.digest, &subst.placed);
            cfg.snapshots.commit_pending(active, &key, &note)?;
        }
    }
    Ok(Some(layer))
}
