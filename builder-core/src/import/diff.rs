//! Checking an archive's layers against its config's `rootfs.diff_ids` while they stream in, and
//! taking back what a refused archive put into the store.
//!
//! Every blob of an archive is hashed twice on its way into the store: as it is (its digest) and,
//! when it starts like gzip or zstd, decompressed (its diff_id; an uncompressed blob is its own).
//! The config comes in the same stream, often after the layers, so the uncompressed digests are
//! kept by blob digest and compared once the manifest is known, before any manifest or tag is
//! written. A blob that was new to the store is deleted again when the import fails.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::ImportError;
use crate::content::{ContentStore, Digest, Hasher};
use crate::image::{Descriptor, ImageConfig};
use crate::layer::{ArchiveCompression, detect_compression};

/// Uncompressed digests by blob digest; `None` for a blob that did not decompress.
pub(crate) type Diffs = BTreeMap<Digest, Option<Digest>>;

/// Bytes needed to tell the compression apart (xz's magic is the longest).
const HEAD: usize = 6;

enum Decode {
    /// Fewer than [`HEAD`] bytes seen.
    Undecided,
    /// Not compressed (or in a format that is refused later): the diff_id is the digest.
    Plain,
    Gzip(Box<flate2::write::MultiGzDecoder<Hasher>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Hasher>>),
    /// Compressed but corrupt.
    Failed,
}

/// A `Write` that hashes a blob and, decompressed, its content. It never fails: a stream that
/// does not decompress has no diff_id, which is an error only if it is used as a layer.
pub(crate) struct DiffHasher {
    hasher: Hasher,
    head: Vec<u8>,
    decode: Decode,
}

impl DiffHasher {
    pub(crate) fn new() -> Self {
        Self {
            hasher: Hasher::new(),
            head: Vec::with_capacity(HEAD),
            decode: Decode::Undecided,
        }
    }

    fn decide(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.decode = match detect_compression(&head) {
            ArchiveCompression::Gzip => {
                Decode::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Hasher::new())))
            }
            ArchiveCompression::Zstd => match zstd::stream::write::Decoder::new(Hasher::new()) {
                Ok(d) => Decode::Zstd(Box::new(d)),
                Err(_) => Decode::Failed,
            },
            _ => Decode::Plain,
        };
        self.feed(&head);
    }

    fn feed(&mut self, buf: &[u8]) {
        let ok = match &mut self.decode {
            Decode::Gzip(d) => d.write_all(buf).is_ok(),
            Decode::Zstd(d) => d.write_all(buf).is_ok(),
            _ => true,
        };
        if !ok {
            self.decode = Decode::Failed;
        }
    }

    /// The blob's digest and size, and its uncompressed digest.
    pub(crate) fn finish(mut self) -> (Digest, u64, Option<Digest>) {
        if matches!(self.decode, Decode::Undecided) {
            self.decide();
        }
        let (digest, size) = self.hasher.finish();
        let diff = match self.decode {
            Decode::Plain => Some(digest),
            Decode::Gzip(d) => d.finish().ok().map(|h| h.finish().0),
            Decode::Zstd(d) => d.finish().ok().map(|h| h.finish().0),
            Decode::Undecided | Decode::Failed => None,
        };
        (digest, size, diff)
    }
}

