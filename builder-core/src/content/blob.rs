//! Writing blobs into the store (hash while writing, verify, then rename into place) and reading
//! them back with verification at end of file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use tempfile::NamedTempFile;

use super::atomic::fsync_dir;
use super::error::{ContentError, Result};
use super::{Digest, Hasher};

/// A committed blob: its digest and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobInfo {
    /// The blob's sha256.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
}

/// Writes a new blob into the store. Bytes go to a temp file in the store's temp directory and are
/// hashed on the way; [`BlobWriter::commit`] verifies and renames the file into `blobs/sha256/`.
/// Dropping the writer without committing removes the temp file.
pub struct BlobWriter {
    file: BufWriter<NamedTempFile>,
    hasher: PipedHasher,
    blobs_dir: PathBuf,
    /// Bytes already handed to the kernel's writeback (see [`BlobWriter::start_writeback`]).
    written_back: u64,
}

const BUF_SIZE: usize = 1 << 20;

/// How much written data may wait before its writeback is started.
const WRITEBACK_STEP: u64 = 8 << 20;

impl BlobWriter {
    pub(super) fn new(tmp_dir: &std::path::Path, blobs_dir: PathBuf) -> Result<Self> {
        let tmp = locked_temp_file(tmp_dir)?;
        Ok(Self {
            file: BufWriter::with_capacity(BUF_SIZE, tmp),
            hasher: PipedHasher::default(),
            blobs_dir,
            written_back: 0,
        })
    }

