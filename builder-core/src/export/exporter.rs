//! The [`Exporter`] trait: one implementation per kind of output (`-o type=...`), so that a
//! caller picks an output by value and writes any image with it.
//!
//! ```no_run
//! use kiln_builder_core::export::{ExportOptions, Exporter, OciArchiveExporter};
//! # fn f(store: &kiln_builder_core::content::ContentStore, image: &kiln_builder_core::image::Descriptor) -> Result<(), kiln_builder_core::export::ExportError> {
//! let exporter = OciArchiveExporter::new("app.tar");
//! exporter.export(store, image, &ExportOptions::default())?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ExportError, ExportOptions};
use crate::content::ContentStore;
use crate::image::Descriptor;

/// Called with the number of bytes written, as a tar export goes out.
#[derive(Clone)]
pub struct ByteProgress(pub Arc<dyn Fn(u64) + Send + Sync>);

impl fmt::Debug for ByteProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ByteProgress")
    }
}

/// Cancels exports: every clone shares one flag. An export checks it before each write, blob
/// and layer and stops with [`ExportError::Cancelled`], its partly written output removed.
///
/// ```
/// use kiln_builder_core::export::{Cancel, ExportOptions};
///
/// let opts = ExportOptions::default();
/// let cancel: Cancel = opts.cancel.clone();
/// assert!(opts.checkpoint().is_ok());
/// cancel.cancel();
/// assert!(opts.checkpoint().is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Cancels every export that holds this token (or a clone of it).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Writes an image of the store somewhere.
pub trait Exporter: fmt::Debug + Send + Sync {
    /// The output as Docker's `--output` flag names it (`type=oci`).
    fn kind(&self) -> &'static str;

    /// Whether it can write an image index of several platforms (else it needs one image).
    fn takes_index(&self) -> bool;

    /// Writes the image (a manifest, or an index where [`takes_index`](Self::takes_index)).
    /// Blocking: call it from a blocking thread in async code.
    fn export(
        &self,
        store: &ContentStore,
        image: &Descriptor,
        opts: &ExportOptions,
    ) -> Result<(), ExportError>;
}

/// Counts bytes on their way to `inner`; refuses them once the export is cancelled.
struct Counting<W> {
    inner: W,
    progress: Option<ByteProgress>,
    cancel: Cancel,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other("export cancelled"));
        }
        let n = self.inner.write(buf)?;
        if let Some(p) = &self.progress {
            (p.0)(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a stream to `dest` (the rules of [`super::dest`]), counted on the options' progress.
fn stream(
    dest: &Path,
    opts: &ExportOptions,
    write: impl FnOnce(
        Counting<Box<dyn Write + Send>>,
    ) -> Result<Counting<Box<dyn Write + Send>>, ExportError>,
) -> Result<(), ExportError> {
    super::dest::write_stream(dest, |out| {
        let counted = Counting {
            inner: out,
            progress: opts.progress.clone(),
            cancel: opts.cancel.clone(),
        };
        write(counted).map(|c| c.inner)
    })
    .map_err(|e| match opts.checkpoint() {
        Err(cancelled) => cancelled,
        Ok(()) => ExportError::To {
            dest: dest.to_path_buf(),
            source: Box::new(e),
        },
    })
}

/// `type=oci,tar=false`: an OCI image layout directory (added to when it exists).
#[derive(Debug, Clone)]
pub struct OciLayoutExporter {
    dir: PathBuf,
}

impl OciLayoutExporter {
    /// Writes into the layout directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl Exporter for OciLayoutExporter {
    fn kind(&self) -> &'static str {
        "type=oci"
    }

    fn takes_index(&self) -> bool {
        true
    }

    fn export(
        &self,
        store: &ContentStore,
        image: &Descriptor,
        opts: &ExportOptions,
    ) -> Result<(), ExportError> {
        super::export_oci_dir(store, image, &self.dir, opts)
            .map(|_| ())
            .map_err(|e| e.to(&self.dir))
    }
}

/// `type=oci`: an OCI archive (a tar of an OCI layout), as BuildKit writes it.
#[derive(Debug, Clone)]
pub struct OciArchiveExporter {
    dest: PathBuf,
}

impl OciArchiveExporter {
    /// Writes to `dest` (`-` is standard output).
    pub fn new(dest: impl Into<PathBuf>) -> Self {
        Self { dest: dest.into() }
    }
}

impl Exporter for OciArchiveExporter {
    fn kind(&self) -> &'static str {
        "type=oci"
    }

    fn takes_index(&self) -> bool {
        true
    }

    fn export(
        &self,
        store: &ContentStore,
        image: &Descriptor,
        opts: &ExportOptions,
    ) -> Result<(), ExportError> {
        stream(&self.dest, opts, |out| {
            super::export_oci_archive(store, image, out, opts).map(|(_, out)| out)
        })
    }
}

/// `type=docker`: a docker-archive, for `docker load` (one platform).
#[derive(Debug, Clone)]
pub struct DockerArchiveExporter {
    dest: PathBuf,
}

impl DockerArchiveExporter {
    /// Writes to `dest` (`-` is standard output).
    pub fn new(dest: impl Into<PathBuf>) -> Self {
        Self { dest: dest.into() }
    }
}

impl Exporter for DockerArchiveExporter {
    fn kind(&self) -> &'static str {
        "type=docker"
    }

    fn takes_index(&self) -> bool {
        false
    }

    fn export(
        &self,
        store: &ContentStore,
        image: &Descriptor,
        opts: &ExportOptions,
    ) -> Result<(), ExportError> {
        stream(&self.dest, opts, |out| {
            super::export_docker_archive(store, image, out, opts).map(|(_, out)| out)
        })
    }
}

/// `type=local`: the image's root filesystem in a directory.
#[derive(Debug, Clone)]
pub struct LocalExporter {
    dir: PathBuf,
}

impl LocalExporter {
    /// Writes into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl Exporter for LocalExporter {
    fn kind(&self) -> &'static str {
        "type=local"
    }

    fn takes_index(&self) -> bool {
        false
    }

    fn export(
        &self,
        store: &ContentStore,
        image: &Descriptor,
        opts: &ExportOptions,
    ) -> Result<(), ExportError> {
        super::export_rootfs(store, image, &self.dir, &Default::default(), opts)
            .map_err(|e| e.to(&self.dir))
    }
}

/// `type=tar`: the image's root filesystem as one tar; for an index, one directory per platform.
#[derive(Debug, Clone)]
pub struct TarExporter {
    dest: PathBuf,
}

impl TarExporter {
    /// Writes to `dest` (`-` is standard output).
    pub fn new(dest: impl Into<PathBuf>) -> Self {
        Self { dest: dest.into() }
    }
}

impl Exporter for TarExporter {
    fn kind(&self) -> &'static str {
        "type=tar"
    }

    fn takes_index(&self) -> bool {
        true
    }

    fn export(
        &self,
        store: &ContentStore,
        image: &Descriptor,
        opts: &ExportOptions,
    ) -> Result<(), ExportError> {
        let scratch = store.state_dir().join("tmp");
        stream(&self.dest, opts, |out| {
            super::export_rootfs_tar(store, image, &scratch, out, opts)
        })
    }
}
