//! The persistent form of a [`StatCache`]: one file per context, replaced atomically.
//!
//! Format (version 3, little-endian): the magic `KILNSTC3`, a record count (u64), the records
//! sorted by path, or in the context's walk order when saved for a walked context (path length u32, path bytes, size u64, mtime seconds i64 and nanoseconds u32,
//! ctime likewise, inode u64, mode u32, the content digest (BLAKE3) 32 bytes, flags u8: bit 0 = the file had no
//! extended attributes), then the sha256 of everything before it.
//! A file that is missing, truncated, of another version or fails its checksum loads as an empty
//! cache: the cache only saves work, so losing it costs one re-hash and never a wrong digest.
//!
//! Saving writes a temporary file beside the target and renames it over the target, without
//! syncing either (two syncs cost more than the rest of a small rebuild): a crash leaves the old
//! cache, the new one, or one that fails its checksum.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::hash::{ContentDigest, StatCache, StatKey};
use super::index::{ContextIndex, bytes};
use super::walk::EntryKind;

// Version 2 held sha256 content digests: it now loads as an empty cache, never as BLAKE3 ones.
const MAGIC: &[u8; 8] = b"KILNSTC3";

/// An error saving the cache.
#[derive(Debug, thiserror::Error)]
#[error("cannot save stat cache {path}")]
pub struct SaveError {
    /// The cache file.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl StatCache {
    /// Loads the cache saved at `path`; anything unreadable gives an empty cache.
    pub fn load(path: &Path) -> Self {
        match std::fs::read(path) {
            Ok(bytes) => decode(bytes).unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "ignoring unreadable stat cache");
                Self::new()
            }),
            Err(_) => Self::new(),
        }
    }

    /// Saves the cache to `path` atomically. Not synced: after a crash the file is the old one,
    /// the new one, or one that fails its checksum and loads as an empty cache; every record in
    /// any of them is still a true statement about a file whose stat key it names.
    pub fn save(&self, path: &Path) -> Result<(), SaveError> {
        let mut records: Vec<_> = self.entries.iter().collect();
        records.sort_unstable_by(|a, b| a.0.cmp(b.0));
        write_atomically(path, records.len(), |out| {
            for (p, rec) in &records {
                put(out, p, &rec.key, &rec.digest, rec.plain)?;
            }
            Ok(())
        })
    }

    /// Saves to `path` atomically the records of the regular files of `index` (the context
    /// walked with the cache this one replaced): this cache's record of a file if it has one,
    /// else the digest the walk found for it (see [`super::BuildContext::walk_cached`]), so
    /// that the cache the walk read can be dropped right after the walk. Records are in walk
    /// order; paths no longer in the context are left out. Encoded as it is written, so no
    /// second copy of a large cache is held.
    pub fn save_for(&self, path: &Path, index: &ContextIndex) -> Result<(), SaveError> {
        let records = || {
            index
                .iter()
                .filter(|e| e.kind == EntryKind::File)
                .filter_map(|e| {
                    let p = bytes(&e.path);
                    match (self.entries.get(p), e.digest.get().copied()) {
                        (Some(r), _) => Some((p, r.key, r.digest, r.plain)),
                        (None, Some(d)) => {
                            let plain = e.xattrs.as_ref().is_some_and(|x| x.is_empty());
                            Some((p, StatKey::of(e), d, plain))
                        }
                        (None, None) => None,
                    }
                })
        };
        write_atomically(path, records().count(), |out| {
            for (p, k, d, plain) in records() {
                put(out, p, &k, &d, plain)?;
            }
            Ok(())
        })
    }

    /// The encoded bytes (deterministic: records sorted by path).
    pub fn encode(&self) -> Vec<u8> {
        let mut records: Vec<_> = self.entries.iter().collect();
        records.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = HashingWriter {
            inner: Vec::with_capacity(16 + records.len() * 120),
            sum: Sha256::new(),
        };
        let written = (|| {
            out.write_all(MAGIC)?;
            out.write_all(&(records.len() as u64).to_le_bytes())?;
            for (p, rec) in &records {
                put(&mut out, p, &rec.key, &rec.digest, rec.plain)?;
            }
            std::io::Result::Ok(())
        })();
        // Writing to a vector does not fail.
        debug_assert!(written.is_ok());
        let sum: [u8; 32] = out.sum.finalize().into();
        let mut bytes = out.inner;
        bytes.extend_from_slice(&sum);
        bytes
    }
}

/// Writes one record.
fn put(
    out: &mut dyn Write,
    p: &[u8],
    k: &StatKey,
    d: &ContentDigest,
    plain: bool,
) -> std::io::Result<()> {
    out.write_all(&(p.len() as u32).to_le_bytes())?;
    out.write_all(p)?;
    out.write_all(&k.size.to_le_bytes())?;
    out.write_all(&k.mtime.0.to_le_bytes())?;
    out.write_all(&k.mtime.1.to_le_bytes())?;
    out.write_all(&k.ctime.0.to_le_bytes())?;
    out.write_all(&k.ctime.1.to_le_bytes())?;
    out.write_all(&k.ino.to_le_bytes())?;
    out.write_all(&k.mode.to_le_bytes())?;
    out.write_all(&d.0)?;
    out.write_all(&[u8::from(plain)])
}

/// A writer that hashes what goes through it.
struct HashingWriter<W> {
    inner: W,
    sum: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a cache of `count` records (`records` writes them) to a temporary file beside `path`
/// and renames it over `path`.
fn write_atomically(
    path: &Path,
    count: usize,
    records: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), SaveError> {
    let err = |source| SaveError {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = tempfile::Builder::new()
        .prefix(".statcache-")
        .tempfile_in(dir)
        .map_err(err)?;
    {
        let mut out = HashingWriter {
            inner: std::io::BufWriter::with_capacity(64 * 1024, tmp.as_file()),
            sum: Sha256::new(),
        };
        out.write_all(MAGIC).map_err(err)?;
        out.write_all(&(count as u64).to_le_bytes()).map_err(err)?;
        records(&mut out).map_err(err)?;
        let sum: [u8; 32] = std::mem::take(&mut out.sum).finalize().into();
        out.inner.write_all(&sum).map_err(err)?;
        out.inner.flush().map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The cache in `bytes` (a whole cache file), whose records become the cache's buffer.
fn decode(mut bytes: Vec<u8>) -> Option<StatCache> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    let want: [u8; 32] = Sha256::digest(body).into();
    if want.as_slice() != sum || body.len() < 16 || &body[..8] != MAGIC {
        return None;
    }
    let count = u64::from_le_bytes(body[8..16].try_into().ok()?);
    bytes.truncate(body_len);
    bytes.drain(..16);
    Some(StatCache {
        entries: super::records::Records::decode(bytes, count)?,
    })
}
