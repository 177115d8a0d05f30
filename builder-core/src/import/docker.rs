//! Reading image archives in one streaming pass, and docker-archive import.
//!
//! A docker-archive (`docker save`) has a `manifest.json` naming the config and layer files by
//! path: `blobs/sha256/<hex>` since Docker 25, `<id>/layer.tar` and `<hex>.json` before, with
//! duplicate layers written as symlinks to the first copy. Every file is streamed into the store
//! (files named by digest are verified against it), then the entry for the requested tag is
//! turned into an OCI manifest.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::diff::{DiffHasher, Diffs, NewBlobs, Tee, verify_layers};
use super::resolve::finish;
use super::{ImportError, ImportedImage, read_err};
use crate::content::{BlobInfo, ContentError, ContentStore, Digest};
use crate::fsroot::clean;
use crate::image::{Descriptor, Manifest, media};
use crate::layer::{ArchiveCompression, detect_compression};

const METADATA: &[&str] = &["manifest.json", "repositories", "index.json", "oci-layout"];
const METADATA_MAX: u64 = 64 << 20;

/// An archive read into the store.
pub(super) struct Streamed {
    /// Metadata files by name.
    pub(super) meta: BTreeMap<String, Vec<u8>>,
    /// Every other stored file by its cleaned path.
    pub(super) blobs: BTreeMap<String, BlobInfo>,
    /// The uncompressed digest of every stored file, by its digest.
    pub(super) diffs: Diffs,
}

fn digest_name(name: &str) -> Option<Digest> {
    Digest::from_hex(name.strip_prefix("blobs/sha256/")?).ok()
}

