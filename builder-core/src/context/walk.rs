//! Walking a build context with `.dockerignore` applied, as BuildKit's context loader sees it.
//!
//! The walk opens every directory relative to its parent's descriptor with `O_NOFOLLOW`, so it
//! never leaves the context root and never follows a symlink: symlinks are recorded with their
//! targets. Directories are listed in parallel and the result is in walk order: pre-order,
//! siblings in byte order of their names. An excluded directory is skipped
//! unless a `!` pattern could re-include something below it (BuildKit's rule); an excluded
//! directory that holds re-included entries is itself part of the result, as BuildKit sends it.
//!
//! The result, [`ContextIndex`], is the metadata of every visible entry; no file is read here.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};

use super::ignore::{IgnoreMatcher, MatchState};
use crate::fsroot::Root;

/// The type of a context entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl EntryKind {
    /// The kind for a raw `st_mode`.
    pub fn from_mode(mode: u32) -> Self {
        match FileType::from_raw_mode(mode) {
            FileType::Directory => Self::Dir,
            FileType::Symlink => Self::Symlink,
            FileType::Fifo => Self::Fifo,
            FileType::Socket => Self::Socket,
            FileType::CharacterDevice => Self::CharDevice,
            FileType::BlockDevice => Self::BlockDevice,
            _ => Self::File,
        }
    }

    /// A stable one-byte tag, used in digests.
    pub fn tag(self) -> u8 {
        match self {
            Self::Dir => b'd',
            Self::File => b'f',
            Self::Symlink => b'l',
            Self::Fifo => b'p',
            Self::Socket => b's',
            Self::CharDevice => b'c',
            Self::BlockDevice => b'b',
        }
    }
}

/// Metadata of one entry, as `lstat` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the walked root: clean, no leading `/`, empty for the root itself.
    pub path: PathBuf,
    /// The entry's type.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (regular files; the target length for symlinks).
    pub size: u64,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// Status change time (seconds, nanoseconds).
    pub ctime: (i64, u32),
    /// Device of the filesystem holding the entry.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Device number for device nodes.
    pub rdev: u64,
    /// The target of a symlink, as stored (never resolved).
    pub link_target: Option<PathBuf>,
    /// Extended attributes sorted by name, when the walk read them (the context walk does, through
    /// the directory it holds open); `None` means "not read", and readers read them themselves.
    pub xattrs: Option<Vec<(std::ffi::OsString, Vec<u8>)>>,
    /// The content digest of a regular file when the walk already knows it: the stat cache held
    /// one recorded under the same (size, mtime, ctime, inode, mode). `None` means "not known".
    pub digest: Option<super::Sha256Digest>,
}

