//! docker-archive export: the tar `docker save` writes since Docker 25 — blobs under
//! `blobs/sha256/`, `manifest.json` listing config and layers by path with `RepoTags`, the legacy
//! `repositories` file, and (so that OCI tools read it too) `index.json` and `oci-layout`.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::tarball::{TarOut, blob_name};
use super::{ExportError, ExportOptions, prepare};
use crate::content::{Digest, OCI_LAYOUT_JSON};
use crate::image::{Descriptor, Index, to_canonical_json};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Splits `repo:tag` at the last colon after the last slash (`localhost:5000/app` has no tag).
fn split_tag(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "latest"),
    }
}

/// Writes the image as a docker-archive tar to `out`. Docker's own archives hold uncompressed
/// layers; `docker load` and skopeo accept gzip ones too, and `opts.compression` decides.
pub fn export_docker_archive<W: Write>(
    store: &crate::content::ContentStore,
    manifest: &Descriptor,
    out: W,
    opts: &ExportOptions,
) -> Result<(Descriptor, W), ExportError> {
    let p = prepare(store, manifest, opts.compression, &opts.compress)?;
    let json_err = |source: serde_json::Error| ExportError::Json {
        what: "docker-archive manifest",
        digest: p.manifest_desc.digest,
        source: source.into(),
    };
    let layer_names: Vec<String> = p
        .manifest
        .layers
        .iter()
        .map(|l| blob_name(&l.digest))
        .collect();
    let manifest_json = to_canonical_json(&[ManifestEntry {
        config: blob_name(&p.manifest.config.digest),
        repo_tags: opts.tags.clone(),
        layers: layer_names,
    }])
    .map_err(json_err)?;
    let mut repos: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    let top = p
        .manifest
        .layers
        .last()
        .map(|l| l.digest.hex())
        .unwrap_or_default();
    for tag in &opts.tags {
        let (repo, t) = split_tag(tag);
        repos.entry(repo).or_default().insert(t, top.clone());
    }
    let repositories = to_canonical_json(&repos).map_err(json_err)?;
    let mut index = Index::default();
    index.manifests.push(p.manifest_desc.clone());
    if let Some(tag) = opts.tags.first() {
        crate::content::index_set_tag(&mut index, tag, &p.manifest_desc);
        index
            .manifests
            .retain(|d| crate::content::tag_of(d).is_some());
    }
    let index = index.to_canonical_json().map_err(json_err)?;

    let mut blobs: Vec<Digest> = std::iter::once(p.manifest_desc.digest)
        .chain(std::iter::once(p.manifest.config.digest))
        .chain(p.manifest.layers.iter().map(|l| l.digest))
        .collect();
    blobs.sort();
    blobs.dedup();
    let mut tar = TarOut::new(out);
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    for d in &blobs {
        opts.checkpoint()?;
        tar.blob(&blob_name(d), store, d)?;
    }
    tar.file("index.json", &index)?;
    tar.file("manifest.json", &manifest_json)?;
    tar.file("oci-layout", OCI_LAYOUT_JSON)?;
    if !opts.tags.is_empty() {
        tar.file("repositories", &repositories)?;
    }
    Ok((p.manifest_desc, tar.finish()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_tags() {
        assert_eq!(super::split_tag("app:1"), ("app", "1"));
        assert_eq!(
            super::split_tag("localhost:5000/app"),
            ("localhost:5000/app", "latest")
        );
        assert_eq!(
            super::split_tag("docker.io/library/app:1.2"),
            ("docker.io/library/app", "1.2")
        );
    }
}
