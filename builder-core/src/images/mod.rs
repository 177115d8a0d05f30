//! Image management on the local store: listing, naming, removing, inspecting, saving and loading
//! the images `index.json` tags. The command line only renders what these functions return, so
//! programs embedding the engine get the same operations.
//!
//! Images are named by reference (`app:1`, normalized like Docker to `docker.io/library/app:1`,
//! which is how the store tags them) or by id: the config digest (Docker's image id) or the
//! manifest digest, with or without `sha256:`, or a unique prefix of at least 4 hex digits.
//! Removing a tag never deletes blobs; they stay until garbage collection.

use std::io::{Read, Write};

use crate::content::{ContentError, ContentStore, Digest};
use crate::export::{ExportError, ExportOptions, export_docker_archive, export_oci_archive};
use crate::image::{Descriptor, ImageConfig, Manifest, Platform};
use crate::import::{ImportError, import_archive};
use crate::worker::normalize_reference;

mod select;

pub use select::{manifest_for, manifests_under};

/// An error of an image operation.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The store failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// No image has this name or id.
    #[error("no image {reference:?} in the store")]
    NotFound {
        /// What was asked for.
        reference: String,
    },
    /// An id prefix matches several images.
    #[error("{reference:?} matches several images: {}", matches.join(", "))]
    Ambiguous {
        /// What was asked for.
        reference: String,
        /// The names of the matching images.
        matches: Vec<String>,
    },
    /// `rmi` by id of an image with several names.
    #[error("image {id} has several names ({}); remove them by name, or force", names.join(", "))]
    SeveralNames {
        /// The id.
        id: String,
        /// Its names.
        names: Vec<String>,
    },
    /// A multi-platform image has no image for the platform asked for.
    #[error("image {reference:?} has no image for platform {platform} (it has: {})", available.join(", "))]
    NoPlatform {
        /// What was asked for.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// An operation that writes one image was given a multi-platform one without a platform.
    #[error("image {reference:?} is a multi-platform image ({}): pick one with --platform", available.join(", "))]
    NeedsPlatform {
        /// What was asked for.
        reference: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// The new name is not a valid reference.
    #[error("invalid image name {0:?}")]
    InvalidName(String),
    /// `save` of several different images into one archive.
    #[error("cannot save several different images into one archive yet ({})", names.join(", "))]
    SeveralImages {
        /// The images asked for.
        names: Vec<String>,
    },
    /// Writing an archive failed (boxed: export and import errors are large).
    #[error(transparent)]
    Export(Box<ExportError>),
    /// Reading an archive failed.
    #[error(transparent)]
    Import(Box<ImportError>),
    /// The attestations attached to an image cannot be read.
    #[error(transparent)]
    Attestations(#[from] crate::attest::AttestError),
}

impl From<ExportError> for ImagesError {
    fn from(e: ExportError) -> Self {
        ImagesError::Export(Box::new(e))
    }
}

impl From<crate::export::dest::DestError> for ImagesError {
    fn from(e: crate::export::dest::DestError) -> Self {
        ImagesError::Export(Box::new(e.into()))
    }
}

impl From<ImportError> for ImagesError {
    fn from(e: ImportError) -> Self {
        ImagesError::Import(Box::new(e))
    }
}

/// One tagged image, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSummary {
    /// The full name as tagged (`docker.io/library/app:1`).
    pub name: String,
    /// The repository part (`docker.io/library/app`).
    pub repository: String,
    /// The tag part (`1`), or the digest for `name@sha256:...` references.
    pub tag: String,
    /// The manifest's descriptor.
    pub manifest: Descriptor,
    /// The image id (config digest).
    pub id: Digest,
    /// The config's `created`, RFC 3339.
    pub created: Option<String>,
    /// Bytes of the config and layers as stored.
    pub size: u64,
    /// The platform the image's config names.
    pub platform: Platform,
}

/// An image's manifest and config, parsed and as stored.
#[derive(Debug, Clone)]
pub struct ImageDetails {
    /// Every name pointing to the image.
    pub names: Vec<String>,
    /// The manifest's descriptor.
    pub manifest_desc: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

impl ImageDetails {
    /// The image id (config digest).
    pub fn id(&self) -> Digest {
        self.manifest.config.digest
    }

    /// Bytes of the config and layers as stored.
    pub fn size(&self) -> u64 {
        self.manifest.config.size + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// One row of an image's history, newest first, with the size of the layer it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// When, RFC 3339.
    pub created: Option<String>,
    /// The instruction.
    pub created_by: String,
    /// The layer's size as stored; 0 for steps without a layer.
    pub size: u64,
    /// The layer's digest in the manifest; `None` for steps without a layer.
    pub layer: Option<Digest>,
    /// The entry's comment.
    pub comment: Option<String>,
}

/// The archive formats of [`save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save`'s format (also readable as an OCI layout).
    Docker,
    /// An OCI image layout in a tar.
    Oci,
}

/// Splits `repo:tag` or `repo@digest` at the tag's colon (after the last slash) or at the `@`.
pub fn split_reference(name: &str) -> (&str, &str) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (repo, digest);
    }
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, ""),
    }
}

