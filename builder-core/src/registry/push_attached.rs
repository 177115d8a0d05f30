//! Pushing an image with attachments (provenance, SBOM, index annotations): the image manifest
//! by digest, then its attestation manifest by digest, then the index (see
//! [`crate::attest::index`]) under every tag, so that a tag never points at anything missing.

use std::sync::Arc;

use super::push::{PushOptions, Pushed, push, push_prepared};
use super::{Reference, RegistryError, RegistryOptions};
use crate::attest::Attachments;
use crate::content::{ContentStore, Digest};
use crate::image::{Descriptor, media};

fn pinned(targets: &[Reference], digest: Digest) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    for t in targets {
        let r = t.with_digest(digest);
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// Pushes `image` with `attachments` to every reference in `targets`; the returned digest is
/// the index's.
pub async fn push_with_attachments(
    store: Arc<ContentStore>,
    opts: &RegistryOptions,
    image: &Descriptor,
    attachments: &Attachments,
    targets: &[Reference],
    popts: &PushOptions,
) -> Result<Pushed, RegistryError> {
    let task = |e: tokio::task::JoinError| RegistryError::Task(e.to_string());
    let attach = |e: crate::attest::AttestError| RegistryError::Attachments(Box::new(e));
    let (st, desc, compression, copts) = (
        store.clone(),
        image.clone(),
        popts.compression,
        popts.compress.clone(),
    );
    // The manifest as it will be pushed (its layers compressed); the store remembers the work.
    let prepared = tokio::task::spawn_blocking(move || {
        crate::export::prepare(&st, &desc, compression, &copts)
    })
    .await
    .map_err(task)?
    .map_err(RegistryError::from)?;
    let image_pushed = push(
        store.clone(),
        opts,
        image,
        &pinned(targets, prepared.manifest_desc.digest),
        popts,
    )
    .await?;
    let (st, att, names) = (
        store.clone(),
        attachments.clone(),
        targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
    );
    let manifest_desc = prepared.manifest_desc.clone();
    let assembled = tokio::task::spawn_blocking(move || {
        crate::attest::index::assemble(&st, &manifest_desc, &att, &names)
    })
    .await
    .map_err(task)?
    .map_err(attach)?;
    let mut total = image_pushed;
    if let Some(a) = &assembled.attestation {
        let p = push_prepared(
            &store,
            opts,
            media::OCI_MANIFEST,
            &a.bytes,
            &a.blobs,
            &pinned(targets, a.desc.digest),
            popts,
        )
        .await?;
        total.uploaded += p.uploaded;
        total.mounted += p.mounted;
        total.existing += p.existing;
    }
    let index = push_prepared(
        &store,
        opts,
        media::OCI_INDEX,
        &assembled.index.bytes,
        &[],
        targets,
        popts,
    )
    .await?;
    Ok(Pushed {
        digest: index.digest,
        references: index.references,
        ..total
    })
}