/// Streams an archive into the store, hashing each file's uncompressed content on the way (see
/// [`super::diff`]); the blobs new to the store are recorded in `new`. With `oci_only`, files
/// other than `blobs/sha256/<hex>` and the metadata files are skipped.
pub(super) fn stream_archive(
    store: &ContentStore,
    reader: impl Read,
    oci_only: bool,
    new: &mut NewBlobs<'_>,
) -> Result<Streamed, ImportError> {
    let mut archive = tar::Archive::new(reader);
    let mut meta = BTreeMap::new();
    let mut blobs = BTreeMap::new();
    let mut diffs = Diffs::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let path = clean(Path::new(std::ffi::OsStr::from_bytes(&entry.path_bytes())));
        let name = path.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name_bytes() {
                let target = Path::new(std::ffi::OsStr::from_bytes(&target)).to_path_buf();
                let base = if kind.is_symlink() {
                    path.parent().unwrap_or(Path::new("")).join(target)
                } else {
                    target
                };
                links.push((name, clean(&base).to_string_lossy().into_owned()));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        if METADATA.contains(&name.as_str()) {
            if size > METADATA_MAX {
                return Err(ImportError::Archive(io::Error::other(format!(
                    "{name} is {size} bytes"
                ))));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(tar_error)?;
            meta.insert(name, bytes);
            continue;
        }
        let named = digest_name(&name);
        let legacy_meta = name.ends_with("/json") || name.ends_with("/VERSION");
        if named.is_none() && (oci_only || legacy_meta) {
            continue;
        }
        let mut diff = DiffHasher::new();
        let present = named.is_some_and(|d| store.size(&d).ok() == Some(size));
        let info = if let (true, Some(d)) = (present, named) {
            // Already stored: only hashed, so that its content is known and checked.
            io::copy(&mut entry, &mut diff).map_err(|e| read_err(e, PathBuf::from(&name)))?;
            let (digest, got, uncompressed) = diff.finish();
            check_named(&d, size, digest, got)?;
            diffs.insert(digest, uncompressed);
            BlobInfo { digest: d, size }
        } else {
            let mut w = store.writer()?;
            io::copy(&mut entry, &mut Tee(&mut w, &mut diff))
                .map_err(|e| read_err(e, PathBuf::from(&name)))?;
            let (digest, _, uncompressed) = diff.finish();
            let existed = store.size(&digest).is_ok();
            let info = w.commit(named.as_ref().map(|d| (d, size)))?;
            if !existed {
                new.push(info.digest);
            }
            diffs.insert(digest, uncompressed);
            info
        };
        blobs.insert(name, info);
    }
    for (name, target) in links {
        if let Some(info) = blobs.get(&target).copied() {
            blobs.insert(name, info);
        }
    }
    Ok(Streamed { meta, blobs, diffs })
}

/// A file named by its digest must have that digest and size.
fn check_named(name: &Digest, size: u64, digest: Digest, got: u64) -> Result<(), ImportError> {
    if *name != digest {
        return Err(ContentError::DigestMismatch {
            expected: *name,
            actual: digest,
        }
        .into());
    }
    if size != got {
        return Err(ContentError::SizeMismatch {
            digest,
            expected: size,
            actual: got,
        }
        .into());
    }
    Ok(())
}

/// The tar reader's errors quote the header bytes they failed on (`numeric field was not a
/// number: <bytes> when getting cksum for <bytes>`), and a file that is not an archive at all
/// (a password file, a token) would be quoted that way: keep only the kind of failure.
fn tar_error(e: io::Error) -> ImportError {
    if e.raw_os_error().is_some() {
        return ImportError::Archive(e);
    }
    let what = match e.kind() {
        io::ErrorKind::UnexpectedEof => "the archive ends early",
        _ => "not a tar archive, or a damaged one",
    };
    ImportError::Archive(io::Error::new(e.kind(), what))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// `app:1` and `docker.io/library/app:1` name the same image, as Docker normalizes them.
#[cfg(test)]
fn same_tag(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.strip_prefix("docker.io/").unwrap_or(s);
        let s = s.strip_prefix("library/").unwrap_or(s);
        let last = s.rsplit('/').next().unwrap_or(s);
        if last.contains(':') || last.contains('@') {
            s.to_string()
        } else {
            format!("{s}:latest")
        }
    }
    a == b || norm(a) == norm(b)
}

/// Imports an image from a docker-archive tar, by tag (from `RepoTags`) or, without one, the
/// archive's only image. The manifest is built as an OCI manifest; layer media types follow
/// each layer's actual compression. The library loads archives with `import_archive`; this one
/// image at a time is the tests'.
#[cfg(test)]
pub(crate) fn import_docker_archive(
    store: &ContentStore,
    reader: impl Read,
    tag: Option<&str>,
) -> Result<ImportedImage, ImportError> {
    let mut new = NewBlobs::new(store);
    let streamed = stream_archive(store, reader, false, &mut new)?;
    let entries = archive_entries(&streamed.meta)?;
    let source_name = "docker archive".to_string();
    let all_tags = || -> Vec<String> {
        entries
            .iter()
            .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
            .collect()
    };
    let entry = match tag {
        Some(tag) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| same_tag(t, tag)))
            .ok_or_else(|| ImportError::TagNotFound {
                tag: tag.to_string(),
                source_name: source_name.clone(),
                available: all_tags(),
            })?,
        None => match entries.as_slice() {
            [] => return Err(ImportError::Empty(source_name)),
            [only] => only,
            many => {
                return Err(ImportError::Ambiguous {
                    source_name,
                    count: many.len(),
                    available: all_tags(),
                });
            }
        },
    };
    let layers = entry_layers(store, entry, &streamed)?;
    let image = entry_image(store, layers)?;
    new.keep();
    Ok(image)
}

/// Every image of an already streamed docker-archive, with the tags `RepoTags` gives it. Every
/// image's layers are checked before the first manifest is stored.
pub(super) fn load_docker_streamed(
    store: &ContentStore,
    streamed: &Streamed,
) -> Result<Vec<(Vec<String>, ImportedImage)>, ImportError> {
    let entries = archive_entries(&streamed.meta)?;
    if entries.is_empty() {
        return Err(ImportError::Empty("docker archive".into()));
    }
    let checked = entries
        .iter()
        .map(|e| entry_layers(store, e, streamed))
        .collect::<Result<Vec<_>, _>>()?;
    entries
        .iter()
        .zip(checked)
        .map(|(e, layers)| {
            Ok((
                e.repo_tags.clone().unwrap_or_default(),
                entry_image(store, layers)?,
            ))
        })
        .collect()
}

