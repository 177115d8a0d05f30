//! A build's side of cache transfer: running each `--cache-from` before the solve and each
//! `--cache-to` after it, whatever the transport.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{CacheDestination, CacheExport, CacheSource, CacheTransferError};
use crate::cache::{CacheKey, CacheRecord, FileCacheStore};
use crate::content::{ContentStore, Digest};
use crate::image::Descriptor;
use crate::registry::RegistryOptions;

/// Imports one `--cache-from`; returns the warnings it gives (an import never fails a build).
pub(crate) async fn import(
    store: &Arc<ContentStore>,
    cache: &Arc<FileCacheStore>,
    registry: &RegistryOptions,
    source: &CacheSource,
) -> Vec<String> {
    let imported = match source {
        CacheSource::Registry(reference) => {
            crate::cache_transfer::registry::import_cache(
                store.clone(),
                cache.clone(),
                registry,
                reference,
                4,
            )
            .await
        }
        CacheSource::Local { dir, tag } => {
            let (store, cache, dir, tag) = (store.clone(), cache.clone(), dir.clone(), tag.clone());
            tokio::task::spawn_blocking(move || {
                super::local::import_local(&store, cache.as_ref(), &dir, &tag)
            })
            .await
            .unwrap_or_else(|e| Err(CacheTransferError::Task(crate::report::chain(&e))))
        }
    };
    match imported {
        Ok(i) => {
            tracing::info!(%source, records = i.records, dropped = i.dropped, "imported cache");
            i.problems
                .into_iter()
                .map(|p| format!("cache from {source}: {p}"))
                .collect()
        }
        Err(e) => vec![format!(
            "cannot import cache from {source}: {e}",
            e = crate::report::chain(&e)
        )],
    }
}

/// Writes one `--cache-to` of `records`; returns the digest of what it wrote (for an inline
/// cache, already in the image's config, the image manifest's).
pub(crate) async fn export(
    store: &Arc<ContentStore>,
    registry: &RegistryOptions,
    export: &CacheExport,
    records: Vec<(CacheKey, CacheRecord)>,
    image: &Descriptor,
) -> Result<Digest, CacheTransferError> {
    match &export.destination {
        CacheDestination::Registry(target) => Ok(crate::cache_transfer::registry::export_cache(
            store.clone(),
            registry,
            records,
            export.mode,
            target,
            &crate::registry::PushOptions::default(),
        )
        .await?
        .digest),
        CacheDestination::Local { dir, tag } => {
            let (store, dir, tag, mode) = (store.clone(), dir.clone(), tag.clone(), export.mode);
            let d = tokio::task::spawn_blocking(move || {
                super::local::export_local(&store, &records, mode, &dir, &tag)
            })
            .await
            .map_err(|e| CacheTransferError::Task(crate::report::chain(&e)))??;
            Ok(d.digest)
        }
        CacheDestination::Inline => Ok(image.digest),
    }
}

/// Writes every `--cache-to` of a build: the `records` recorded, selected by each export's
/// mode (`final_keys` for `min`). Returns what was written and a warning per failed export
/// with `ignore-error`; another failure is the build's error.
pub(crate) async fn export_all(
    store: &Arc<ContentStore>,
    registry: &RegistryOptions,
    exports: &[CacheExport],
    records: &[(CacheKey, CacheRecord)],
    final_keys: &BTreeSet<CacheKey>,
    image: &Descriptor,
) -> Result<(Vec<(String, Digest)>, Vec<String>), crate::Error> {
    let (mut written, mut failed) = (Vec::new(), Vec::new());
    for e in exports {
        let selected = super::select_records(records.to_vec(), e.mode, final_keys);
        match export(store, registry, e, selected, image).await {
            Ok(digest) => written.push((e.to_string(), digest)),
            Err(err) if e.ignore_error => failed.push(format!(
                "cannot export cache to {e}: {err}",
                err = crate::report::chain(&err)
            )),
            Err(err) => return Err(crate::Error::CacheTransfer(Box::new(err))),
        }
    }
    Ok((written, failed))
}

/// The stages whose steps made the image's layers (what `mode=min` exports): the target and
/// the stages it is built `FROM`, transitively.
pub(crate) fn image_stages(graph: &crate::graph::BuildGraph) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut at = Some(graph.target);
    while let Some(i) = at.filter(|i| out.insert(*i)) {
        at = match graph.stages.get(&i).map(|s| &s.base) {
            Some(crate::graph::Base::Stage(b)) => Some(*b),
            _ => None,
        };
    }
    out
}

/// The keys of the steps of `stages` (see [`image_stages`]).
pub(crate) fn final_keys(
    steps: &[crate::cache::StepExplanation],
    stages: &BTreeSet<usize>,
) -> BTreeSet<CacheKey> {
    steps
        .iter()
        .filter(|s| stages.contains(&s.stage))
        .filter_map(|s| CacheKey::from_hex(&s.key))
        .collect()
}

/// The value to put into the image config when one of `exports` is `type=inline`.
pub(crate) fn inline_cache(
    exports: &[CacheExport],
    recorded: &[(CacheKey, CacheRecord)],
    final_keys: &BTreeSet<CacheKey>,
    layers: &[crate::cache::LayerRef],
) -> Option<serde_json::Value> {
    if !exports
        .iter()
        .any(|c| c.destination == CacheDestination::Inline)
    {
        return None;
    }
    let records = super::select_records(recorded.to_vec(), super::CacheMode::Min, final_keys);
    super::inline::inline_value(&records, layers).ok()
}
