//! The stat cache's records in memory: encoded one after another in one buffer, as the cache
//! file holds them, with an open-addressing table of their offsets keyed by the path.
//!
//! A map of boxed paths to records took ~175 bytes per file (the path's own allocation, the
//! key, a 96-byte record with padding, and a quarter of the buckets empty); here a record is its
//! path plus 81 bytes and the table 4 bytes per slot, ~115 bytes per file of a large context.
//! A cache loaded from its file keeps the file's bytes as its buffer.

use std::hash::BuildHasher;

use super::hash::{CachedDigest, ContentDigest, StatKey};

/// Bytes after the path: size, mtime, ctime, inode, mode, sha256, flags.
const FIXED: usize = 8 + 12 + 12 + 8 + 4 + 32 + 1;
/// An empty slot.
const EMPTY: u32 = u32::MAX;

/// Records keyed by path bytes (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct Records {
    /// The records: path length (u32 LE), path, then the fixed fields as in the cache file.
    buf: Vec<u8>,
    /// Offsets into `buf`, `EMPTY` where free; a power of two long, at most 3/4 full.
    slots: Vec<u32>,
    len: usize,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("len", &self.len).finish()
    }
}

fn hash(path: &[u8]) -> usize {
    rustc_hash::FxBuildHasher.hash_one(path) as usize
}

/// Reads one record at `at`: its path and fields, and where the next one starts.
fn read(buf: &[u8], at: usize) -> Option<(&[u8], CachedDigest, usize)> {
    let len = u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?) as usize;
    let path = buf.get(at + 4..at + 4 + len)?;
    let f = buf.get(at + 4 + len..at + 4 + len + FIXED)?;
    let u64_at = |i: usize| u64::from_le_bytes(f[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_le_bytes(f[i..i + 4].try_into().unwrap_or_default());
    let key = StatKey {
        size: u64_at(0),
        mtime: (u64_at(8) as i64, u32_at(16)),
        ctime: (u64_at(20) as i64, u32_at(28)),
        ino: u64_at(32),
        mode: u32_at(40),
    };
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&f[44..76]);
    let plain = match f[76] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let rec = CachedDigest {
        key,
        digest: ContentDigest(digest),
        plain,
    };
    Some((path, rec, at + 4 + len + FIXED))
}

/// Appends the fixed fields of `rec`.
fn put_fixed(out: &mut Vec<u8>, rec: &CachedDigest) {
    let k = &rec.key;
    out.extend_from_slice(&k.size.to_le_bytes());
    out.extend_from_slice(&k.mtime.0.to_le_bytes());
    out.extend_from_slice(&k.mtime.1.to_le_bytes());
    out.extend_from_slice(&k.ctime.0.to_le_bytes());
    out.extend_from_slice(&k.ctime.1.to_le_bytes());
    out.extend_from_slice(&k.ino.to_le_bytes());
    out.extend_from_slice(&k.mode.to_le_bytes());
    out.extend_from_slice(&rec.digest.0);
    out.push(u8::from(rec.plain));
}

impl Records {
    /// Records read from `buf` (records as the cache file holds them, nothing else); `None`
    /// when they do not parse or are too many for 32-bit offsets.
    pub(crate) fn decode(buf: Vec<u8>, count: u64) -> Option<Self> {
        if u32::try_from(buf.len()).is_err() {
            return None;
        }
        let mut records = Self {
            buf,
            slots: Vec::new(),
            len: 0,
        };
        // Each record takes at least 81 bytes, so a corrupt count cannot reserve much.
        records.grow_table((count as usize).min(records.buf.len() / (4 + FIXED)));
        let mut at = 0;
        for _ in 0..count {
            let (path, _, next) = read(&records.buf, at)?;
            let slot = records.find(path).unwrap_or_else(|e| e);
            if records.slots[slot] == EMPTY {
                records.len += 1;
            }
            records.slots[slot] = at as u32;
            if records.len * 4 > records.slots.len() * 3 {
                records.grow_table(records.len * 2);
            }
            at = next;
        }
        (at == records.buf.len()).then_some(records)
    }

    /// Makes room for `n` more records holding `bytes` of paths in all.
    pub(crate) fn reserve(&mut self, n: usize, bytes: usize) {
        self.buf.reserve(bytes + n * (4 + FIXED));
        if (self.len + n) * 4 > self.slots.len() * 3 {
            self.grow_table(self.len + n);
        }
    }

    /// Rebuilds the table with room for `n` records.
    fn grow_table(&mut self, n: usize) {
        let size = (n.max(4) * 4 / 3 + 1).next_power_of_two();
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        for at in old.into_iter().filter(|&a| a != EMPTY) {
            if let Some((path, _, _)) = read(&self.buf, at as usize) {
                let slot = self.find(path).unwrap_or_else(|e| e);
                self.slots[slot] = at;
            }
        }
    }

    /// The slot holding `path` (`Ok`), or the empty slot where it would go (`Err`).
    fn find(&self, path: &[u8]) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash(path) & mask;
        loop {
            let at = self.slots[i];
            if at == EMPTY {
                return Err(i);
            }
            if read(&self.buf, at as usize).is_some_and(|(p, _, _)| p == path) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The record of `path`.
    pub(crate) fn get(&self, path: &[u8]) -> Option<CachedDigest> {
        if self.len == 0 {
            return None;
        }
        let slot = self.find(path).ok()?;
        read(&self.buf, self.slots[slot] as usize).map(|(_, rec, _)| rec)
    }

    /// Records `rec` for `path`, replacing its record if it has one (in place: same path,
    /// same length). Past 4 GiB of records, new ones are dropped: the cache only saves work.
    pub(crate) fn insert(&mut self, path: &[u8], rec: CachedDigest) {
        if self.slots.is_empty() || (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow_table((self.len + 1) * 2);
        }
        match self.find(path) {
            Ok(slot) => {
                let at = self.slots[slot] as usize + 4 + path.len();
                let mut fixed = Vec::with_capacity(FIXED);
                put_fixed(&mut fixed, &rec);
                self.buf[at..at + FIXED].copy_from_slice(&fixed);
            }
            Err(slot) => {
                let Ok(at) = u32::try_from(self.buf.len()) else {
                    return;
                };
                if at == EMPTY || u32::try_from(self.buf.len() + 4 + path.len() + FIXED).is_err() {
                    return;
                }
                self.buf
                    .extend_from_slice(&(path.len() as u32).to_le_bytes());
                self.buf.extend_from_slice(path);
                put_fixed(&mut self.buf, &rec);
                self.slots[slot] = at;
                self.len += 1;
            }
        }
    }

    /// Every record (path, fields), in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], CachedDigest)> {
        self.slots
            .iter()
            .filter(|&&a| a != EMPTY)
            .filter_map(|&a| read(&self.buf, a as usize).map(|(p, r, _)| (p, r)))
    }

    /// Keeps the records for which `keep` is true, compacting the buffer.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let mut kept = Self::default();
        for (p, r) in self.iter() {
            if keep(p) {
                kept.insert(p, r);
            }
        }
        *self = kept;
    }

    /// The number of records.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl PartialEq for Records {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(p, r)| other.get(p) == Some(r))
    }
}

impl Eq for Records {}
