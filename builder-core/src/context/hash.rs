//! Content digests of context files, with a stat cache so unchanged files are not read again.
//!
//! A file's content digest ([`ContentDigest`]) is its BLAKE3 hash: it only ever feeds cache keys
//! (and the stat cache, copy memos and miss explanations derived from them), never a digest that
//! leaves the store, so it need not be sha256, and BLAKE3 is a cryptographic hash several times
//! as fast (a cold build of large files hashes every byte for the key before the step runs).
//!
//! [`FileHasher`] is what the copy code asks for a file's content digest. [`CachingHasher`] answers from
//! a [`StatCache`] when the file's (size, mtime, ctime, inode, mode) are those recorded with the
//! digest, and reads the file otherwise. A file changed within [`RACY_WINDOW`] of being hashed is
//! not cached: a change in the same timestamp tick would otherwise go unnoticed. The cache lives
//! in memory and can be saved to and loaded from a single file written atomically
//! (`context::statcache`), keyed by the path relative to the context.
//!
//! This module reads files through a [`Root`] (never following a final symlink) and writes
//! nothing but the cache file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};

use super::walk::{Entry, EntryKind};
use crate::fsroot::Root;

/// A sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lowercase hex, without the algorithm prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses `sha256:<64 hex digits>`.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("sha256:")?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(Self(out))
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The BLAKE3 hash of a regular file's bytes: what cache keys know of a context file's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentDigest(pub [u8; 32]);

impl ContentDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex, without the algorithm prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blake3:{}", self.hex())
    }
}

impl std::fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// An error hashing a file.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash {path} in {root}")]
pub struct HashError {
    /// The root the file was read from.
    pub root: PathBuf,
    /// The file, relative to the root.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// Gives the content digest of a regular file.
pub trait FileHasher: Sync {
    /// The digest of the regular file `entry` (its metadata as walked) inside `root`.
    fn digest(&self, root: &Root, entry: &Entry) -> Result<ContentDigest, HashError>;
}

/// Reads and hashes a regular file inside `root` without following a final symlink.
pub fn hash_file(root: &Root, path: &Path) -> Result<ContentDigest, HashError> {
    let err = |source: std::io::Error| HashError {
        root: root.path().to_path_buf(),
        path: path.to_path_buf(),
        source,
    };
    let (parent, name) = root.parent(path, false).map_err(|e| err(e.source))?;
    let name = name.ok_or_else(|| err(std::io::ErrorKind::IsADirectory.into()))?;
    let fd = rustix::fs::openat(
        &parent,
        &name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?;
    if EntryKind::from_mode(st.st_mode) != EntryKind::File {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let mut file = std::fs::File::from(fd);
    let size = st.st_size as u64;
    if size >= SPLIT_MIN
        && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
        && let Some(d) = hash_halves(&file, size).map_err(err)?
    {
        return Ok(d);
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(ContentDigest(*hasher.finalize().as_bytes()))
}

/// Files from this size on are hashed in two halves side by side (see [`hash_halves`]).
const SPLIT_MIN: u64 = 64 << 20;

/// The content digest of the first `size` bytes of `file` (`size` > 1 KiB), hashed as BLAKE3's
/// two top subtrees on two threads and merged into the root: the same digest as one pass, in
/// about half the time on two idle cores. `None` when the file is no longer `size` bytes long
/// (the caller hashes it in one pass, to its end, as any other file).
pub(crate) fn hash_halves(
    file: &std::fs::File,
    size: u64,
) -> std::io::Result<Option<ContentDigest>> {
    use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_root};
    use std::os::unix::fs::FileExt;
    if size <= blake3::CHUNK_LEN as u64 {
        return Ok(None);
    }
    // The left subtree is the largest power-of-two number of chunks short of the whole input;
    // each half is fed exactly its own bytes, so the tree's shape cannot be broken by a file
    // that grows meanwhile (a subtree given more than it can hold would panic).
    let left = left_subtree_len(size);
    let part = |start: u64, len: u64| -> std::io::Result<Option<ChainingValue>> {
        let mut h = blake3::Hasher::new();
        h.set_input_offset(start);
        let mut buf = vec![0u8; 256 * 1024];
        let (mut off, end) = (start, start + len);
        while off < end {
            let want = usize::try_from(end - off)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            match file.read_at(&mut buf[..want], off) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    h.update(&buf[..n]);
                    off += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(h.finalize_non_root()))
    };
    let (l, r) = std::thread::scope(|s| {
        let right = s.spawn(|| part(left, size - left));
        let l = part(0, left);
        (l, right.join())
    });
    let r = r.map_err(|_| std::io::Error::other("a hashing thread panicked"))?;
    let (Some(l), Some(r)) = (l?, r?) else {
        return Ok(None);
    };
    // Grown meanwhile: its end was not read.
    if file.metadata()?.len() != size {
        return Ok(None);
    }
    Ok(Some(ContentDigest(
        *merge_subtrees_root(&l, &r, Mode::Hash).as_bytes(),
    )))
}

/// Hashes every file it is asked about.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectHasher;

impl FileHasher for DirectHasher {
    fn digest(&self, root: &Root, entry: &Entry) -> Result<ContentDigest, HashError> {
        hash_file(root, &entry.path)
    }
}

/// The stat fields that decide whether a cached digest still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatKey {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: (i64, u32),
    /// Status change time.
    pub ctime: (i64, u32),
    /// Inode number.
    pub ino: u64,
    /// Mode bits (permissions only; the entry is a regular file).
    pub mode: u32,
}

impl StatKey {
    /// The key of a walked entry.
    pub fn of(entry: &Entry) -> Self {
        Self {
            size: entry.size,
            mtime: entry.mtime,
            ctime: entry.ctime,
            ino: entry.ino,
            mode: entry.mode,
        }
    }
}

/// How close to the hashing moment a change may be before the digest is not cached.
pub const RACY_WINDOW: Duration = Duration::from_millis(100);

/// One stat cache record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CachedDigest {
    pub(crate) key: StatKey,
    pub(crate) digest: ContentDigest,
    /// The file had no extended attributes when it was recorded. Setting or removing an xattr
    /// changes ctime, so while the stat key matches the walk need not list them again.
    pub(crate) plain: bool,
}

/// Digests keyed by context-relative path, valid while the file's [`StatKey`] is unchanged.
///
/// Keys are the path's bytes hashed with a fast non-cryptographic hash: a no-op rebuild looks up
/// every file of the context, and hashing paths component by component with SipHash cost more
/// than the lookups themselves. The keys come from the context's own file names, and a collision
/// only costs a probe, never a wrong answer (keys are compared in full). The records are kept
/// encoded in one buffer (`context::records`), ~115 bytes per file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatCache {
    pub(crate) entries: super::records::Records,
}

