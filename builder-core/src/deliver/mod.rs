//! What happens to a built image: the `-o` outputs, `--load`, the push to the registry of every
//! tag, and BuildKit's `--metadata-file` keys. [`deliver()`] runs it after
//! [`Builder::build`](crate::Builder::build); both are what `kiln build` does.
//!
//! ```no_run
//! use kiln_builder_core::deliver::{Delivery, Output};
//! use kiln_builder_core::registry::PushOptions;
//! # async fn f(builder: &kiln_builder_core::Builder, built: &kiln_builder_core::BuildOutput) -> Result<(), kiln_builder_core::deliver::DeliverError> {
//! let mut delivery = Delivery::new(vec!["type=oci,dest=app.tar".parse::<Output>().unwrap()]);
//! delivery.push = Some(PushOptions::default());
//! let delivered = kiln_builder_core::deliver::deliver(builder, built, &delivery, None).await?;
//! println!("pushed {:?}", delivered.pushed.map(|p| p.digest));
//! # Ok(()) }
//! ```

mod load;
mod output;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use load::{LoadError, Loader};
pub use output::{Output, check_tag, parse_bool, parse_kv, parse_output};

use crate::builder::{BuildOutput, Builder};
use crate::content::{ContentStore, Digest};
use crate::export::{ByteProgress, Cancel, ExportError, ExportOptions};
use crate::image::Descriptor;
use crate::registry::{PushOptions, PushProgressFn, Pushed, Reference, RegistryError};

/// Where a built image goes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Delivery {
    /// The `-o` outputs, written in order.
    pub outputs: Vec<Output>,
    /// `--load`: the program that loads it.
    pub load: Option<Loader>,
    /// Push to the registry of every tag, with these options (their `progress` is replaced by
    /// the delivery's).
    pub push: Option<PushOptions>,
}

impl Delivery {
    /// Writes these outputs; pushes when one is `type=registry`.
    pub fn new(outputs: Vec<Output>) -> Self {
        let push = outputs
            .iter()
            .any(|o| matches!(o, Output::Registry(_)))
            .then(PushOptions::default);
        Delivery {
            outputs,
            load: None,
            push,
        }
    }

    /// The names the outputs add to the build's tags (`type=image,name=`, `type=registry,name=`).
    pub fn extra_tags(&self) -> Vec<String> {
        self.outputs
            .iter()
            .flat_map(|o| match o {
                Output::Image(names) | Output::Registry(names) => names.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Checks, before a build, that the delivery can take what the build makes: `platforms`
    /// images and these `tags`; `load` when a loader is still to be found (see
    /// [`Loader::find`]).
    pub fn check(&self, platforms: usize, tags: &[String], load: bool) -> Result<(), DeliverError> {
        if platforms > 1 {
            if let Some(o) = self.outputs.iter().find(|o| !o.takes_several_platforms()) {
                return Err(DeliverError::SinglePlatform {
                    what: o.kind(),
                    platforms,
                    hint: "pick one with --platform, or use -o type=oci or type=local for all of them",
                });
            }
            if load || self.load.is_some() {
                return Err(DeliverError::SinglePlatform {
                    what: "--load",
                    platforms,
                    hint: "pick one with --platform, or push the index (--push)",
                });
            }
        }
        if self.push.is_some() && tags.is_empty() && self.extra_tags().is_empty() {
            return Err(DeliverError::NothingToPushTo);
        }
        Ok(())
    }
}

/// A step of a delivery, for progress displays.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DeliveryEvent {
    /// An output starts (`-o type=oci`).
    ExportStarted {
        /// The output as the flag names it.
        kind: &'static str,
    },
    /// This many more bytes of an output's stream were written.
    Exported(u64),
    /// An output is done; `streamed` when it wrote a stream (a tar) whose bytes were counted.
    ExportFinished {
        /// Whether it succeeded.
        ok: bool,
        /// Whether it wrote a counted stream.
        streamed: bool,
    },
    /// The image was loaded into docker or podman.
    Loaded {
        /// `docker` or `podman`.
        program: String,
        /// What it said.
        message: String,
    },
    /// A blob the registry lacks starts uploading.
    PushBlob {
        /// Its size.
        size: u64,
    },
    /// This many more bytes were sent to the registry.
    PushSent(u64),
    /// The push is done.
    PushFinished {
        /// Whether it succeeded.
        ok: bool,
    },
}

/// The callback of a delivery; called from blocking and upload threads, so it must be cheap.
#[derive(Clone)]
pub struct DeliveryProgress(pub Arc<dyn Fn(DeliveryEvent) + Send + Sync>);

impl std::fmt::Debug for DeliveryProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryProgress")
    }
}

