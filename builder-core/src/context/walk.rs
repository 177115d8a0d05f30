//! Walking a build context with `.dockerignore` applied, as BuildKit's context loader sees it.
//!
//! The walk opens every directory relative to its parent's descriptor with `O_NOFOLLOW`, so it
//! never leaves the context root and never follows a symlink: symlinks are recorded with their
//! targets. Directories are listed in parallel and the result is in walk order: pre-order,
//! siblings in byte order of their names. An excluded directory is skipped
//! unless a `!` pattern could re-include something below it (BuildKit's rule); an excluded
//! directory that holds re-included entries is itself part of the result, as BuildKit sends it.
//!
//! The result, [`ContextIndex`] (in `context::index`), is the metadata of every visible entry; no
//! file is read here.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};

use super::ignore::{IgnoreMatcher, MatchState};
pub use super::index::ContextIndex;
use super::index::{bytes, cmp_paths};
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
    /// The content digest of a regular file once known: the stat cache held one recorded under
    /// the same (size, mtime, ctime, inode, mode) when the context was walked, or the build
    /// hashed the file since (the hasher keeps a context file's digest here rather than in a
    /// record of its own, and the stat cache is saved from the index). Unset means "not known".
    pub digest: std::sync::OnceLock<super::ContentDigest>,
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
            digest: std::sync::OnceLock::new(),
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// An error while walking.
#[derive(Debug, thiserror::Error)]
#[error("cannot walk build context {root}: {op} {path}")]
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

/// Walks `root` with `matcher` applied.
pub fn walk(root: &Root, matcher: &IgnoreMatcher) -> Result<ContextIndex, WalkError> {
    walk_with(root, matcher, &|_, _| None)
}

/// What is already known of a regular file with this path and stat key (from the stat cache):
/// its content digest, and whether it has no extended attributes.
pub type KnownFn<'a> =
    &'a (dyn Fn(&Path, &super::StatKey) -> Option<(super::ContentDigest, bool)> + Sync);

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
    chunks.push(vec![Arc::new(Entry::from_stat(PathBuf::new(), &st, None))]);
    let mut order = Vec::with_capacity(total);
    order.push((root_chunk, 0));
    stitch(&mut slots, 0, &mut Vec::new(), &mut order);
    let index = ContextIndex::from_parts(chunks, order);
    debug_assert!({
        let all: Vec<_> = index.iter().collect();
        all.windows(2)
            .all(|w| cmp_paths(bytes(&w[0].path), bytes(&w[1].path)).is_lt())
    });
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
type ThreadListings = (Vec<Arc<Entry>>, Vec<(usize, Listing)>);

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
    fn list(
        &self,
        job: Job,
        entries: &mut Vec<Arc<Entry>>,
    ) -> Result<(Listing, Vec<Job>), WalkError> {
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
            // Sized exactly: the index keeps one such path per entry.
            let mut path = PathBuf::with_capacity(rel.as_os_str().len() + 1 + name.len());
            path.push(rel);
            path.push(os_name);
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
                let key = kiln_dockerfile_parser::bytes::from_os_str(path.as_os_str());
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
                entry.digest = std::sync::OnceLock::from(digest);
                plain = no_xattrs;
            }
            if plain {
                entry.xattrs = Some(Vec::new());
            } else if kind != EntryKind::Symlink {
                // Through the open directory: no path resolution from the root per file.
                let at = crate::fsroot::proc_fd_path(&fd).join(os_name);
                entry.xattrs =
                    Some(crate::xattr::list(&at).map_err(|e| err("list xattrs", &entry.path, e))?);
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
            entries.push(Arc::new(entry));
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
