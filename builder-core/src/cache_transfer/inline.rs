//! The inline cache (`--cache-to type=inline`): the final stage's records go into the image
//! config under [`INLINE_CACHE_KEY`], as BuildKit puts its own under `moby.buildkit.cache.v0`,
//! so that `--cache-from IMAGE` works with nothing but the pushed image. Only records whose
//! layer is one of the image's layers (or that made none) are kept: the image carries no other
//! blobs. The layers' blob digests are not recorded (the push compresses them later); an import
//! pairs the config's `rootfs.diff_ids` with the manifest's layers by position.

use crate::cache::{CacheKey, CacheRecord, LayerRef};
use crate::image::{Descriptor, ImageConfig};

use super::{CacheConfig, CacheMode, CacheTransferError, LayerEntry};

/// The image config field that holds an inline cache.
pub const INLINE_CACHE_KEY: &str = "dev.kiln.cache";

/// The inline cache value for an image whose layers are `layers`.
pub fn inline_value(
    records: &[(CacheKey, CacheRecord)],
    layers: &[LayerRef],
) -> Result<serde_json::Value, serde_json::Error> {
    let kept: Vec<(CacheKey, CacheRecord)> = records
        .iter()
        .filter(|(_, r)| r.layer.as_ref().is_none_or(|l| layers.contains(l)))
        .cloned()
        .collect();
    let described = layers
        .iter()
        .filter(|l| kept.iter().any(|(_, r)| r.layer.as_ref() == Some(*l)))
        .map(|l| (l.diff_id, (l.size, None)))
        .collect();
    serde_json::to_value(super::describe(&kept, CacheMode::Min, &described))
}

/// The inline cache of an image, with each layer's blob digest taken from the manifest's layer
/// at the position of its diff_id in the config. `Ok(None)`: the image has none.
pub fn from_image(
    config: &ImageConfig,
    manifest_layers: &[Descriptor],
    source_name: &str,
) -> Result<Option<(CacheConfig, Vec<Descriptor>)>, CacheTransferError> {
    let Some(value) = config.extra.get(INLINE_CACHE_KEY) else {
        return Ok(None);
    };
    let mut cache: CacheConfig =
        serde_json::from_value(value.clone()).map_err(|e| CacheTransferError::NotACache {
            source_name: source_name.to_string(),
            reason: format!("its inline cache: {e}", e = crate::report::chain(&e)),
        })?;
    let diff_ids = &config.rootfs.diff_ids;
    let mut blobs = Vec::new();
    cache.layers.retain_mut(|l: &mut LayerEntry| {
        let Some(i) = diff_ids.iter().position(|d| *d == l.diff_id) else {
            return false;
        };
        let Some(d) = manifest_layers.get(i) else {
            return false;
        };
        l.digest = Some(d.digest);
        blobs.push(d.clone());
        true
    });
    Ok(Some((cache, blobs)))
}