fn manifest_of(store: &ContentStore, desc: &Descriptor) -> Result<Manifest, ImagesError> {
    Ok(store.read_json_as(&desc.digest, "manifest")?)
}

/// Every tagged image, sorted by name; a multi-platform image gives one row per platform.
pub fn list(store: &ContentStore) -> Result<Vec<ImageSummary>, ImagesError> {
    let mut out = Vec::new();
    for (name, desc) in store.list()? {
        for one in select::manifests_under(store, &desc)? {
            let manifest = manifest_of(store, &one)?;
            let config: ImageConfig =
                store.read_json_as(&manifest.config.digest, "image config")?;
            let (repository, tag) = split_reference(&name);
            out.push(ImageSummary {
                repository: repository.to_string(),
                tag: tag.to_string(),
                id: manifest.config.digest,
                created: config.created.clone(),
                size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
                manifest: one,
                name: name.clone(),
                platform: config.platform().normalized(),
            });
        }
    }
    Ok(out)
}

/// The hex digits of an id: `sha256:` stripped, at least 4, all hex.
fn id_prefix(reference: &str) -> Option<&str> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    let ok = hex.len() >= 4
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// Finds the image `reference` names: a tag (as given, or normalized), else an id prefix of a
/// config or manifest digest. Returns every name of the image and its manifest descriptor.
pub fn resolve(
    store: &ContentStore,
    reference: &str,
) -> Result<(Vec<String>, Descriptor), ImagesError> {
    let tagged = store.list()?;
    let normalized = normalize_reference(reference);
    let by_name = tagged
        .iter()
        .find(|(n, _)| n == reference)
        .or_else(|| tagged.iter().find(|(n, _)| *n == normalized));
    let names_of = |digest: &Digest| -> Vec<String> {
        tagged
            .iter()
            .filter(|(_, d)| d.digest == *digest)
            .map(|(n, _)| n.clone())
            .collect()
    };
    if let Some((_, desc)) = by_name {
        return Ok((names_of(&desc.digest), strip(desc)));
    }
    let Some(prefix) = id_prefix(reference) else {
        return Err(ImagesError::NotFound {
            reference: reference.to_string(),
        });
    };
    let mut found: Vec<&Descriptor> = Vec::new();
    for (_, desc) in &tagged {
        if found.iter().any(|d| d.digest == desc.digest) {
            continue;
        }
        let matches = desc.digest.hex().starts_with(prefix)
            || manifest_of(store, desc)?
                .config
                .digest
                .hex()
                .starts_with(prefix);
        if matches {
            found.push(desc);
        }
    }
    match found.as_slice() {
        [] => Err(ImagesError::NotFound {
            reference: reference.to_string(),
        }),
        [one] => Ok((names_of(&one.digest), strip(one))),
        many => Err(ImagesError::Ambiguous {
            reference: reference.to_string(),
            matches: many
                .iter()
                .flat_map(|d| names_of(&d.digest).into_iter().take(1))
                .collect(),
        }),
    }
}

