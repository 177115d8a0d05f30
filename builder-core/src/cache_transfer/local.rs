//! The cache in an OCI layout directory (`--cache-to type=local,dest=DIR`,
//! `--cache-from type=local,src=DIR`), as BuildKit lays it out: `oci-layout`, `index.json`
//! naming the cache manifest by tag (`org.opencontainers.image.ref.name`, default `latest`), and
//! `blobs/sha256/`. CI systems save such a directory after a job and restore it before the next.
//!
//! The directory is hostile input on import: its `index.json` and manifests are parsed with
//! limits, blobs are opened by digest only (never by a name it supplies), through the
//! directory's descriptor without following symlinks out of it, and each is copied into the store
//! verified against its digest and size; layers are checked against their diff_ids before any
//! record naming them is written.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::{
    Bundle, CacheConfig, CacheMode, CacheTransferError, ImportedCache, bundle, check_manifest,
    check_version, verify_layers, write_records,
};
use crate::cache::{CacheKey, CacheRecord, CacheStore};
use crate::content::{ContentStore, Digest};
use crate::fsroot::Root;
use crate::image::{Descriptor, Index, Manifest};
use crate::layer::CompressOptions;

/// Index and manifest files larger than this are refused.
const MAX_JSON: u64 = 4 << 20;

/// Exports `records` and their layers into the layout at `dir`, tagged `tag`; returns the cache
/// manifest's descriptor. Blocking.
pub fn export_local(
    store: &ContentStore,
    records: &[(CacheKey, CacheRecord)],
    mode: CacheMode,
    dir: &Path,
    tag: &str,
) -> Result<Descriptor, CacheTransferError> {
    crate::content::validate_tag(tag)?;
    let Bundle {
        manifest, blobs, ..
    } = bundle(store, records, mode, &CompressOptions::default())?;
    let mut digests: Vec<Digest> = blobs.iter().map(|d| d.digest).collect();
    digests.push(manifest.digest);
    digests.sort();
    digests.dedup();
    let mut entries = Index::default();
    crate::content::index_set_tag(&mut entries, tag, &manifest);
    crate::export::write_layout(store, &digests, &entries, dir)?;
    Ok(manifest)
}

/// The layout directory, opened confined.
struct Layout<'a> {
    dir: &'a Path,
    root: Root,
}

impl Layout<'_> {
    fn name(&self) -> String {
        self.dir.display().to_string()
    }

    fn open(&self, rel: &str) -> Result<std::fs::File, CacheTransferError> {
        Ok(self.root.open_file(Path::new(rel))?)
    }

    fn read_small(&self, rel: &str) -> Result<Vec<u8>, CacheTransferError> {
        let mut bytes = Vec::new();
        self.open(rel)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| {
                CacheTransferError::Io(crate::report::IoError {
                    op: "read",
                    path: self.dir.join(rel),
                    source,
                })
            })?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(self.not_a_cache(format!("{rel} is larger than {MAX_JSON} bytes")));
        }
        Ok(bytes)
    }

    fn not_a_cache(&self, reason: String) -> CacheTransferError {
        CacheTransferError::NotACache {
            source_name: self.name(),
            reason,
        }
    }

    /// Copies a blob into the store, verified against its descriptor (unless already there).
    fn copy_into(&self, store: &ContentStore, d: &Descriptor) -> Result<(), CacheTransferError> {
        if store.size(&d.digest).ok() == Some(d.size) {
            return Ok(());
        }
        let rel = format!("blobs/sha256/{}", d.digest.hex());
        let f = self.open(&rel)?;
        let mut w = store.writer()?;
        // Never read more than the descriptor promises.
        std::io::copy(&mut f.take(d.size + 1), &mut w).map_err(|source| {
            CacheTransferError::Io(crate::report::IoError {
                op: "read",
                path: self.dir.join(&rel),
                source,
            })
        })?;
        w.commit(Some((&d.digest, d.size)))?;
        Ok(())
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        d: &Descriptor,
        what: &str,
    ) -> Result<T, CacheTransferError> {
        if d.size > MAX_JSON {
            return Err(self.not_a_cache(format!("its {what} is larger than {MAX_JSON} bytes")));
        }
        let bytes = self.read_small(&format!("blobs/sha256/{}", d.digest.hex()))?;
        if bytes.len() as u64 != d.size || Digest::of(&bytes) != d.digest {
            return Err(self.not_a_cache(format!("its {what} does not match its digest")));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| self.not_a_cache(format!("its {what}: {e}", e = crate::report::chain(&e))))
    }
}

/// Imports the cache tagged `tag` in the layout at `dir` into `store` and `cache`. Blocking.
pub fn import_local(
    store: &Arc<ContentStore>,
    cache: &dyn CacheStore,
    dir: &Path,
    tag: &str,
) -> Result<ImportedCache, CacheTransferError> {
    let root = Root::open(dir)?;
    let layout = Layout { dir, root };
    let index: Index = serde_json::from_slice(&layout.read_small("index.json")?).map_err(|e| {
        layout.not_a_cache(format!("index.json: {e}", e = crate::report::chain(&e)))
    })?;
    let entry = index
        .manifests
        .iter()
        .find(|d| crate::content::tag_of(d) == Some(tag))
        .ok_or_else(|| layout.not_a_cache(format!("its index.json has no tag {tag:?}")))?;
    let manifest: Manifest = layout.json(entry, "manifest")?;
    let source_name = format!("{}:{tag}", layout.name());
    let config_desc = check_manifest(&manifest, &source_name)?;
    let config: CacheConfig = layout.json(&config_desc, "cache config")?;
    let mut out = ImportedCache::default();
    out.problems.extend(check_version(&config, &source_name)?);
    let mut wanted = Vec::new();
    for l in &config.layers {
        if store.size(&l.diff_id).ok() == Some(l.size) {
            continue;
        }
        let Some(d) = l
            .digest
            .and_then(|digest| manifest.layers.iter().find(|d| d.digest == digest))
        else {
            out.problems
                .push(format!("layer {} is not in the cache manifest", l.diff_id));
            continue;
        };
        match layout.copy_into(store, d) {
            Ok(()) => wanted.push((l.diff_id, l.size, d.digest)),
            Err(e) => out.problems.push(format!(
                "layer {}: {e}",
                d.digest,
                e = crate::report::chain(&e)
            )),
        }
    }
    let (verified, problems): (BTreeSet<Digest>, Vec<String>) = verify_layers(store, wanted);
    out.problems.extend(problems);
    write_records(store, cache, &config, &verified, &mut out)?;
    Ok(out)
}
