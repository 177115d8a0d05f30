//! What `kiln build` does with a finished build: the `-o` outputs, `--load`, the push
//! (`--push`, `-o type=registry`), `--metadata-file` in BuildKit's keys, and the summary.

use std::path::Path;
use std::time::Instant;

use kiln_builder_core::content::{ContentStore, Digest};
use kiln_builder_core::{BuildOutput, Builder};
use miette::{IntoDiagnostic, WrapErr, miette};

use super::export::{Output, write_output};
use super::load_into::Loader;
use super::push::PushFlags;

/// Where the image goes after the build.
pub(crate) struct Delivery<'a> {
    /// The `-o` outputs.
    pub outputs: &'a [Output],
    /// `--load`: the program that loads it.
    pub loader: Option<Loader>,
    /// Push to the registry of every tag.
    pub push: bool,
    /// How to push.
    pub push_flags: &'a PushFlags,
    /// Progress bars on a terminal.
    pub show_progress: bool,
    /// `--quiet`: no push report.
    pub quiet: bool,
}

/// Writes the outputs, loads and pushes the image; returns the pushed digest (the index's when
/// the image is pushed as one).
pub(crate) fn deliver(
    builder: &Builder,
    output: &BuildOutput,
    all_tags: &[String],
    d: &Delivery,
) -> miette::Result<Option<Digest>> {
    for o in d.outputs {
        match o {
            // Several platforms: one root filesystem per platform, in a directory named after
            // it (`linux_arm64`), as BuildKit's local exporter writes them.
            Output::Local(dest) if output.images.len() > 1 => {
                for image in &output.images {
                    let name = image
                        .platform
                        .as_ref()
                        .map(|p| p.to_string().replace('/', "_"))
                        .ok_or_else(|| miette!("an image of the index names no platform"))?;
                    write_output(
                        builder.store(),
                        image,
                        &Output::Local(dest.join(name)),
                        all_tags,
                        d.show_progress,
                    )?;
                }
            }
            _ => write_output(
                builder.store(),
                &output.manifest,
                o,
                all_tags,
                d.show_progress,
            )?,
        }
    }
    if let Some(loader) = &d.loader {
        super::load_into::load(builder.store(), &output.manifest, all_tags, loader)?;
    }
    if !d.push {
        return Ok(None);
    }
    let targets = output
        .tags
        .iter()
        .map(|t| kiln_builder_core::registry::Reference::parse(t).map_err(|e| miette!("{e}")))
        .collect::<miette::Result<Vec<_>>>()?;
    let pushed = super::push::push_image(
        builder.store_arc(),
        builder.registry_options(),
        &output.manifest,
        &targets,
        d.push_flags,
        d.show_progress,
        d.quiet,
    )?;
    Ok(Some(pushed.digest))
}

/// `--metadata-file`: BuildKit's keys. `containerimage.digest` is the digest the registry has
/// when the image was pushed, as BuildKit reports it.
pub(crate) fn write_metadata(
    file: &Path,
    output: &BuildOutput,
    pushed: Option<Digest>,
    all_tags: &[String],
) -> miette::Result<()> {
    let mut meta = serde_json::json!({
        "containerimage.digest": pushed.unwrap_or(output.manifest.digest).to_string(),
        "containerimage.config.digest": output.config_digest.to_string(),
        "containerimage.descriptor": {
            "mediaType": output.manifest.media_type,
            "digest": output.manifest.digest.to_string(),
            "size": output.manifest.size,
        },
        "image.name": all_tags.join(","),
    });
    // As buildx: one key for a single platform, one per platform for several.
    match output.provenance.as_slice() {
        [(_, p)] if output.images.len() == 1 => meta["buildx.build.provenance"] = p.clone(),
        all => {
            for (platform, p) in all {
                meta[format!("buildx.build.provenance/{platform}")] = p.clone();
            }
        }
    }
    let bytes = serde_json::to_vec_pretty(&meta).into_diagnostic()?;
    kiln_builder_core::content::write_atomic(file, &bytes)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", file.display()))
}

/// The summary on stderr: id, digest, size, cache hits, each platform, cache exports, tags.
pub(crate) fn print_summary(
    store: &ContentStore,
    output: &BuildOutput,
    started: Instant,
    all_tags: &[String],
) {
    let cached = output.steps.iter().filter(|s| s.cached).count();
    let size = output
        .images
        .iter()
        .map(|m| image_size(store, &m.digest))
        .sum::<Option<u64>>();
    eprintln!(
        "image {}\n  digest {}\n  size {}\n  {} of {} steps cached, {:.1}s",
        output.config_digest,
        output.manifest.digest,
        size.map_or("unknown".into(), super::images::human_size),
        cached,
        output.steps.len(),
        started.elapsed().as_secs_f64(),
    );
    if output.images.len() > 1 {
        for m in &output.images {
            let platform = m.platform.as_ref().map(ToString::to_string);
            eprintln!("  {} {}", platform.unwrap_or_default(), m.digest);
        }
    }
    for (to, d) in &output.cache_exports {
        eprintln!("  cache exported ({to}): {d}");
    }
    for t in all_tags {
        eprintln!("  tagged {t}");
    }
}

/// The stored size of the image's config and layers.
fn image_size(store: &ContentStore, manifest: &Digest) -> Option<u64> {
    let m: kiln_builder_core::image::Manifest = store.read_json(manifest).ok()?;
    Some(m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>())
}