/// The descriptor without its tag's names; an image's attachments stay with it (a new tag of
/// it carries them too).
fn strip(desc: &Descriptor) -> Descriptor {
    let mut d = desc.clone();
    d.annotations = desc
        .annotation(crate::attest::ANNOTATION_ATTACHMENTS)
        .map(|a| {
            [(
                crate::attest::ANNOTATION_ATTACHMENTS.to_string(),
                a.to_string(),
            )]
            .into()
        });
    d
}

/// Gives the image `source` names the name `target` (normalized). Returns the full new name.
pub fn tag(store: &ContentStore, source: &str, target: &str) -> Result<String, ImagesError> {
    let (_, desc) = resolve(store, source)?;
    let valid = !target.is_empty()
        && !target.starts_with(['-', ':', '/', '@'])
        && !target.ends_with([':', '/'])
        && !target.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ImagesError::InvalidName(target.to_string()));
    }
    let name = normalize_reference(target);
    store.set_tag(&name, &desc)?;
    Ok(name)
}

/// Removes the name `reference`, or, for an id, every name of the image when `force` is set or
/// it has only one. Returns the removed names. Blobs are left for garbage collection.
pub fn remove(
    store: &ContentStore,
    reference: &str,
    force: bool,
) -> Result<Vec<String>, ImagesError> {
    let (names, _) = resolve(store, reference)?;
    let normalized = normalize_reference(reference);
    let by_name: Vec<String> = names
        .iter()
        .filter(|n| *n == reference || **n == normalized)
        .cloned()
        .collect();
    let targets = if !by_name.is_empty() {
        by_name
    } else if names.len() > 1 && !force {
        return Err(ImagesError::SeveralNames {
            id: reference.to_string(),
            names,
        });
    } else {
        names
    };
    let mut removed = Vec::new();
    for n in targets {
        if store.remove_tag(&n)? {
            removed.push(n);
        }
    }
    Ok(removed)
}

/// The image's names, manifest and config.
pub fn inspect(store: &ContentStore, reference: &str) -> Result<ImageDetails, ImagesError> {
    inspect_platform(store, reference, None)
}

/// [`inspect`] for one platform of a multi-platform image (the host's when `None`). An image
/// that is not multi-platform must be for `platform` when one is given.
pub fn inspect_platform(
    store: &ContentStore,
    reference: &str,
    platform: Option<&Platform>,
) -> Result<ImageDetails, ImagesError> {
    let (names, top) = resolve(store, reference)?;
    let manifest_desc = select::manifest_for(store, reference, &top, platform)?;
    let manifest = manifest_of(store, &manifest_desc)?;
    let config: ImageConfig = store.read_json_as(&manifest.config.digest, "image config")?;
    if let Some(p) = platform
        && !config.platform().matches(p)
    {
        return Err(ImagesError::NoPlatform {
            reference: reference.to_string(),
            platform: p.to_string(),
            available: vec![config.platform().normalized().to_string()],
        });
    }
    Ok(ImageDetails {
        names,
        manifest_desc,
        manifest,
        config,
    })
}

/// The image's history, newest first, each entry with the layer it made (entries and layers are
/// paired in order, skipping `empty_layer` entries, as Docker does).
pub fn history(store: &ContentStore, reference: &str) -> Result<Vec<HistoryRow>, ImagesError> {
    let details = inspect(store, reference)?;
    let mut layers = details.manifest.layers.iter();
    let mut rows: Vec<HistoryRow> = details
        .config
        .history
        .iter()
        .flatten()
        .map(|h| {
            let layer = if h.empty_layer.unwrap_or(false) {
                None
            } else {
                layers.next()
            };
            HistoryRow {
                created: h.created.clone(),
                created_by: h.created_by.clone().unwrap_or_default(),
                size: layer.map_or(0, |l| l.size),
                layer: layer.map(|l| l.digest),
                comment: h.comment.clone(),
            }
        })
        .collect();
    // Images without history (some tools write none) still list their layers.
    for l in layers {
        rows.push(HistoryRow {
            created: None,
            created_by: String::new(),
            size: l.size,
            layer: Some(l.digest),
            comment: None,
        });
    }
    rows.reverse();
    Ok(rows)
}