fn archive_entries(meta: &BTreeMap<String, Vec<u8>>) -> Result<Vec<ArchiveEntry>, ImportError> {
    let bytes = meta
        .get("manifest.json")
        .ok_or_else(|| ImportError::MissingBlob {
            source_name: "docker archive".into(),
            what: "file",
            name: "manifest.json".into(),
        })?;
    serde_json::from_slice(bytes).map_err(|source: serde_json::Error| ImportError::Json {
        what: "manifest.json".into(),
        source: source.into(),
    })
}

/// One `manifest.json` entry's config and layer descriptors, its layers checked against the
/// config's diff_ids.
struct EntryLayers {
    config: BlobInfo,
    layers: Vec<Descriptor>,
}

/// Finds one entry's blobs and checks its layers; stores nothing.
fn entry_layers(
    store: &ContentStore,
    entry: &ArchiveEntry,
    streamed: &Streamed,
) -> Result<EntryLayers, ImportError> {
    let blobs = &streamed.blobs;
    let find = |path: &str, what: &'static str| -> Result<BlobInfo, ImportError> {
        let key = clean(Path::new(path)).to_string_lossy().into_owned();
        blobs
            .get(&key)
            .copied()
            .ok_or_else(|| ImportError::MissingBlob {
                source_name: "docker archive".into(),
                what,
                name: path.to_string(),
            })
    };
    let config = find(&entry.config, "config")?;
    let mut layers = Vec::with_capacity(entry.layers.len());
    for path in &entry.layers {
        let blob = find(path, "layer")?;
        let media_type = match sniff(store, &blob.digest)? {
            ArchiveCompression::Gzip => media::OCI_LAYER_GZIP,
            ArchiveCompression::Zstd => media::OCI_LAYER_ZSTD,
            ArchiveCompression::None => media::OCI_LAYER_TAR,
            ArchiveCompression::Bzip2 | ArchiveCompression::Xz => {
                return Err(ImportError::UnsupportedMediaType {
                    digest: blob.digest,
                    media_type: "bzip2 or xz layer".into(),
                });
            }
        };
        layers.push(Descriptor::new(media_type, blob.digest, blob.size));
    }
    let config_json: crate::image::ImageConfig =
        store.read_json(&config.digest).map_err(|e| match e {
            ContentError::Json { source, .. } => ImportError::Json {
                what: format!("image config {}", entry.config),
                source,
            },
            other => other.into(),
        })?;
    verify_layers(
        store,
        &config_json,
        &layers,
        &entry.layers,
        &streamed.diffs,
        true,
    )?;
    Ok(EntryLayers { config, layers })
}

/// Stores the OCI manifest of one checked `manifest.json` entry.
fn entry_image(store: &ContentStore, entry: EntryLayers) -> Result<ImportedImage, ImportError> {
    let EntryLayers { config, layers } = entry;
    let manifest = Manifest::oci(
        Descriptor::new(media::OCI_CONFIG, config.digest, config.size),
        layers,
    );
    let desc = store.put_json(&manifest, media::OCI_MANIFEST)?;
    finish(store, desc, manifest)
}

/// The compression of a stored blob, from its first bytes.
fn sniff(store: &ContentStore, digest: &Digest) -> Result<ArchiveCompression, ImportError> {
    let path = store.blob_path(digest);
    let mut head = [0u8; 6];
    let mut f = std::fs::File::open(&path).map_err(|source| {
        ImportError::Io(crate::report::IoError {
            op: "open",
            path: path.clone(),
            source,
        })
    })?;
    let got = crate::stream::read_full(&mut f, &mut head).map_err(|source| {
        ImportError::Io(crate::report::IoError {
            op: "read",
            path,
            source,
        })
    })?;
    Ok(detect_compression(&head[..got]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_tags_normalize() {
        assert!(super::same_tag("app:1", "docker.io/library/app:1"));
        assert!(super::same_tag("app", "app:latest"));
        assert!(!super::same_tag("app:1", "app:2"));
        assert!(super::same_tag("ghcr.io/x/y:1", "ghcr.io/x/y:1"));
    }
}
