//! What the solver asks of a worker: the [`Worker`] trait, the step it hands over
//! ([`StepContext`]), and the states and images that pass between them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::cache::{CacheKey, LayerRef};
use crate::graph::{ImageRef, Op, Origin, SourceRef, StepId};
use crate::image::{ContainerConfig, Platform};
use crate::progress::EventSink;

/// A boxed future, so [`Worker`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A root filesystem state: the layers from the bottom up and the key that names the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsState {
    /// Names the state for cache keys of the steps that run on it.
    pub key: CacheKey,
    /// The layers, bottom first.
    pub layers: Vec<LayerRef>,
}

/// One image history entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Seconds since the epoch.
    pub created: i64,
    /// The time exactly as a base image wrote it (kept so inherited history is unchanged).
    pub created_text: Option<String>,
    /// The instruction.
    pub created_by: String,
    /// Whether the entry has no layer.
    pub empty_layer: bool,
    /// Author, if any.
    pub author: Option<String>,
    /// Comment, if any.
    pub comment: Option<String>,
}

/// An image a build starts from or reads files from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// The manifest digest the reference resolved to: it pins the build.
    pub digest: crate::content::Digest,
    /// The image's container config.
    pub config: ContainerConfig,
    /// The image's layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// The image's history.
    pub history: Vec<HistoryEntry>,
    /// The image's `created`, seconds since the epoch.
    pub created: Option<i64>,
    /// The image's `author`.
    pub author: Option<String>,
}

/// What a worker needs to run or key one step.
#[derive(Debug)]
pub struct StepContext<'a> {
    /// Which step.
    pub id: StepId,
    /// Where it came from.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the solver tests' worker names steps by it")
    )]
    pub origin: &'a Origin,
    /// What to do.
    pub op: &'a Op,
    /// The state to run on.
    pub parent: &'a FsState,
    /// States of the stages and images the op reads from.
    pub sources: &'a BTreeMap<SourceRef, FsState>,
    /// The platform the step's stage is for: a RUN executes its binaries.
    pub platform: &'a Platform,
}

/// Does the real work of steps: resolving images, hashing inputs, running ops.
pub trait Worker: Send + Sync {
    /// Resolves an image reference (FROM, `COPY --from=image`) for a platform, importing or
    /// pulling it as needed.
    fn resolve_image<'a>(
        &'a self,
        reference: &'a ImageRef,
        platform: &'a Platform,
    ) -> BoxFuture<'a, Result<ResolvedImage, crate::Error>>;

    /// A digest of the step's inputs that are not in the graph: the content and metadata of COPY
    /// sources and of bind-mounted context files. `None` when the op has no such inputs.
    fn input_digest<'a>(
        &'a self,
        step: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, crate::Error>>;

    /// Whether the layer's blob is present and trusted, so a cache record pointing at it is usable.
    fn has_layer(&self, layer: &LayerRef) -> bool;

    /// Every context file the step reads, with a digest of what the key takes from it, for
    /// explaining cache misses (path, digest). Called only on a miss. None by default.
    fn input_files<'a>(
        &'a self,
        _step: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<crate::cache::FileDigests, crate::Error>> {
        Box::pin(async { Ok(crate::cache::FileDigests::new()) })
    }

    /// Runs a filesystem op on the parent state and returns the layer it made (`None` when the op
    /// changed nothing).
    fn execute<'a>(
        &'a self,
        step: &'a StepContext<'a>,
        events: EventSink,
    ) -> BoxFuture<'a, Result<Option<LayerRef>, crate::Error>>;
}