    /// Starts the kernel's writeback of what reached the file since the last call, without
    /// waiting for it. A large layer's final `fdatasync` then finds most of its pages on disk
    /// already instead of flushing a gigabyte at once while nothing else runs; the disk works
    /// while the layer is still being produced.
    fn start_writeback(&mut self) {
        // Bytes still in the buffer are not in the file yet.
        let in_file = self
            .hasher
            .len()
            .saturating_sub(self.file.buffer().len() as u64);
        if in_file < self.written_back + WRITEBACK_STEP {
            return;
        }
        use std::os::fd::AsRawFd;
        let fd = self.file.get_ref().as_file().as_raw_fd();
        // SAFETY: `fd` is the open temp file this writer owns; sync_file_range only reads its
        // arguments. A failure is harmless (commit's fdatasync does the work), so it is ignored.
        unsafe {
            libc::sync_file_range(
                fd,
                self.written_back as libc::off64_t,
                (in_file - self.written_back) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.written_back = in_file;
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// The temp file's path (for error messages).
    pub fn temp_path(&self) -> &std::path::Path {
        self.file.get_ref().path()
    }

    /// Finishes the blob: flushes and fsyncs it, checks it against `expected` (digest and size)
    /// when given, and moves it to `blobs/sha256/<hex>`, then fsyncs that directory. A blob that
    /// is already present is kept and the new copy discarded.
    pub fn commit(self, expected: Option<(&Digest, u64)>) -> Result<BlobInfo> {
        let (digest, size) = self.hasher.finish().ok_or_else(|| {
            ContentError::io(
                "hash",
                self.file.get_ref().path(),
                io::Error::other("the hashing thread failed"),
            )
        })?;
        if let Some((want, want_size)) = expected {
            if *want != digest {
                return Err(ContentError::DigestMismatch {
                    expected: *want,
                    actual: digest,
                });
            }
            if want_size != size {
                return Err(ContentError::SizeMismatch {
                    digest,
                    expected: want_size,
                    actual: size,
                });
            }
        }
        let info = BlobInfo { digest, size };
        let target = self.blobs_dir.join(digest.hex());
        if let Ok(meta) = std::fs::metadata(&target)
            && meta.len() == size
        {
            return Ok(info);
        }
        let tmp_path = self.file.get_ref().path().to_path_buf();
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| ContentError::io("write", &tmp_path, e.into_error()))?;
        tmp.as_file()
            .sync_data()
            .map_err(|e| ContentError::io("fsync", &tmp_path, e))?;
        tmp.persist(&target)
            .map_err(|e| ContentError::io("rename into place", &target, e.error))?;
        fsync_dir(&self.blobs_dir)?;
        Ok(info)
    }
}

/// A new temp file in `tmp_dir`, exclusively locked for as long as it is open, so that
/// [`super::ContentStore::clean_abandoned`] can tell a live writer's file from one a killed process
/// left behind. The cleaner deletes a file only while holding its lock; a file that was deleted
/// between its creation and our lock has no links left, and we start again with a new one.
fn locked_temp_file(tmp_dir: &std::path::Path) -> Result<NamedTempFile> {
    use std::os::unix::fs::MetadataExt;
    let mut attempts = 0;
    loop {
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(tmp_dir)
            .map_err(|e| ContentError::io("create temp file in", tmp_dir, e))?;
        tmp.as_file()
            .lock()
            .map_err(|e| ContentError::io("lock", tmp.path(), e))?;
        let links = tmp
            .as_file()
            .metadata()
            .map_err(|e| ContentError::io("stat", tmp.path(), e))?
            .nlink();
        attempts += 1;
        if links > 0 || attempts >= 8 {
            return Ok(tmp);
        }
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.start_writeback();
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.hasher.update(buf);
        self.start_writeback();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads a blob and checks, when the end is reached, that its bytes hash to the digest it is
/// stored under. A mismatch is reported as an `InvalidData` I/O error wrapping a
/// [`ContentError`], so no caller can consume a corrupt blob to its end without noticing.
pub struct VerifiedReader {
    file: File,
    hasher: Hasher,
    expected: Digest,
    size: u64,
    done: bool,
}

impl VerifiedReader {
    pub(super) fn new(file: File, expected: Digest, size: u64) -> Self {
        Self {
            file,
            hasher: Hasher::new(),
            expected,
            size,
            done: false,
        }
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest being verified.
    pub fn digest(&self) -> &Digest {
        &self.expected
    }

    fn check(&mut self) -> io::Result<()> {
        let (actual, len) = std::mem::take(&mut self.hasher).finish();
        self.done = true;
        if len != self.size {
            return Err(invalid(ContentError::SizeMismatch {
                digest: self.expected,
                expected: self.size,
                actual: len,
            }));
        }
        if actual != self.expected {
            return Err(invalid(ContentError::DigestMismatch {
                expected: self.expected,
                actual,
            }));
        }
        Ok(())
    }
}

fn invalid(e: ContentError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.file.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        if self.hasher.len() > self.size {
            return Err(invalid(ContentError::SizeMismatch {
                digest: self.expected,
                expected: self.size,
                actual: self.hasher.len(),
            }));
        }
        Ok(n)
    }
}

/// Turns an I/O error from a [`VerifiedReader`] back into the content error it carries; other
/// errors are wrapped naming `op` and `path`.
pub fn unwrap_io_error(e: io::Error, op: &'static str, path: PathBuf) -> ContentError {
    if e.get_ref().is_none_or(|inner| !inner.is::<ContentError>()) {
        return ContentError::io(op, path, e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<ContentError>()) {
        Some(Ok(ce)) => *ce,
        Some(Err(other)) => ContentError::io(op, path, io::Error::new(kind, other)),
        None => ContentError::io(op, path, io::Error::from(kind)),
    }
}

/// A blob's sha256, computed on a thread of its own once the blob is big: the writing thread
/// copies what it writes into chunks and goes on reading and writing while earlier chunks are
/// hashed, so a big layer costs the larger of the hash and the copy, not their sum (sha256 is
/// most of a big COPY's CPU). Small blobs are hashed inline (no thread).
#[derive(Default)]
struct PipedHasher {
    inline: Hasher,
    pipe: Option<Pipe>,
    len: u64,
}

struct Pipe {
    full: std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    thread: std::thread::JoinHandle<Hasher>,
}

/// Bytes hashed inline before the thread starts.
const PIPE_FROM: u64 = 8 << 20;
const CHUNK: usize = 1 << 20;

impl PipedHasher {
    fn len(&self) -> u64 {
        self.len
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        let Some(pipe) = &mut self.pipe else {
            self.inline.update(bytes);
            if self.inline.len() >= PIPE_FROM {
                self.start();
            }
            return;
        };
        while !bytes.is_empty() {
            let take = bytes.len().min(CHUNK - pipe.chunk.len());
            pipe.chunk.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if pipe.chunk.len() == CHUNK {
                let next = pipe
                    .spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                let full = std::mem::replace(&mut pipe.chunk, next);
                // A hashing thread that is gone is reported by `finish`.
                let _ = pipe.full.send(full);
            }
        }
    }

    /// Moves the hash so far to a thread; stays inline when no thread can be started.
    fn start(&mut self) {
        let (full, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (spare_tx, spare) = std::sync::mpsc::channel();
        let mut hasher = self.inline.clone();
        let spawned = std::thread::Builder::new()
            .name("blob-sha256".into())
            .spawn(move || {
                for chunk in rx {
                    hasher.update(&chunk);
                    let mut chunk = chunk;
                    chunk.clear();
                    let _ = spare_tx.send(chunk);
                }
                hasher
            });
        if let Ok(thread) = spawned {
            self.pipe = Some(Pipe {
                full,
                spare,
                chunk: Vec::with_capacity(CHUNK),
                thread,
            });
        }
    }

    /// The digest and size; `None` when the hashing thread failed.
    fn finish(self) -> Option<(Digest, u64)> {
        let Some(pipe) = self.pipe else {
            return Some(self.inline.finish());
        };
        let Pipe {
            full,
            chunk,
            thread,
            ..
        } = pipe;
        if !chunk.is_empty() && full.send(chunk).is_err() {
            return None;
        }
        drop(full);
        let hasher = thread.join().ok()?;
        (hasher.len() == self.len).then(|| hasher.finish())
    }
}
