//! Pushing an image as it leaves the store ([`crate::export::Outgoing`]): a single manifest
//! under every tag; or each manifest of an index (every platform's image, then the attestation
//! manifests) by digest, then the index under every tag, so that a tag never names anything the
//! registry lacks.

use std::sync::Arc;

use super::push::{PushOptions, Pushed, push_prepared};
use super::{Reference, RegistryError, RegistryOptions};
use crate::content::ContentStore;
use crate::export::Outgoing;
use crate::image::media;

/// Pushes `outgoing` from `store` to every reference in `targets`; the digest is the top
/// manifest's (the index's when there is one).
pub(crate) async fn push_outgoing(
    store: &Arc<ContentStore>,
    opts: &RegistryOptions,
    outgoing: &Outgoing,
    targets: &[Reference],
    popts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let Some(index) = &outgoing.index else {
        let Some(m) = outgoing.manifests.first() else {
            return Err(RegistryError::Task("nothing to push".into()));
        };
        return push_prepared(
            store,
            opts,
            &m.desc.media_type,
            &m.bytes,
            &m.blobs,
            targets,
            popts,
        )
        .await;
    };
    let (mut uploaded, mut mounted, mut existing) = (0, 0, 0);
    for m in &outgoing.manifests {
        let mut by_digest: Vec<Reference> = Vec::new();
        for t in targets {
            let r = t.with_digest(m.desc.digest);
            if !by_digest.contains(&r) {
                by_digest.push(r);
            }
        }
        let pushed = push_prepared(
            store,
            opts,
            &m.desc.media_type,
            &m.bytes,
            &m.blobs,
            &by_digest,
            popts,
        )
        .await?;
        uploaded += pushed.uploaded;
        mounted += pushed.mounted;
        existing += pushed.existing;
    }
    let mut pushed = push_prepared(
        store,
        opts,
        media::OCI_INDEX,
        &index.bytes,
        &[],
        targets,
        popts,
    )
    .await?;
    pushed.uploaded += uploaded;
    pushed.mounted += mounted;
    pushed.existing += existing;
    Ok(pushed)
}
