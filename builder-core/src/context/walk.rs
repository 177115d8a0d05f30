//! Walking a build context with `.dockerignore` applied, as BuildKit's context loader sees it.
//!
//! The walk opens every directory relative to its parent's descriptor with `O_NOFOLLOW`, so it
//! never leaves the context root and never follows a symlink: symlinks are recorded with their
//! targets. Entries are visited in byte order of their names. An excluded directory is skipped
//! unless a `!` pattern could re-include something below it (BuildKit's rule); an excluded
//! directory that holds re-included entries is itself part of the result, as BuildKit sends it.
//!
//! The result, [`ContextIndex`], is the metadata of every visible entry; no file is read here.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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

/// Every visible entry of a context, keyed by relative path. `Path` ordering is component-wise,
/// so iteration is a pre-order walk with siblings in byte order.
#[derive(Debug, Clone, Default)]
pub struct ContextIndex {
    entries: BTreeMap<PathBuf, Entry>,
}

impl ContextIndex {
    /// The entry at `path` (relative, clean; `""` is the root).
    pub fn get(&self, path: &Path) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Every entry, the root first, in walk order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entries strictly below `dir`, in walk order.
    pub fn descendants<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a Entry> + 'a {
        use std::ops::Bound;
        self.entries
            .range::<Path, _>((Bound::Excluded(dir), Bound::Unbounded))
            .map(|(_, e)| e)
            .take_while(move |e| e.path.starts_with(dir))
    }

    /// The direct children of `dir`, in byte order of their names.
    pub fn children<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a Entry> + 'a {
        let depth = dir.components().count() + 1;
        self.descendants(dir)
            .filter(move |e| e.path.components().count() == depth)
    }

    /// The number of entries, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index holds nothing (not even the root).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry (used by the walker and by tests).
    pub fn insert(&mut self, entry: Entry) {
        self.entries.insert(entry.path.clone(), entry);
    }
}

/// Walks `root` with `matcher` applied.
pub fn walk(root: &Root, matcher: &IgnoreMatcher) -> Result<ContextIndex, WalkError> {
    walk_with(root, matcher, &|_, _| false)
}

/// Walks `root` with `matcher` applied; a regular file for which `plain(path, stat key)` holds
/// is known to have no extended attributes (from the stat cache) and they are not listed.
pub fn walk_with(
    root: &Root,
    matcher: &IgnoreMatcher,
    plain: &dyn Fn(&Path, &super::StatKey) -> bool,
) -> Result<ContextIndex, WalkError> {
    let err = |op, path: &Path, source: std::io::Error| WalkError {
        root: root.path().to_path_buf(),
        op,
        path: path.to_path_buf(),
        source,
    };
    let top = root
        .open_dir(Path::new(""))
        .map_err(|e| err("open", Path::new(""), e.source))?;
    let st = rustix::fs::fstat(&top).map_err(|e| err("stat", Path::new(""), e.into()))?;
    let mut walker = Walker {
        matcher,
        found: vec![Entry::from_stat(PathBuf::new(), &st, None)],
        pending: Vec::new(),
        err: &err,
        plain,
    };
    walker.dir(&top, Path::new(""), &MatchState::default())?;
    // The walk emits entries in path order already (pre-order, siblings sorted by name), so
    // building the map from them in bulk is linear; inserting one by one would compare paths
    // component by component a few dozen times per entry.
    Ok(ContextIndex {
        entries: walker
            .found
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect(),
    })
}

struct Walker<'a, F> {
    matcher: &'a IgnoreMatcher,
    /// Entries in walk order.
    found: Vec<Entry>,
    /// Excluded ancestor directories not yet emitted, emitted when a descendant is included.
    pending: Vec<Entry>,
    err: &'a F,
    plain: &'a dyn Fn(&Path, &super::StatKey) -> bool,
}

impl<F> Walker<'_, F>
where
    F: Fn(&'static str, &Path, std::io::Error) -> WalkError,
{
    fn dir(&mut self, fd: &OwnedFd, rel: &Path, state: &MatchState) -> Result<(), WalkError> {
        let names = read_names(fd).map_err(|e| (self.err)("read directory", rel, e))?;
        for name in names {
            let name = OsStr::from_bytes(&name);
            let path = rel.join(name);
            let st = match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while walking: it is simply not part of the context.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err((self.err)("stat", &path, e.into())),
            };
            let kind = EntryKind::from_mode(st.st_mode);
            let key = path.to_string_lossy();
            let (excluded, child_state) = if self.matcher.is_empty() {
                (false, MatchState::default())
            } else {
                self.matcher.matches_with_parent(&key, state)
            };
            if excluded && (kind != EntryKind::Dir || self.matcher.can_skip_excluded_dir(&key)) {
                continue;
            }
            let target = if kind == EntryKind::Symlink {
                let t = rustix::fs::readlinkat(fd, name, Vec::new())
                    .map_err(|e| (self.err)("read link", &path, e.into()))?;
                Some(PathBuf::from(OsStr::from_bytes(t.as_bytes())))
            } else {
                None
            };
            let mut entry = Entry::from_stat(path.clone(), &st, target);
            if kind == EntryKind::File && (self.plain)(&entry.path, &super::StatKey::of(&entry)) {
                entry.xattrs = Some(Vec::new());
            } else if kind != EntryKind::Symlink {
                // Through the open directory: no path resolution from the root per file.
                let at = crate::fsroot::proc_fd_path(fd).join(name);
                entry.xattrs = Some(
                    crate::copy::source::list_xattrs(&at)
                        .map_err(|e| (self.err)("list xattrs", &path, e))?,
                );
            }
            if excluded {
                // An excluded directory that may hold re-included entries: walk it, emit it only
                // if something below it is emitted.
                self.pending.push(entry);
            } else {
                self.found.append(&mut self.pending);
                self.found.push(entry);
            }
            if kind == EntryKind::Dir {
                let sub = match rustix::fs::openat(
                    fd,
                    name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(sub) => sub,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err((self.err)("open directory", &path, e.into())),
                };
                let depth = self.pending.len();
                self.dir(&sub, &path, &child_state)?;
                // Drop this directory from the pending list if nothing below it was included.
                if excluded {
                    self.pending.truncate(depth.saturating_sub(1));
                }
            }
        }
        Ok(())
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