/// The attestation statements (in-toto JSON: provenance, SBOM) attached to an image manifest (as
/// [`inspect_platform`] gives it), in the order they were made; none when it has none.
pub fn attestations(
    store: &ContentStore,
    manifest: &Descriptor,
) -> Result<Vec<serde_json::Value>, ImagesError> {
    let Some(attachments) = crate::attest::Attachments::of(store, manifest)? else {
        return Ok(Vec::new());
    };
    let mut statements = Vec::new();
    for layer in &attachments.layers {
        statements.push(store.read_json(&layer.digest)?);
    }
    Ok(statements)
}

/// Writes the images `references` name into one archive. They must all be the same image (by
/// several names, each recorded in the archive). Names given by id add no name. Returns the
/// manifest written.
pub fn save<W: Write>(
    store: &ContentStore,
    references: &[String],
    format: ArchiveFormat,
    platform: Option<&Platform>,
    out: W,
) -> Result<(Descriptor, W), ImagesError> {
    let mut manifest: Option<Descriptor> = None;
    let mut names: Vec<String> = Vec::new();
    for r in references {
        let (all_names, desc) = resolve(store, r)?;
        if let Some(m) = &manifest
            && m.digest != desc.digest
        {
            return Err(ImagesError::SeveralImages {
                names: references.to_vec(),
            });
        }
        manifest = Some(desc);
        let normalized = normalize_reference(r);
        if let Some(n) = all_names.iter().find(|n| **n == *r || **n == normalized)
            && !names.contains(n)
        {
            names.push(n.clone());
        }
    }
    let Some(mut manifest) = manifest else {
        return Err(ImagesError::NotFound {
            reference: String::new(),
        });
    };
    let reference = references.first().cloned().unwrap_or_default();
    if crate::image::media::is_index(&manifest.media_type) {
        // A docker-archive holds one image per name: a multi-platform image needs a platform.
        match (platform, format) {
            (Some(p), _) => manifest = select::manifest_for(store, &reference, &manifest, Some(p))?,
            (None, ArchiveFormat::Docker) => {
                return Err(ImagesError::NeedsPlatform {
                    available: select::manifests_under(store, &manifest)?
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                        .collect(),
                    reference,
                });
            }
            (None, ArchiveFormat::Oci) => {}
        }
    } else if platform.is_some() {
        // Checks that the one image is for the platform asked for.
        inspect_platform(store, &reference, platform)?;
    }
    let opts = ExportOptions {
        tags: names,
        ..ExportOptions::default()
    };
    Ok(match format {
        ArchiveFormat::Docker => export_docker_archive(store, &manifest, out, &opts)?,
        ArchiveFormat::Oci => export_oci_archive(store, &manifest, out, &opts)?,
    })
}

/// An image [`load`] put into the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The names it was given (normalized); empty when the archive named it not.
    pub names: Vec<String>,
    /// The manifest.
    pub manifest: Descriptor,
    /// The image id (config digest).
    pub id: Digest,
}

/// Reads a docker-archive or OCI archive into the store and tags its images with the names the
/// archive gives them. Every blob is verified while it is stored.
pub fn load(store: &ContentStore, reader: impl Read) -> Result<Vec<Loaded>, ImagesError> {
    let images = import_archive(store, reader, &Platform::host())?;
    let mut out = Vec::with_capacity(images.len());
    for img in images {
        let mut names = Vec::new();
        for t in &img.tags {
            let name = normalize_reference(t);
            store.set_tag(&name, &img.image.manifest_desc)?;
            names.push(name);
        }
        out.push(Loaded {
            names,
            id: img.image.config_digest(),
            manifest: img.image.manifest_desc,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
