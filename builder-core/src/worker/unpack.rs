//! Unpacking layers into snapshots: one layer's fill, and the layers of a chain filled at the
//! same time where the snapshotter keeps each layer in a directory of its own (overlayfs).
//!
//! Creating files is most of an unpack's time, and one layer's entries are created one after the
//! other; the layers of an image do not depend on each other's trees, so a first use of a
//! many-layer base fills several at once. Snapshots are still committed base first: each fill
//! waits, after its tree is complete, until the layer below it was committed, and fails if that
//! one failed, so a chain never has a snapshot above a missing one.

use std::sync::mpsc;

use super::{WorkerError, verify};
use crate::cache::LayerRef;
use crate::changes::WhiteoutStyle;
use crate::content::ContentStore;
use crate::fsroot::Root;
use crate::snapshot::{FillError, Snapshotter};

/// Writes `layer`'s contents into `root`: from its compressed blob when the store keeps it
/// that way, else from its tar.
pub(super) fn fill_from_layer(
    store: &ContentStore,
    layer: &LayerRef,
    root: &Root,
    style: WhiteoutStyle,
) -> Result<(), FillError> {
    let diff_id = layer.diff_id;
    let opts = crate::layer::ApplyOptions::default();
    match &layer.packed {
        Some(p) if !store.has(&diff_id) => {
            // Decompressed while it is applied; both digests checked at the end, and the tree
            // discarded by the snapshotter if either differs.
            crate::layer::apply_packed(store, &p.digest, &diff_id, root, style, &opts)?;
        }
        _ if verify::stamped(store, &diff_id) => {
            // Hashed when it was written: read once, not hashed again.
            let path = store.blob_path(&diff_id);
            let file = std::fs::File::open(&path)
                .map_err(|e| crate::content::ContentError::io("open", path, e))?;
            crate::layer::apply_layer(root, std::io::BufReader::new(file), style, &opts)?;
        }
        _ => {
            crate::layer::apply_blob(store, &diff_id, root, style, &opts)?;
        }
    }
    Ok(())
}

/// Layers filled at the same time, at most.
fn width() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

/// Imports every missing snapshot of the chain `keys` (the chain IDs of `layers`), several
/// layers at a time; see the module docs. The first failure, base first, is returned.
pub(super) fn import_concurrently(
    store: &ContentStore,
    snapshots: &dyn Snapshotter,
    layers: &[LayerRef],
    keys: &[String],
) -> Result<(), WorkerError> {
    let width = width();
    let mut results: Vec<Result<(), WorkerError>> = Vec::new();
    std::thread::scope(|s| {
        let mut running = std::collections::VecDeque::new();
        // Tells the next layer whether the one below it was committed (`None`: it existed).
        let mut below: Option<mpsc::Receiver<bool>> = None;
        for (i, (layer, key)) in layers.iter().zip(keys).enumerate() {
            if snapshots.exists(key) {
                below = None;
                continue;
            }
            if running.len() == width
                && let Some(handle) = running.pop_front()
            {
                results.push(join(handle));
            }
            let (done, next) = mpsc::channel::<bool>();
            let wait = below.replace(next);
            let parent = i.checked_sub(1).map(|p| keys[p].as_str());
            running.push_back(s.spawn(move || {
                let mut fill = |root: &Root, style: WhiteoutStyle| -> Result<(), FillError> {
                    fill_from_layer(store, layer, root, style)?;
                    match &wait {
                        Some(rx) if rx.recv() != Ok(true) => {
                            Err("the layer below it was not unpacked".into())
                        }
                        _ => Ok(()),
                    }
                };
                let result = snapshots.import(key, parent, &mut fill);
                let _ = done.send(result.is_ok());
                result.map_err(WorkerError::from)
            }));
        }
        results.extend(running.into_iter().map(join));
    });
    results.into_iter().collect()
}

fn join(
    handle: std::thread::ScopedJoinHandle<'_, Result<(), WorkerError>>,
) -> Result<(), WorkerError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(WorkerError::Task("layer unpack panicked".into())))
}
