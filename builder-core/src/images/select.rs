//! Picking images out of a stored index: every image manifest under a descriptor, and the one
//! for a platform.

use super::ImagesError;
use crate::content::ContentStore;
use crate::image::{Descriptor, Platform};

/// The image manifests a descriptor names: itself, or the entries of its index (nested indexes
/// followed a few levels deep, attestation manifests left out).
pub fn manifests_under(
    store: &ContentStore,
    desc: &Descriptor,
) -> Result<Vec<Descriptor>, ImagesError> {
    let mut out = Vec::new();
    let mut todo = vec![(desc.clone(), 0)];
    while let Some((d, depth)) = todo.pop() {
        if !crate::image::media::is_index(&d.media_type) {
            out.push(d);
            continue;
        }
        if depth >= 4 {
            continue;
        }
        let index: crate::image::Index = store.read_json_as(&d.digest, "index")?;
        for e in index.manifests.into_iter().rev() {
            // Attestation manifests are about an image, not images.
            if e.annotation(crate::image::ANNOTATION_REFERENCE_TYPE)
                .is_some()
            {
                continue;
            }
            if crate::image::media::is_manifest(&e.media_type)
                || crate::image::media::is_index(&e.media_type)
            {
                todo.push((e, depth + 1));
            }
        }
    }
    Ok(out)
}

/// The manifest of `desc` for `platform`: an image manifest as it is; from an index, the entry
/// for `platform` (the host's when `None`, else the only entry).
pub fn manifest_for(
    store: &ContentStore,
    reference: &str,
    desc: &Descriptor,
    platform: Option<&Platform>,
) -> Result<Descriptor, ImagesError> {
    if !crate::image::media::is_index(&desc.media_type) {
        return Ok(desc.clone());
    }
    let entries = manifests_under(store, desc)?;
    let available: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
        .collect();
    let want = platform.cloned().unwrap_or_else(Platform::host);
    let found = want.compatible().into_iter().find_map(|p| {
        entries
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|dp| dp.matches(&p)))
    });
    match (found, platform, entries.as_slice()) {
        (Some(d), _, _) => Ok(d.clone()),
        (None, None, [only]) => Ok(only.clone()),
        (None, _, _) => Err(ImagesError::NoPlatform {
            reference: reference.to_string(),
            platform: want.to_string(),
            available,
        }),
    }
}