impl DeliveryProgress {
    fn send(&self, e: DeliveryEvent) {
        (self.0)(e)
    }
}

/// What a delivery did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Delivered {
    /// The push, when there was one: the digest the registry has (the index's for several
    /// platforms) and the references written.
    pub pushed: Option<Pushed>,
    /// What the loader printed, when the image was loaded.
    pub loaded: Option<String>,
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum DeliverError {
    /// An output that holds one image, and several platforms.
    #[error("{what} needs a single platform, and --platform names {platforms}: {hint}")]
    #[diagnostic(code(kiln::deliver::single_platform))]
    SinglePlatform {
        /// The output.
        what: &'static str,
        /// How many platforms the build makes.
        platforms: usize,
        /// What to do instead.
        hint: &'static str,
    },
    /// A push without a name.
    #[error("--push and -o type=registry need a name to push to (-t NAME[:TAG] or name=)")]
    #[diagnostic(code(kiln::deliver::no_name))]
    NothingToPushTo,
    /// A tag is not a valid reference.
    #[error("{tag:?} is not a valid reference")]
    #[diagnostic(code(kiln::deliver::reference))]
    Reference {
        /// The tag.
        tag: String,
        /// Why.
        #[source]
        source: crate::registry::InvalidReference,
    },
    /// An image of an index names no platform (`type=local` of several platforms).
    #[error("an image of the index names no platform")]
    #[diagnostic(code(kiln::deliver::no_platform))]
    NoPlatform,
    /// Writing an output failed.
    #[error(transparent)]
    #[diagnostic(code(kiln::deliver::export))]
    Export(#[from] ExportError),
    /// Loading into docker or podman failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    /// The push failed.
    #[error(transparent)]
    #[diagnostic(code(kiln::deliver::push))]
    Push(#[from] RegistryError),
    /// The store's garbage-collection lease could not be taken.
    #[error(transparent)]
    #[diagnostic(code(kiln::deliver::lease))]
    Lease(#[from] crate::gc::GcError),
    /// Writing the metadata file failed.
    #[error("cannot write {}", path.display())]
    #[diagnostic(code(kiln::deliver::metadata))]
    Metadata {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::content::ContentError,
    },
    /// A blocking task ended abnormally.
    #[error("delivery task failed: {0}")]
    #[diagnostic(code(kiln::deliver::task))]
    Task(String),
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeliverError> + Send + 'static,
) -> Result<T, DeliverError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DeliverError::Task(crate::report::chain(&e)))?
}

/// Cancels the exports of a delivery when dropped: the delivery's future was dropped (or it
/// finished, when nothing is left to cancel).
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// One output of the image `image`, with its progress events.
fn write_output(
    store: &ContentStore,
    image: &Descriptor,
    output: &Output,
    tags: &[String],
    progress: Option<&DeliveryProgress>,
    cancel: &Cancel,
) -> Result<(), DeliverError> {
    let Some(exporter) = output.exporter() else {
        // The build already tagged the image with these names (and pushes it for a registry).
        return Ok(());
    };
    let streamed = matches!(
        output,
        Output::OciArchive(_) | Output::Docker(_) | Output::Tar(_)
    );
    if let Some(p) = progress {
        p.send(DeliveryEvent::ExportStarted {
            kind: output.kind(),
        });
    }
    let opts = ExportOptions {
        tags: tags.to_vec(),
        progress: progress.map(|p| {
            let p = p.clone();
            ByteProgress(Arc::new(move |n| p.send(DeliveryEvent::Exported(n))))
        }),
        cancel: cancel.clone(),
        ..ExportOptions::default()
    };
    let result = exporter.export(store, image, &opts);
    if let Some(p) = progress {
        p.send(DeliveryEvent::ExportFinished {
            ok: result.is_ok(),
            streamed,
        });
    }
    Ok(result?)
}

/// Writes the outputs of a finished build, loads it into docker or podman and pushes it, as
/// `delivery` says. Dropping the future stops it: an output being written stops at its next
/// write, blob or layer on its blocking thread and removes what it wrote of an archive or an OCI
/// layout directory (a root filesystem directory keeps the whole files it wrote), a push stops
/// at once.
pub async fn deliver(
    builder: &Builder,
    output: &BuildOutput,
    delivery: &Delivery,
    progress: Option<DeliveryProgress>,
) -> Result<Delivered, DeliverError> {
    let store = builder.store_arc();
    let tags: Vec<String> = output
        .tags
        .iter()
        .map(|t| crate::registry::normalize_reference(t))
        .collect();
    // The outputs and the push read the image's blobs: no collection meanwhile.
    let lease = {
        let store = store.clone();
        blocking(move || Ok(crate::gc::BuildLease::acquire(&store)?)).await?
    };
    let mut delivered = Delivered::default();
    let cancel = CancelOnDrop(Cancel::default());
    for o in &delivery.outputs {
        let (store, o, tags, p, output, cancel) = (
            store.clone(),
            o.clone(),
            tags.clone(),
            progress.clone(),
            output.clone(),
            cancel.0.clone(),
        );
        blocking(move || match &o {
            // Several platforms: one root filesystem per platform, in a directory named after
            // it (`linux_arm64`), as BuildKit's local exporter writes them.
            Output::Local(dest) if output.images.len() > 1 => {
                for image in &output.images {
                    let name = image
                        .platform
                        .as_ref()
                        .map(|p| p.to_string().replace('/', "_"))
                        .ok_or(DeliverError::NoPlatform)?;
                    let one = Output::Local(dest.join(name));
                    write_output(&store, image, &one, &tags, p.as_ref(), &cancel)?;
                }
                Ok(())
            }
            _ => write_output(&store, &output.manifest, &o, &tags, p.as_ref(), &cancel),
        })
        .await?;
    }
    if let Some(loader) = &delivery.load {
        let (store, loader, manifest, tags) = (
            store.clone(),
            loader.clone(),
            output.manifest.clone(),
            tags.clone(),
        );
        let program = loader.name();
        let message = blocking(move || Ok(loader.load(&store, &manifest, &tags)?)).await?;
        if let Some(p) = &progress {
            p.send(DeliveryEvent::Loaded {
                program,
                message: message.clone(),
            });
        }
        delivered.loaded = Some(message);
    }
    if let Some(popts) = &delivery.push {
        let targets = output
            .tags
            .iter()
            .map(|t| {
                Reference::parse(t).map_err(|source| DeliverError::Reference {
                    tag: t.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut popts = popts.clone();
        popts.progress = progress.clone().map(|p| {
            PushProgressFn(Arc::new(move |e| {
                p.send(match e {
                    crate::registry::PushProgress::Blob { size } => {
                        DeliveryEvent::PushBlob { size }
                    }
                    crate::registry::PushProgress::Sent(n) => DeliveryEvent::PushSent(n),
                })
            }))
        });
        let pushed = crate::registry::push(
            store.clone(),
            builder.registry_options(),
            &output.manifest,
            &targets,
            &popts,
        )
        .await;
        if let Some(p) = &progress {
            p.send(DeliveryEvent::PushFinished { ok: pushed.is_ok() });
        }
        delivered.pushed = Some(pushed?);
    }
    drop(lease);
    Ok(delivered)
}

/// `--metadata-file`: BuildKit's keys. `containerimage.digest` is the digest the registry has
/// when the image was pushed, as BuildKit reports it.
pub fn metadata(output: &BuildOutput, pushed: Option<Digest>) -> serde_json::Value {
    let tags: Vec<String> = output
        .tags
        .iter()
        .map(|t| crate::registry::normalize_reference(t))
        .collect();
    let mut meta = serde_json::json!({
        "containerimage.digest": pushed.unwrap_or(output.manifest.digest).to_string(),
        "containerimage.config.digest": output.config_digest.to_string(),
        "containerimage.descriptor": {
            "mediaType": output.manifest.media_type,
            "digest": output.manifest.digest.to_string(),
            "size": output.manifest.size,
        },
        "image.name": tags.join(","),
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
    meta
}

/// Writes [`metadata`] to `file`, atomically.
pub fn write_metadata(
    file: &Path,
    output: &BuildOutput,
    pushed: Option<Digest>,
) -> Result<(), DeliverError> {
    let meta = metadata(output, pushed);
    let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| DeliverError::Metadata {
        path: file.to_path_buf(),
        source: crate::content::ContentError::io("serialize", file, std::io::Error::other(e)),
    })?;
    crate::content::write_atomic(file, &bytes).map_err(|source| DeliverError::Metadata {
        path: file.to_path_buf(),
        source,
    })
}

/// The stored size of an image's config and layers (`None` when a blob cannot be read).
pub fn image_size(store: &ContentStore, manifest: &Digest) -> Option<u64> {
    let m: crate::image::Manifest = store.read_json(manifest).ok()?;
    Some(m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>())
}
