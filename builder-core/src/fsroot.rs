//! Filesystem operations confined to a root directory.
//!
//! Every path that comes from an image, a layer tar, the build context or a mount is untrusted: it may
//! contain `..`, be absolute, or cross symlinks planted to point outside. [`Root`] holds a directory
//! descriptor and resolves every path with `openat2(RESOLVE_IN_ROOT)`, so the kernel treats the root as
//! `/` for the whole lookup, including symlink targets met on the way. Names are first cleaned
//! lexically (as Go's `filepath.Clean` on a path joined to `/`), so `..` can never climb above the root.
//!
//! Operations that create or replace an entry resolve the *parent* inside the root and then act on the
//! last component relative to the parent's descriptor without following it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat};

/// An error from a confined filesystem operation, naming the operation, the root and the path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path} in {root}")]
pub struct FsError {
    /// What was attempted, e.g. "create file".
    pub op: &'static str,
    /// The root directory the path was resolved in.
    pub root: PathBuf,
    /// The path inside the root, as it was given.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl FsError {
    /// Whether the error is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// Result of a confined filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

/// Cleans a path lexically into its normal components, relative to the root: leading `/`, `.` and
/// empty components are dropped, and `..` removes the previous component but never climbs above the
/// root.
pub fn clean_components(path: &Path) -> Vec<&OsStr> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Cleans a path lexically into a relative path (empty for the root itself).
pub fn clean(path: &Path) -> PathBuf {
    clean_components(path).into_iter().collect()
}

/// A directory that confines every path resolved through it.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

impl Root {
    /// Opens `path` (a trusted host directory) as a root.
    pub fn open(path: impl AsRef<Path>) -> FsResult<Self> {
        let path = path.as_ref();
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| FsError {
            op: "open root",
            root: path.to_path_buf(),
            path: PathBuf::from("/"),
            source: e.into(),
        })?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The host path of the root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root's directory descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn err(&self, op: &'static str, path: &Path, source: impl Into<io::Error>) -> FsError {
        FsError {
            op,
            root: self.path.clone(),
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    fn resolve_raw(&self, rel: &Path, oflags: OFlags) -> io::Result<OwnedFd> {
        let cleaned = clean(rel);
        let target: &Path = if cleaned.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &cleaned
        };
        loop {
            match rustix::fs::openat2(
                &self.fd,
                target,
                oflags | OFlags::CLOEXEC,
                // openat2 rejects a mode without O_CREAT.
                Mode::empty(),
                resolve_flags(),
            ) {
                // openat2 returns EAGAIN when a concurrent rename raced the lookup; retrying is the
                // documented answer.
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
                other => return other.map_err(Into::into),
            }
        }
    }

    /// Opens an existing path, following symlinks inside the root.
    pub fn open_at(&self, rel: &Path, oflags: OFlags) -> FsResult<OwnedFd> {
        self.resolve_raw(rel, oflags)
            .map_err(|e| self.err("open", rel, e))
    }

    /// Opens an existing regular file for reading, following symlinks inside the root.
    pub fn open_file(&self, rel: &Path) -> FsResult<File> {
        let fd = self.open_at(rel, OFlags::RDONLY)?;
        Ok(File::from(fd))
    }

    /// Opens an existing directory, following symlinks inside the root.
    pub fn open_dir(&self, rel: &Path) -> FsResult<OwnedFd> {
        self.resolve_raw(rel, DIR_FLAGS)
            .map_err(|e| self.err("open directory", rel, e))
    }

    /// Resolves the parent of `rel` inside the root and returns its descriptor with the final name.
    /// With `create`, missing parent directories are created with mode 0755. Returns `None` as the
    /// name when `rel` is the root itself.
    pub fn parent(&self, rel: &Path, create: bool) -> FsResult<(OwnedFd, Option<OsString>)> {
        let comps = clean_components(rel);
        let Some((last, dirs)) = comps.split_last() else {
            let fd = self.open_dir(Path::new(""))?;
            return Ok((fd, None));
        };
        let parent: PathBuf = dirs.iter().collect();
        let fd = if create {
            self.mkdir_all(&parent, 0o755)?
        } else {
            self.open_dir(&parent)?
        };
        Ok((fd, Some(last.to_os_string())))
    }

    fn parent_named(
        &self,
        rel: &Path,
        create: bool,
        op: &'static str,
    ) -> FsResult<(OwnedFd, OsString)> {
        match self.parent(rel, create)? {
            (fd, Some(name)) => Ok((fd, name)),
            (_, None) => Err(self.err(op, rel, io::Error::from(io::ErrorKind::InvalidInput))),
        }
    }

    /// Creates `rel` and its missing parents as directories (like `mkdir -p`), following symlinks
    /// inside the root, and returns the directory's descriptor. New directories get `mode`.
    pub fn mkdir_all(&self, rel: &Path, mode: u32) -> FsResult<OwnedFd> {
        self.mkdir_all_depth(rel, mode, 0)
    }

    fn mkdir_all_depth(&self, rel: &Path, mode: u32, depth: u32) -> FsResult<OwnedFd> {
        const MAX_LINK_DEPTH: u32 = 40;
        if depth > MAX_LINK_DEPTH {
            return Err(self.err(
                "create directory",
                rel,
                io::Error::from_raw_os_error(libc::ELOOP),
            ));
        }
        let comps = clean_components(rel);
        // Fast path: it already exists.
        match self.resolve_raw(rel, DIR_FLAGS) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err("create directory", rel, e)),
        }
        let mut prefix = PathBuf::new();
        let mut fd = self.open_dir(Path::new(""))?;
        for comp in comps {
            prefix.push(comp);
            match self.resolve_raw(&prefix, DIR_FLAGS) {
                Ok(next) => fd = next,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let created = match rustix::fs::mkdirat(&fd, comp, Mode::from_raw_mode(mode)) {
                        Ok(()) => true,
                        Err(rustix::io::Errno::EXIST) => false,
                        Err(e) => return Err(self.err("create directory", &prefix, e)),
                    };
                    // Resolve again from the root: if something raced us and planted a symlink,
                    // it is still followed inside the root.
                    fd = match self.resolve_raw(&prefix, DIR_FLAGS) {
                        Ok(fd) => fd,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            // A dangling symlink: create its target, as `mkdir -p` through the
                            // link would, resolved inside the root.
                            let target = self.read_link(&prefix)?;
                            let base = prefix.parent().unwrap_or(Path::new(""));
                            let joined = if target.is_absolute() {
                                target
                            } else {
                                base.join(target)
                            };
                            self.mkdir_all_depth(&joined, mode, depth + 1)?;
                            self.resolve_raw(&prefix, DIR_FLAGS)
                                .map_err(|e| self.err("create directory", &prefix, e))?
                        }
                        Err(e) => return Err(self.err("create directory", &prefix, e)),
                    };
                    // mkdir applies the process umask, whatever it is; set the exact mode asked
                    // for on the directories created here (never on existing ones).
                    if created {
                        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                            .map_err(|e| self.err("chmod directory", &prefix, e))?;
                    }
                }
                Err(e) => return Err(self.err("create directory", &prefix, e)),
            }
        }
        Ok(fd)
    }

    /// Stats `rel` without following a final symlink (the parents are followed inside the root).
    pub fn lstat(&self, rel: &Path) -> FsResult<Stat> {
        let (fd, name) = self.parent(rel, false)?;
        match name {
            Some(name) => rustix::fs::statat(&fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.err("stat", rel, e)),
            None => rustix::fs::fstat(&fd).map_err(|e| self.err("stat", rel, e)),
        }
    }

    /// Stats `rel`, following symlinks inside the root.
    pub fn stat(&self, rel: &Path) -> FsResult<Stat> {
        let fd = self
            .resolve_raw(rel, OFlags::PATH)
            .map_err(|e| self.err("stat", rel, e))?;
        rustix::fs::fstat(&fd).map_err(|e| self.err("stat", rel, e))
    }

    /// Whether `rel` exists (without following a final symlink).
    pub fn exists(&self, rel: &Path) -> bool {
        self.lstat(rel).is_ok()
    }

    /// Reads the target of the symlink at `rel`.
    pub fn read_link(&self, rel: &Path) -> FsResult<PathBuf> {
        let (fd, name) = self.parent_named(rel, false, "read link")?;
        let target = rustix::fs::readlinkat(&fd, &name, Vec::new())
            .map_err(|e| self.err("read link", rel, e))?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    }

    /// Removes whatever is at `rel` so that a new entry can take its place. A directory is kept when
    /// `keep_dir` is set and the entry is a directory (tar semantics: a directory entry over an
    /// existing directory merges). Returns whether a directory was kept.
    fn clear_for(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        keep_dir: bool,
    ) -> FsResult<bool> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(self.err("stat", rel, e)),
            Ok(st) => {
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    if keep_dir {
                        return Ok(true);
                    }
                    remove_tree_at(parent, name).map_err(|e| self.err("remove", rel, e))?;
                } else {
                    rustix::fs::unlinkat(parent, name, AtFlags::empty())
                        .map_err(|e| self.err("remove", rel, e))?;
                }
                Ok(false)
            }
        }
    }

    /// Creates (or replaces) a regular file at `rel` with `mode` and returns it open for writing.
    /// Missing parents are created; an existing entry of any kind at `rel` is replaced, never
    /// followed.
    pub fn create_file(&self, rel: &Path, mode: u32) -> FsResult<File> {
        let (parent, name) = self.parent_named(rel, true, "create file")?;
        self.clear_for(&parent, &name, rel, false)?;
        let fd = rustix::fs::openat(
            &parent,
            &name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o7777),
        )
        .map_err(|e| self.err("create file", rel, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| self.err("chmod", rel, e))?;
        Ok(File::from(fd))
    }

    /// Creates the directory `rel` (parents too). An existing directory is kept and gets `mode`;
    /// any other existing entry is replaced.
    pub fn create_dir(&self, rel: &Path, mode: u32) -> FsResult<OwnedFd> {
        let (parent, name) = match self.parent(rel, true)? {
            (fd, Some(name)) => (fd, name),
            (fd, None) => {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
                    .map_err(|e| self.err("chmod", rel, e))?;
                return Ok(fd);
            }
        };
        let kept = self.clear_for(&parent, &name, rel, true)?;
        if !kept {
            rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700))
                .map_err(|e| self.err("create directory", rel, e))?;
        }
        let fd = rustix::fs::openat(&parent, &name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())
            .map_err(|e| self.err("open directory", rel, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| self.err("chmod", rel, e))?;
        Ok(fd)
    }

    /// Creates (or replaces) a symlink at `rel` pointing to `target`. The target is stored as is;
    /// it is only ever followed through a [`Root`], which keeps it inside.
    pub fn symlink(&self, target: &Path, rel: &Path) -> FsResult<()> {
        let (parent, name) = self.parent_named(rel, true, "create symlink")?;
        self.clear_for(&parent, &name, rel, false)?;
        rustix::fs::symlinkat(target, &parent, &name)
            .map_err(|e| self.err("create symlink", rel, e))
    }

    /// Creates (or replaces) a hard link at `rel` to the existing entry `existing` (both inside the
    /// root; a final symlink at `existing` is linked itself, not followed).
    pub fn hard_link(&self, existing: &Path, rel: &Path) -> FsResult<()> {
        let (src_parent, src_name) = self.parent_named(existing, false, "hard link from")?;
        let (parent, name) = self.parent_named(rel, true, "create hard link")?;
        if clean(existing) == clean(rel) {
            return Ok(());
        }
        self.clear_for(&parent, &name, rel, false)?;
        rustix::fs::linkat(&src_parent, &src_name, &parent, &name, AtFlags::empty())
            .map_err(|e| self.err("create hard link", rel, e))
    }

    /// Creates (or replaces) a device node or FIFO at `rel`.
    pub fn mknod(&self, rel: &Path, kind: FileType, mode: u32, dev: u64) -> FsResult<()> {
        let (parent, name) = self.parent_named(rel, true, "create node")?;
        self.clear_for(&parent, &name, rel, false)?;
        rustix::fs::mknodat(
            &parent,
            &name,
            kind,
            Mode::from_raw_mode(mode & 0o7777),
            dev,
        )
        .map_err(|e| self.err("create node", rel, e))
    }

    /// Removes `rel` and everything below it, never following symlinks. Missing is not an error.
    pub fn remove_all(&self, rel: &Path) -> FsResult<()> {
        let (parent, name) = match self.parent(rel, false) {
            Ok((fd, Some(name))) => (fd, name),
            Ok((fd, None)) => {
                return clear_dir(&fd).map_err(|e| self.err("remove", rel, e));
            }
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        self.clear_for(&parent, &name, rel, false).map(|_| ())
    }

    /// Removes every entry inside the directory `rel`, keeping the directory itself.
    pub fn clear_dir(&self, rel: &Path) -> FsResult<()> {
        let fd = self.open_dir(rel)?;
        clear_dir(&fd).map_err(|e| self.err("clear directory", rel, e))
    }

    /// Sets owner, without following a final symlink.
    pub fn lchown(&self, rel: &Path, uid: u32, gid: u32) -> FsResult<()> {
        let (parent, name) = self.parent(rel, false)?;
        let res = match &name {
            Some(name) => rustix::fs::chownat(
                &parent,
                name,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            ),
            None => rustix::fs::fchown(
                &parent,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            ),
        };
        crate::rootless::owner_change(res, uid, gid).map_err(|e| self.err("chown", rel, e))
    }

    /// Sets the permission bits of a non-symlink entry (symlinks have no mode of their own).
    pub fn chmod(&self, rel: &Path, mode: u32) -> FsResult<()> {
        let fd = self.open_nofollow_path(rel)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("chmod", rel, e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Ok(());
        }
        // fchmod does not work on O_PATH descriptors; go through the descriptor's proc link.
        let proc = proc_fd_path(&fd);
        rustix::fs::chmod(&proc, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| self.err("chmod", rel, e))
    }

    /// Sets access and modification times (seconds and nanoseconds), not following a final symlink.
    pub fn set_times(&self, rel: &Path, secs: i64, nanos: i64) -> FsResult<()> {
        let (parent, name) = self.parent(rel, false)?;
        let ts = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: secs,
                tv_nsec: nanos as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: secs,
                tv_nsec: nanos as _,
            },
        };
        let res = match &name {
            Some(name) => rustix::fs::utimensat(&parent, name, &ts, AtFlags::SYMLINK_NOFOLLOW),
            None => rustix::fs::futimens(&parent, &ts),
        };
        res.map_err(|e| self.err("set times", rel, e))
    }

    /// Opens `rel` as an `O_PATH` descriptor without following a final symlink.
    pub fn open_nofollow_path(&self, rel: &Path) -> FsResult<OwnedFd> {
        let (parent, name) = self.parent(rel, false)?;
        match name {
            Some(name) => rustix::fs::openat(
                &parent,
                &name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.err("open", rel, e)),
            None => Ok(parent),
        }
    }

    /// Sets an extended attribute on a regular file or directory at `rel` (a final symlink is not
    /// followed; symlinks themselves cannot take one here and give `EOPNOTSUPP`).
    pub fn set_xattr(&self, rel: &Path, name: &OsStr, value: &[u8]) -> FsResult<()> {
        let fd = self.open_nofollow_path(rel)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("set xattr", rel, e))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            // Reaching a symlink's own xattrs needs a path to it; through the descriptor's proc
            // link only the link's target is reachable.
            return Err(self.err(
                "set xattr",
                rel,
                io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            ));
        }
        // fsetxattr does not work on O_PATH descriptors and lsetxattr would act on the proc
        // link itself; setxattr through the proc link reaches exactly the opened inode.
        let proc = proc_fd_path(&fd);
        rustix::fs::setxattr(&proc, name, value, rustix::fs::XattrFlags::empty())
            .map_err(|e| self.err("set xattr", rel, e))
    }

    /// The host path that `rel` resolves to inside the root (following symlinks inside it). Use it
    /// only where the kernel needs a path (mount targets), right after resolving.
    pub fn real_path(&self, rel: &Path) -> FsResult<PathBuf> {
        let fd = self
            .resolve_raw(rel, OFlags::PATH)
            .map_err(|e| self.err("resolve", rel, e))?;
        std::fs::read_link(proc_fd_path(&fd)).map_err(|e| self.err("resolve", rel, e))
    }
}

/// `/proc/self/fd/N` for a descriptor, for calls that only take paths.
pub fn proc_fd_path(fd: &impl AsFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// Removes the entry `name` in `parent` recursively without following symlinks.
fn remove_tree_at(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(parent, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
    clear_dir(&fd)?;
    drop(fd);
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// Removes every entry of an open directory without following symlinks.
fn clear_dir(fd: &OwnedFd) -> io::Result<()> {
    let dup = rustix::fs::openat(fd, ".", DIR_FLAGS, Mode::empty())?;
    let mut dir = Dir::read_from(&dup)?;
    let mut names: Vec<(OsString, bool)> = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => {
                let st = rustix::fs::statat(fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
            }
            _ => false,
        };
        names.push((OsStr::from_bytes(name).to_os_string(), is_dir));
    }
    for (name, is_dir) in names {
        if is_dir {
            remove_tree_at(fd, &name)?;
        } else {
            rustix::fs::unlinkat(fd, &name, AtFlags::empty())?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "fsroot_tests.rs"]
mod tests;
