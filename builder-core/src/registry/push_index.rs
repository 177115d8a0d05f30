//! Pushing a multi-platform image: each platform's manifest (with its blobs) by digest, then the
//! image index, rewritten to name the manifests as pushed (layers may be compressed on the way),
//! under every tag.

use std::sync::Arc;

use super::push::{PushOptions, Pushed, push_prepared};
use super::{Reference, RegistryError, RegistryOptions};
use crate::content::ContentStore;
use crate::image::{Descriptor, Index, media};

/// Pushes the index `index_desc` from `store` to every reference in `targets`.
pub(crate) async fn push_index(
    store: Arc<ContentStore>,
    opts: &RegistryOptions,
    index_desc: &Descriptor,
    targets: &[Reference],
    popts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let st = store.clone();
    let digest = index_desc.digest;
    let index: Index = tokio::task::spawn_blocking(move || {
        let bytes = st.read_verified_bytes(&digest)?;
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidManifest {
            what: format!("index {digest}"),
            reason: e.to_string(),
        })
    })
    .await
    .map_err(|e| RegistryError::Task(e.to_string()))??;
    let mut entries = Vec::with_capacity(index.manifests.len());
    let (mut uploaded, mut mounted, mut existing) = (0, 0, 0);
    for entry in &index.manifests {
        if !media::is_manifest(&entry.media_type) {
            return Err(RegistryError::InvalidManifest {
                what: format!("index {digest}"),
                reason: format!("entry {} is not an image manifest", entry.digest),
            });
        }
        let (st, desc) = (store.clone(), entry.clone());
        let (compression, copts) = (popts.compression, popts.compress.clone());
        let (prepared, bytes) = tokio::task::spawn_blocking(move || {
            let p = crate::export::prepare(&st, &desc, compression, &copts)?;
            let bytes = st.read_verified_bytes(&p.manifest_desc.digest)?;
            Ok::<_, RegistryError>((p, bytes))
        })
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))??;
        let by_digest: Vec<Reference> = targets
            .iter()
            .map(|t| t.with_digest(prepared.manifest_desc.digest))
            .collect();
        let mut blobs = vec![prepared.manifest.config.clone()];
        blobs.extend(prepared.manifest.layers.iter().cloned());
        let pushed = push_prepared(
            &store,
            opts,
            &prepared.manifest_desc.media_type,
            &bytes,
            &blobs,
            &by_digest,
            popts,
        )
        .await?;
        uploaded += pushed.uploaded;
        mounted += pushed.mounted;
        existing += pushed.existing;
        let mut listed = prepared.manifest_desc.clone();
        listed.platform = entry.platform.clone().or(listed.platform);
        entries.push(listed);
    }
    let pushed_index = Index {
        manifests: entries,
        annotations: index.annotations.clone(),
        ..Index::default()
    };
    let st = store.clone();
    let bytes = tokio::task::spawn_blocking(move || {
        // Kept in the store too, so the pushed index can be read back locally.
        let desc = st.put_json(&pushed_index, media::OCI_INDEX)?;
        Ok::<_, RegistryError>(st.read_verified_bytes(&desc.digest)?)
    })
    .await
    .map_err(|e| RegistryError::Task(e.to_string()))??;
    let mut pushed =
        push_prepared(&store, opts, media::OCI_INDEX, &bytes, &[], targets, popts).await?;
    pushed.uploaded += uploaded;
    pushed.mounted += mounted;
    pushed.existing += existing;
    Ok(pushed)
}
