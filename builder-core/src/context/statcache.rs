//! The persistent form of a [`StatCache`]: one file per context, replaced atomically.
//!
//! Format (version 3, little-endian): the magic `KILNSTC3`, a record count (u64), the records
//! sorted by path (path length u32, path bytes, size u64, mtime seconds i64 and nanoseconds u32,
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
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
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
        let err = |source| SaveError {
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".statcache-")
            .tempfile_in(dir)
            .map_err(err)?;
        tmp.write_all(&self.encode()).map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// The encoded bytes (deterministic: records sorted by path).
    pub fn encode(&self) -> Vec<u8> {
        let mut records: Vec<_> = self.entries.iter().collect();
        records.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(16 + records.len() * 120);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(records.len() as u64).to_le_bytes());
        for (p, rec) in records {
            let (k, d) = (&rec.key, &rec.digest);
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(&k.size.to_le_bytes());
            out.extend_from_slice(&k.mtime.0.to_le_bytes());
            out.extend_from_slice(&k.mtime.1.to_le_bytes());
            out.extend_from_slice(&k.ctime.0.to_le_bytes());
            out.extend_from_slice(&k.ctime.1.to_le_bytes());
            out.extend_from_slice(&k.ino.to_le_bytes());
            out.extend_from_slice(&k.mode.to_le_bytes());
            out.extend_from_slice(&d.0);
            out.push(u8::from(rec.plain));
        }
        let sum: [u8; 32] = Sha256::digest(&out).into();
        out.extend_from_slice(&sum);
        out
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.arr().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.arr().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.arr().map(i64::from_le_bytes)
    }
}

fn decode(bytes: &[u8]) -> Option<StatCache> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    let want: [u8; 32] = Sha256::digest(body).into();
    if want.as_slice() != sum {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != MAGIC {
        return None;
    }
    let count = r.u64()?;
    // Each record takes at least 81 bytes, so a corrupt count cannot reserve much.
    let mut cache = StatCache::with_capacity((count as usize).min(r.0.len() / 81));
    for _ in 0..count {
        let len = r.u32()? as usize;
        let path: Box<[u8]> = r.take(len)?.into();
        let key = StatKey {
            size: r.u64()?,
            mtime: (r.i64()?, r.u32()?),
            ctime: (r.i64()?, r.u32()?),
            ino: r.u64()?,
            mode: r.u32()?,
        };
        let digest = ContentDigest(r.arr()?);
        let plain = match r.arr::<1>()?[0] {
            0 => false,
            1 => true,
            _ => return None,
        };
        cache
            .entries
            .insert(path, super::hash::CachedDigest { key, digest, plain });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(cache)
}