fn key_bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

impl StatCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `n` more records whose paths take `path_bytes` in all, so that a cache
    /// filled file by file grows in one step instead of doubling.
    pub fn reserve(&mut self, n: usize, path_bytes: usize) {
        self.entries.reserve(n, path_bytes);
    }

    /// The cached digest of `path` if its stat key is unchanged.
    pub fn lookup(&self, path: &Path, key: &StatKey) -> Option<ContentDigest> {
        match self.entries.get(key_bytes(path)) {
            Some(r) if r.key == *key => Some(r.digest),
            _ => None,
        }
    }

    /// Records a digest.
    pub fn insert(&mut self, path: PathBuf, key: StatKey, digest: ContentDigest) {
        self.record(&path, key, digest, false);
    }

    /// Records a digest of a file that has no extended attributes.
    pub fn insert_plain(&mut self, path: PathBuf, key: StatKey, digest: ContentDigest) {
        self.record(&path, key, digest, true);
    }

    pub(crate) fn record(&mut self, path: &Path, key: StatKey, digest: ContentDigest, plain: bool) {
        self.entries
            .insert(key_bytes(path), CachedDigest { key, digest, plain });
    }

    /// The cached digest of `path` if its stat key is unchanged, and whether the file had no
    /// extended attributes.
    pub fn known(&self, path: &Path, key: &StatKey) -> Option<(ContentDigest, bool)> {
        match self.entries.get(key_bytes(path)) {
            Some(r) if r.key == *key => Some((r.digest, r.plain)),
            _ => None,
        }
    }

    /// Whether `path`, with this stat key, is known to have no extended attributes.
    pub fn is_plain(&self, path: &Path, key: &StatKey) -> bool {
        self.entries
            .get(key_bytes(path))
            .is_some_and(|r| r.plain && r.key == *key)
    }

    /// Drops entries for which `keep` is false (e.g. files no longer in the context).
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        use std::os::unix::ffi::OsStrExt;
        self.entries
            .retain(|p| keep(Path::new(std::ffi::OsStr::from_bytes(p))));
    }

    /// The number of cached digests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}

/// A [`FileHasher`] backed by a [`StatCache`], counting how many files it actually read.
#[derive(Debug, Default)]
pub struct CachingHasher {
    cache: Mutex<StatCache>,
    reads: std::sync::atomic::AtomicU64,
}

impl CachingHasher {
    /// A hasher starting from `cache`.
    pub fn new(cache: StatCache) -> Self {
        Self {
            cache: Mutex::new(cache),
            reads: Default::default(),
        }
    }