impl Entry {
    /// Builds an entry from a stat result.
    pub fn from_stat(path: PathBuf, st: &Stat, link_target: Option<PathBuf>) -> Self {
        Self {
            path,
            kind: EntryKind::from_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec as u32),
            ctime: (st.st_ctime, st.st_ctime_nsec as u32),
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            rdev: st.st_rdev,
            link_target,
            xattrs: None,
            digest: None,
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// An error while walking.
#[derive(Debug, thiserror::Error)]
#[error("cannot walk build context {root}: {op} {path}: {source}")]
pub struct WalkError {
    /// The context directory.
    pub root: PathBuf,
    /// What failed, e.g. "read directory".
    pub op: &'static str,
    /// The entry, relative to the context.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// Orders clean relative paths component by component, as [`Path`]'s own ordering does, but on
/// bytes: at the first difference a `/` sorts before every other byte (no name holds a NUL), and
/// a prefix sorts first. `a/b` < `a.b` because the component `a` < `a.b`.
pub(crate) fn cmp_paths(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let rank = |c: u8| if c == b'/' { 0 } else { c };
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => rank(a[i]).cmp(&rank(b[i])),
        None => a.len().cmp(&b.len()),
    }
}

fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// The bytes of `path` as the index spells it: `.`, empty components, a leading `/` and a
/// trailing `/` dropped (`Path::new("src").join("")` is `src/`), as [`Path`]'s own comparison
/// ignores them.
fn clean(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    let b = bytes(path);
    let tidy = !b.starts_with(b"/")
        && !b.ends_with(b"/")
        && b.split(|&c| c == b'/')
            .all(|c| c != b"." && !c.is_empty() || b.is_empty());
    if tidy {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    for c in path.components() {
        if let std::path::Component::Normal(name) = c {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(name.as_bytes());
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether the clean relative path `p` is strictly below `dir` (`""` is the root).
fn is_below(p: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        !p.is_empty()
    } else {
        p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
    }
}

/// Every visible entry of a context in walk order: a pre-order walk with siblings in byte order
/// of their names, which is [`Path`]'s component-wise order of the relative paths. Lookups are
/// binary searches and a directory's descendants are the contiguous run after it.
///
/// The entries stay in the vectors the walk's threads filled (`chunks`); `order` names them in
/// walk order, so the index never holds two copies of a large context's entries.
#[derive(Debug, Clone, Default)]
pub struct ContextIndex {
    chunks: Vec<Vec<Entry>>,
    /// (chunk, position in it) of each entry, in walk order.
    order: Vec<(u32, u32)>,
}

impl ContextIndex {
    fn at(&self, (c, j): (u32, u32)) -> &Entry {
        &self.chunks[c as usize][j as usize]
    }

    fn position(&self, path: &Path) -> Result<usize, usize> {
        let key = clean(path);
        self.order
            .binary_search_by(|&r| cmp_paths(bytes(&self.at(r).path), &key))
    }

    /// The entry at `path` (relative, clean; `""` is the root).
    pub fn get(&self, path: &Path) -> Option<&Entry> {
        self.position(path).ok().map(|i| self.at(self.order[i]))
    }

    /// Every entry, the root first, in walk order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.order.iter().map(|&r| self.at(r))
    }

    /// The positions in `order` of the run of entries strictly below `dir`.
    fn below(&self, dir: &Path) -> std::ops::Range<usize> {
        let start = match self.position(dir) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        let key = clean(dir);
        let len = self.order[start..].partition_point(|&r| is_below(bytes(&self.at(r).path), &key));
        start..start + len
    }

    /// The entries strictly below `dir`, in walk order.
    pub fn descendants<'a>(
        &'a self,
        dir: &'a Path,
    ) -> impl ExactSizeIterator<Item = &'a Entry> + 'a {
        self.order[self.below(dir)].iter().map(|&r| self.at(r))
    }

    /// The direct children of `dir`, in byte order of their names.
    pub fn children<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a Entry> + 'a {
        let run = &self.order[self.below(dir)];
        let mut i = 0;
        std::iter::from_fn(move || {
            let e = self.at(*run.get(i)?);
            i += 1;
            if e.is_dir() {
                // Skip the child's own subtree.
                let key = bytes(&e.path);
                i += run[i..].partition_point(|&d| is_below(bytes(&self.at(d).path), key));
            }
            Some(e)
        })
    }

    /// The number of entries, the root included.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the index holds nothing (not even the root).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds an entry, replacing one at the same path (used by tests).
    pub fn insert(&mut self, entry: Entry) {
        match self.position(&entry.path) {
            Ok(i) => {
                let (c, j) = self.order[i];
                self.chunks[c as usize][j as usize] = entry;
            }
            Err(i) => {
                if self.chunks.is_empty() {
                    self.chunks.push(Vec::new());
                }
                let chunk = &mut self.chunks[0];
                chunk.push(entry);
                self.order.insert(i, (0, (chunk.len() - 1) as u32));
            }
        }
    }
}

/// Walks `root` with `matcher` applied.
pub fn walk(root: &Root, matcher: &IgnoreMatcher) -> Result<ContextIndex, WalkError> {
    walk_with(root, matcher, &|_, _| None)
}

/// What is already known of a regular file with this path and stat key (from the stat cache):
/// its content digest, and whether it has no extended attributes.
pub type KnownFn<'a> =
    &'a (dyn Fn(&Path, &super::StatKey) -> Option<(super::Sha256Digest, bool)> + Sync);

/// Walks `root` with `matcher` applied. For a regular file for which `known(path, stat key)`
/// answers, the digest is recorded in the entry, and when it has no extended attributes they are
/// not listed.
///
/// Directories are listed on as many threads as the machine has cores (at most 8): each lists
/// one directory (names, `lstat` of each, link targets, xattrs) and queues its subdirectories;
/// the listings are then stitched together in walk order, so the result does not depend on
/// which thread listed what.
pub fn walk_with(
    root: &Root,
    matcher: &IgnoreMatcher,
    known: KnownFn<'_>,
) -> Result<ContextIndex, WalkError> {
    let top = root
        .open_dir(Path::new(""))
        .map_err(|e| walk_error(root, "open", Path::new(""), e.source))?;
    let st =
        rustix::fs::fstat(&top).map_err(|e| walk_error(root, "stat", Path::new(""), e.into()))?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let walker = Walker {
        root,
        matcher,
        known,
        queue: Mutex::new(Queue {
            jobs: vec![Job {
                at: Arc::new(top),
                name: None,
                rel: PathBuf::new(),
                state: MatchState::default(),
                slot: 0,
            }],
            active: 0,
            failed: None,
        }),
        wake: Condvar::new(),
        slots: AtomicUsize::new(1),
    };
    let done: Vec<ThreadListings> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(|| walker.work())).collect();
        let mut all = vec![walker.work()];
        for h in helpers {
            // A helper that panicked has listed nothing we can trust.
            match h.join() {
                Ok(l) => all.push(l),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        all
    });
    let queue = walker.queue.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = queue.failed {
        return Err(e);
    }
    let count = walker.slots.into_inner();
    let mut slots: Vec<Option<(u32, Listing)>> = (0..count).map(|_| None).collect();
    let mut chunks = Vec::with_capacity(done.len() + 1);
    let mut total = 1;
    for (entries, listings) in done {
        let chunk = chunks.len() as u32;
        total += entries.len();
        chunks.push(entries);
        for (slot, listing) in listings {
            slots[slot] = Some((chunk, listing));
        }
    }
    let root_chunk = chunks.len() as u32;
    chunks.push(vec![Entry::from_stat(PathBuf::new(), &st, None)]);
    let mut order = Vec::with_capacity(total);
    order.push((root_chunk, 0));
    stitch(&mut slots, 0, &mut Vec::new(), &mut order);
    let index = ContextIndex { chunks, order };
    debug_assert!(
        index.order.windows(2).all(|w| cmp_paths(
            bytes(&index.at(w[0]).path),
            bytes(&index.at(w[1]).path)
        )
        .is_lt())
    );
    Ok(index)
}

fn walk_error(root: &Root, op: &'static str, path: &Path, source: std::io::Error) -> WalkError {
    WalkError {
        root: root.path().to_path_buf(),
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One listed entry of a directory.
struct Listed {
    /// Its position in the listing thread's entries.
    entry: u32,
    /// Excluded by the ignore rules, listed only because something below it may be re-included.
    excluded: bool,
    /// The listing slot of a subdirectory.
    sub: Option<usize>,
}

type Listing = Vec<Listed>;

/// What one walking thread found: its entries and its listings (by slot), which point into them.
type ThreadListings = (Vec<Entry>, Vec<(usize, Listing)>);

/// Appends the listing in `slot` (and its subdirectories') to `order` in walk order. An excluded
/// directory waits in `pending` and is emitted only when something below it is.
fn stitch(
    slots: &mut [Option<(u32, Listing)>],
    slot: usize,
    pending: &mut Vec<(u32, u32)>,
    order: &mut Vec<(u32, u32)>,
) {
    let Some((chunk, listing)) = slots.get_mut(slot).and_then(Option::take) else {
        return;
    };
    for l in listing {
        if l.excluded {
            pending.push((chunk, l.entry));
        } else {
            order.append(pending);
            order.push((chunk, l.entry));
        }
        if let Some(sub) = l.sub {
            let depth = pending.len();
            stitch(slots, sub, pending, order);
            // Drop this directory from the pending list if nothing below it was included.
            if l.excluded {
                pending.truncate(depth.saturating_sub(1));
            }
        }
    }
}

/// A directory to list: `name` opened below `at` (or `at` itself for the root).
struct Job {
    at: Arc<OwnedFd>,
    name: Option<Vec<u8>>,
    rel: PathBuf,
    state: MatchState,
    slot: usize,
}

struct Queue {
    /// Taken last-in first-out, so the walk goes deep first and few directories stay open.
    jobs: Vec<Job>,
    /// Jobs being listed right now.
    active: usize,
    failed: Option<WalkError>,
}

struct Walker<'a> {
    root: &'a Root,
    matcher: &'a IgnoreMatcher,
    known: KnownFn<'a>,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The next free listing slot.
    slots: AtomicUsize,
}

impl Walker<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists directories until there are none left or one failed; returns the entries this
    /// thread found and its listings, which point into them.
    fn work(&self) -> ThreadListings {
        let mut entries = Vec::new();
        let mut done = Vec::new();
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if q.failed.is_some() || (q.jobs.is_empty() && q.active == 0) {
                        return (entries, done);
                    }
                    if let Some(job) = q.jobs.pop() {
                        q.active += 1;
                        break job;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            let slot = job.slot;
            let result = self.list(job, &mut entries);
            let mut q = self.lock();
            q.active -= 1;
            match result {
                Ok((listing, mut jobs)) => {
                    done.push((slot, listing));
                    q.jobs.append(&mut jobs);
                }
                Err(e) => {
                    q.failed.get_or_insert(e);
                }
            }
            drop(q);
            self.wake.notify_all();
        }
    }

    /// Lists one directory; returns its listing and the jobs for its subdirectories.
    fn list(&self, job: Job, entries: &mut Vec<Entry>) -> Result<(Listing, Vec<Job>), WalkError> {
        let err = |op, path: &Path, e: std::io::Error| walk_error(self.root, op, path, e);
        let rel = job.rel.as_path();
        let fd = match &job.name {
            None => job.at,
            Some(name) => match rustix::fs::openat(
                &*job.at,
                OsStr::from_bytes(name),
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(sub) => Arc::new(sub),
                // Removed while walking: it is listed, empty.
                Err(rustix::io::Errno::NOENT) => return Ok((Vec::new(), Vec::new())),
                Err(e) => return Err(err("open directory", rel, e.into())),
            },
        };
        let names = read_names(&fd).map_err(|e| err("read directory", rel, e))?;
        let mut listing = Vec::with_capacity(names.len());
        let mut jobs = Vec::new();
        for name in names {
            let os_name = OsStr::from_bytes(&name);
            let path = rel.join(os_name);
            let st = match rustix::fs::statat(&*fd, os_name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while walking: it is simply not part of the context.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(err("stat", &path, e.into())),
            };
            let kind = EntryKind::from_mode(st.st_mode);
            let (excluded, child_state) = if self.matcher.is_empty() {
                (false, MatchState::default())
            } else {
                let key = path.to_string_lossy();
                let (excluded, state) = self.matcher.matches_with_parent(&key, &job.state);
                if excluded && (kind != EntryKind::Dir || self.matcher.can_skip_excluded_dir(&key))
                {
                    continue;
                }
                (excluded, state)
            };
            let target = if kind == EntryKind::Symlink {
                let t = rustix::fs::readlinkat(&*fd, os_name, Vec::new())
                    .map_err(|e| err("read link", &path, e.into()))?;
                Some(PathBuf::from(std::ffi::OsString::from_vec(t.into_bytes())))
            } else {
                None
            };
            let mut entry = Entry::from_stat(path, &st, target);
            let mut plain = false;
            if kind == EntryKind::File
                && let Some((digest, no_xattrs)) =
                    (self.known)(&entry.path, &super::StatKey::of(&entry))
            {
                entry.digest = Some(digest);
                plain = no_xattrs;
            }
            if plain {
                entry.xattrs = Some(Vec::new());
            } else if kind != EntryKind::Symlink {
                // Through the open directory: no path resolution from the root per file.
                let at = crate::fsroot::proc_fd_path(&fd).join(os_name);
                entry.xattrs = Some(
                    crate::copy::source::list_xattrs(&at)
                        .map_err(|e| err("list xattrs", &entry.path, e))?,
                );
            }
            let sub = (kind == EntryKind::Dir).then(|| {
                let slot = self.slots.fetch_add(1, Ordering::Relaxed);
                jobs.push(Job {
                    at: fd.clone(),
                    name: Some(name),
                    rel: entry.path.clone(),
                    state: child_state,
                    slot,
                });
                slot
            });
            listing.push(Listed {
                entry: entries.len() as u32,
                excluded,
                sub,
            });
            entries.push(entry);
        }
        Ok((listing, jobs))
    }
}

fn read_names(fd: &OwnedFd) -> std::io::Result<Vec<Vec<u8>>> {
    let mut dir = Dir::read_from(fd)?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}