impl Write for DiffHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        if matches!(self.decode, Decode::Undecided) {
            let take = (HEAD - self.head.len()).min(buf.len());
            self.head.extend_from_slice(&buf[..take]);
            if self.head.len() == HEAD {
                self.decide();
            }
            self.feed(&buf[take..]);
        } else {
            self.feed(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes into two writers at once.
pub(crate) struct Tee<'a, A, B>(pub &'a mut A, pub &'a mut B);

impl<A: Write, B: Write> Write for Tee<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// The blobs an import added to the store; dropped without [`NewBlobs::keep`], it deletes them,
/// so a refused archive leaves nothing behind. (A blob another process added meanwhile under the
/// same digest is deleted too; it is unreferenced until that process tags it, and a later pull
/// or build stores it again.)
pub(crate) struct NewBlobs<'a> {
    store: &'a ContentStore,
    digests: Vec<Digest>,
    keep: bool,
}

impl<'a> NewBlobs<'a> {
    pub(crate) fn new(store: &'a ContentStore) -> Self {
        Self {
            store,
            digests: Vec::new(),
            keep: false,
        }
    }

    pub(crate) fn push(&mut self, d: Digest) {
        self.digests.push(d);
    }

    /// The import succeeded: the blobs stay.
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for NewBlobs<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for d in &self.digests {
            if let Err(e) = self.store.delete(d) {
                tracing::warn!(blob = %d, error = %crate::report::chain(&e), "cannot remove a blob of a refused archive");
            }
        }
    }
}

/// Checks that each layer decompresses to the config's diff_id at its position. `names` gives
/// the layers' names as the archive has them (paths in a docker-archive), for messages. A layer
/// missing from `diffs` (it was in the store already) is read from the store with
/// `read_missing`, and not checked again otherwise.
pub(crate) fn verify_layers(
    store: &ContentStore,
    config: &ImageConfig,
    layers: &[Descriptor],
    names: &[String],
    diffs: &Diffs,
    read_missing: bool,
) -> Result<(), ImportError> {
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(ImportError::LayerCount {
            diff_ids: config.rootfs.diff_ids.len(),
            layers: layers.len(),
        });
    }
    for (i, (layer, expected)) in layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let name = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| layer.digest.to_string());
        let diff = match diffs.get(&layer.digest) {
            Some(d) => *d,
            // Not in the archive but already in the store: read it there (a second pass, only
            // for such a layer).
            None if read_missing => stored_diff(store, &layer.digest)?,
            None => continue,
        };
        match diff {
            Some(actual) if actual == *expected => {}
            Some(actual) => {
                return Err(ImportError::DiffIdMismatch {
                    index: i,
                    layer: name,
                    expected: *expected,
                    actual,
                });
            }
            None => {
                return Err(ImportError::LayerCorrupt {
                    index: i,
                    layer: name,
                });
            }
        }
    }
    Ok(())
}

/// The uncompressed digest of a blob in the store.
fn stored_diff(store: &ContentStore, digest: &Digest) -> Result<Option<Digest>, ImportError> {
    let mut r = store.open_verified(digest)?;
    let mut h = DiffHasher::new();
    io::copy(&mut r, &mut h)
        .map_err(|e| crate::content::unwrap_io_error(e, "read", store.blob_path(digest)))?;
    Ok(h.finish().2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff_of(bytes: &[u8]) -> (Digest, u64, Option<Digest>) {
        let mut h = DiffHasher::new();
        // Odd chunk sizes cross the sniffing boundary.
        for chunk in bytes.chunks(3) {
            h.write_all(chunk).unwrap();
        }
        h.finish()
    }

    #[test]
    fn hashes_blobs_and_their_content() {
        let plain = b"some layer bytes, long enough to matter".repeat(50);
        let (d, size, diff) = diff_of(&plain);
        assert_eq!(
            (d, size, diff),
            (Digest::of(&plain), plain.len() as u64, Some(d))
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let (d, _, diff) = diff_of(&gz);
        assert_eq!(d, Digest::of(&gz));
        assert_eq!(diff, Some(Digest::of(&plain)));
        let zs = zstd::encode_all(plain.as_slice(), 1).unwrap();
        assert_eq!(diff_of(&zs).2, Some(Digest::of(&plain)));
        // gzip magic, then garbage: no diff_id, and no error while writing.
        let mut bad = gz.clone();
        bad.truncate(20);
        bad.extend_from_slice(&[0xff; 100]);
        assert_eq!(diff_of(&bad).2, None);
        assert_eq!(diff_of(b"ab").2, Some(Digest::of(b"ab")));
    }
}