    /// How many files were read (cache misses) so far.
    pub fn files_read(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` on the cache as it is now (e.g. to prune and save it while the hasher is shared).
    pub fn with_cache<R>(&self, f: impl FnOnce(&mut StatCache) -> R) -> R {
        f(&mut self.lock())
    }

    /// The cache as it is now.
    pub fn into_cache(self) -> StatCache {
        self.cache.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Hashes `entry`, an entry of the context's index, unless its digest is known, and keeps
    /// the digest in the entry itself instead of a record: the index lives as long as the
    /// build, later digests of the same entry find it there, and the stat cache is saved from
    /// the index ([`StatCache::save_for`]). A cold build of 100,000 files held ~12 MB of records
    /// otherwise. A copy of an index entry must go through [`FileHasher::digest`] instead, or the
    /// digest is lost with the copy.
    pub fn prime(&self, root: &Root, entry: &Entry) -> Result<(), HashError> {
        if entry.digest.get().is_some() {
            return Ok(());
        }
        let key = StatKey::of(entry);
        if self.lock().lookup(&entry.path, &key).is_some() {
            return Ok(());
        }
        let now = SystemTime::now();
        let digest = hash_file(root, &entry.path)?;
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !is_racy(entry, now) {
            // Set by no one else: only a hash of the same file under the same key could be.
            let _ = entry.digest.set(digest);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatCache> {
        // A panic while holding the lock cannot leave the map half-updated in a way that matters:
        // every update is a single insert.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_racy(entry: &Entry, now: SystemTime) -> bool {
    let newest = entry.mtime.max(entry.ctime);
    let changed = if newest.0 >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(newest.0 as u64, newest.1)
    } else {
        SystemTime::UNIX_EPOCH
    };
    match now.duration_since(changed) {
        Ok(age) => age < RACY_WINDOW,
        Err(_) => true,
    }
}

impl FileHasher for CachingHasher {
    fn digest(&self, root: &Root, entry: &Entry) -> Result<ContentDigest, HashError> {
        // Found in this cache by the walk, under the same stat key, or hashed since.
        if let Some(d) = entry.digest.get() {
            return Ok(*d);
        }
        let key = StatKey::of(entry);
        if let Some(d) = self.lock().lookup(&entry.path, &key) {
            return Ok(d);
        }
        let now = SystemTime::now();
        let digest = hash_file(root, &entry.path)?;
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !is_racy(entry, now) {
            let mut cache = self.lock();
            let plain = entry.xattrs.as_ref().is_some_and(|x| x.is_empty());
            cache.record(&entry.path, key, digest, plain);
        }
        Ok(digest)
    }
}

/// Hashes `entries` (regular files) on up to `threads` threads for what the hasher remembers
/// and keeps no digest: a caller that reads the digests later, in its own order, from the
/// hasher. For 100,000 files the digests in input order cost ~12 MB at once. An entry marked
/// `true` is the index's own and keeps its digest ([`CachingHasher::prime`]); one marked
/// `false` (a copy) is recorded in the hasher's stat cache.
pub fn prime_all(
    root: &Root,
    hasher: &CachingHasher,
    entries: &[(&Entry, bool)],
    threads: usize,
) -> Result<(), HashError> {
    each_parallel(entries, threads, |_, &(e, shared)| {
        if shared {
            hasher.prime(root, e)
        } else {
            hasher.digest(root, e).map(drop)
        }
    })
}

/// Runs `f` on every item, on up to `threads` threads (the calling one among them), each
/// taking the next item not yet taken; stops at the first error and returns it.
fn each_parallel<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T) -> Result<(), HashError> + Sync,
) -> Result<(), HashError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let threads = threads.clamp(1, 16).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err: Mutex<Option<HashError>> = Mutex::new(None);
    let work = || {
        while !failed.load(Relaxed) {
            let i = next.fetch_add(1, Relaxed);
            let Some(item) = items.get(i) else {
                break;
            };
            if let Err(err) = f(i, item) {
                failed.store(true, Relaxed);
                first_err
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(err);
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Hashes `entries` (regular files) on up to `threads` threads; results are in input order.
pub fn hash_all(
    root: &Root,
    hasher: &dyn FileHasher,
    entries: &[&Entry],
    threads: usize,
) -> Result<Vec<ContentDigest>, HashError> {
    let threads = threads.clamp(1, 16).min(entries.len().max(1));
    if threads == 1 {
        return entries.iter().map(|e| hasher.digest(root, e)).collect();
    }
    let out: Vec<std::sync::OnceLock<ContentDigest>> =
        entries.iter().map(|_| std::sync::OnceLock::new()).collect();
    each_parallel(entries, threads, |i, e| {
        let _ = out[i].set(hasher.digest(root, e)?);
        Ok(())
    })?;
    out.into_iter()
        .zip(entries)
        .map(|(d, e)| {
            d.into_inner().ok_or_else(|| HashError {
                root: root.path().to_path_buf(),
                path: e.path.clone(),
                source: std::io::Error::other("not hashed"),
            })
        })
        .collect()
}
