//! Writing one entry of a copy: a directory, regular file, symlink or special file created
//! through the destination root with its owner, mode, xattrs and times; regular files created
//! right in the descriptor of a directory the copy made, their bytes sent with `sendfile`, or
//! deferred (see [`super::apply_deferring`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Timespec, Timestamps, XattrFlags};

use super::{Deferred, Writer};
use crate::context::{Entry, EntryKind};
use crate::copy::select::dest_mode;
use crate::copy::source::{open_source_file, read_xattrs};
use crate::copy::{CopyError, real_rel};

/// Copies a whole source file into a new destination file: `sendfile` until end of file, which
/// spares `std::io::copy`'s per-file `fstat`s and its `copy_file_range` attempt (which fails
/// between the context's filesystem and an overlay mount anyway); anything else falls back to it.
///
/// `size` is the size the source had when it was listed: once that much is copied, one more
/// `sendfile` only finds the end, so it is skipped; a file that grew since is copied on to its end.
fn copy_contents(
    src: &mut std::fs::File,
    out: &mut std::fs::File,
    size: u64,
) -> std::io::Result<u64> {
    let mut total = 0u64;
    loop {
        match rustix::fs::sendfile(&*out, &*src, None, 1 << 30) {
            Ok(0) => return Ok(total),
            Ok(n) if total + n as u64 == size && size < 1 << 30 => {
                // Only a file of at most one call's worth: a larger one is copied in several
                // calls anyway, and it is checked to its end.
                return Ok(size);
            }
            Ok(n) => total += n as u64,
            Err(rustix::io::Errno::INTR) => {}
            // Nothing was written yet by this call; std::io::copy continues from the file
            // offsets sendfile advanced.
            Err(_) => return std::io::copy(src, out).map(|n| total + n),
        }
    }
}

fn ts(t: (i64, u32)) -> Timestamps {
    let spec = Timespec {
        tv_sec: t.0,
        tv_nsec: t.1 as _,
    };
    Timestamps {
        last_access: spec,
        last_modification: spec,
    }
}

/// An extended attribute's name and value.
type Xattr = (OsString, Vec<u8>);

/// At most this many files per copying thread are deferred (each holds two descriptors).
const DEFER_MAX: usize = 16;

impl Writer<'_> {
    fn io(&self, op: &'static str, path: &Path, e: impl Into<std::io::Error>) -> CopyError {
        CopyError::Io {
            op,
            root: self.dest.path().to_path_buf(),
            path: path.to_path_buf(),
            source: e.into(),
        }
    }

    /// The descriptor of `dst`'s parent when this item created that directory.
    fn fresh_parent(&mut self, dst: &Path) -> Option<&OwnedFd> {
        let parent = dst.parent()?;
        while let Some((p, _)) = self.fresh_fds.last() {
            if parent.starts_with(p) {
                break;
            }
            self.fresh_fds.pop();
        }
        if self.fresh_fds.last().is_none_or(|(p, _)| p != parent) && self.fresh.contains(parent) {
            // Created by this item earlier, by another pass (see `copy_contents_parallel`):
            // opened through the root once for the files that follow in it.
            let fd = self.dest.open_dir(parent).ok()?;
            self.fresh_fds.push((parent.to_path_buf(), fd));
        }
        match self.fresh_fds.last() {
            Some((p, fd)) if p == parent => Some(fd),
            _ => None,
        }
    }

    /// Creates the regular file `dst` for writing. In a directory this item created (so empty
    /// of anything but this item's entries, each written once) it is created right in the
    /// directory's descriptor: `O_EXCL | O_NOFOLLOW` on a single name cannot leave it.
    fn create_file(&mut self, dst: &Path, mode: u32) -> Result<std::fs::File, CopyError> {
        let name = dst.file_name().map(OsStr::to_os_string);
        if let (Some(name), Some(parent)) = (name, self.fresh_parent(dst)) {
            let fd = rustix::fs::openat(
                parent,
                &name,
                rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::EXCL
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(mode & 0o7777),
            )
            .map_err(|e| self.io("create file", dst, e))?;
            return Ok(std::fs::File::from(fd));
        }
        Ok(self.dest.create_file(dst, mode)?)
    }

    /// Opens a source file for reading, reusing the last source directory's descriptor (opened
    /// confined to the source root) when the file is in it.
    fn open_source(&mut self, path: &Path) -> Result<std::fs::File, CopyError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return open_source_file(self.fs.root(), path);
        };
        if self.src_dir.as_ref().is_none_or(|(p, _)| p != parent) {
            self.src_dir = None;
            let fd = self.fs.root().open_dir(parent)?;
            self.src_dir = Some((parent.to_path_buf(), fd));
        }
        let Some((_, dir)) = &self.src_dir else {
            return open_source_file(self.fs.root(), path);
        };
        let fd = rustix::fs::openat(
            dir,
            name,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC
                | rustix::fs::OFlags::NONBLOCK,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| CopyError::Io {
            op: "open",
            root: self.fs.root().path().to_path_buf(),
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(std::fs::File::from(fd))
    }

    fn owner_of(&self, entry: &Entry) -> (u32, u32) {
        self.chown
            .or_else(|| self.fs.default_owner())
            .unwrap_or((entry.uid, entry.gid))
    }

    fn chown(&mut self, path: &Path, owner: (u32, u32)) -> Result<(), CopyError> {
        self.note_owner(path, owner);
        if !self.opts.skip_chown {
            self.dest.lchown(path, owner.0, owner.1)?;
        }
        Ok(())
    }

    pub(super) fn set_times(&self, path: &Path, t: (i64, u32)) -> Result<(), CopyError> {
        self.dest.set_times(path, t.0, t.1 as i64)?;
        Ok(())
    }

    /// `mkdir -p` through the destination root; new directories get 0755, the `--chown` owner
    /// and are recorded as written.
    pub(super) fn mkdir_all(&mut self, rel: &Path) -> Result<(), CopyError> {
        let mut prefix = PathBuf::new();
        for comp in rel.components() {
            prefix.push(comp);
            match self.dest.stat(&prefix) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => continue,
                Ok(_) => return Err(CopyError::NotDir { path: prefix }),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            self.dest.mkdir_all(&prefix, 0o755)?;
            let real = real_rel(self.dest, &prefix)?;
            self.dest.chmod(&real, 0o755)?;
            match self.chown {
                Some(owner) => self.chown(&real, owner)?,
                None => {
                    self.note_owner(&real, (0, 0));
                }
            }
            if let Some(t) = self.opts.created_dir_mtime {
                self.set_times(&real, t)?;
            }
            self.note_written(&real);
        }
        Ok(())
    }

    /// Copies one entry to `dst` (a real path: its parent has no symlink).
    pub(super) fn copy_entry(
        &mut self,
        entry: &Entry,
        dst: &Path,
        overwrite_dir_metadata: bool,
        links: &mut HashMap<(u64, u64), PathBuf>,
    ) -> Result<(), CopyError> {
        let in_fresh_dir = dst.parent().is_some_and(|p| self.fresh.contains(p));
        let existing = if in_fresh_dir {
            None
        } else {
            match self.dest.lstat(dst) {
                Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            }
        };
        if existing == Some(FileType::Directory) && entry.kind != EntryKind::Dir {
            return Err(CopyError::ReplaceDir {
                path: dst.to_path_buf(),
            });
        }
        let owner = self.owner_of(entry);
        let mode = dest_mode(self.req, entry);
        match entry.kind {
            EntryKind::Dir => {
                let created = match existing {
                    None => true,
                    Some(FileType::Directory) => false,
                    Some(_) => {
                        return Err(CopyError::NotDir {
                            path: dst.to_path_buf(),
                        });
                    }
                };
                let fd = self.dest.create_dir(dst, mode)?;
                if created || overwrite_dir_metadata {
                    self.chown(dst, owner)?;
                    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode))
                        .map_err(|e| self.io("chmod", dst, e))?;
                    self.copy_xattrs(entry, &fd, dst)?;
                }
                self.set_times(dst, entry.mtime)?;
                if created {
                    self.fresh.insert(dst.to_path_buf());
                    // Drops siblings' descriptors: pre-order is done with them.
                    let _ = self.fresh_parent(dst);
                    self.fresh_fds.push((dst.to_path_buf(), fd));
                }
            }
            EntryKind::File => {
                if entry.nlink > 1 {
                    if let Some(first) = links.get(&(entry.dev, entry.ino)) {
                        self.dest.hard_link(first, dst)?;
                        self.note_owner(dst, owner);
                        self.note_written(dst);
                        return Ok(());
                    }
                    links.insert((entry.dev, entry.ino), dst.to_path_buf());
                }
                let mut out = self.create_file(dst, mode)?;
                let mut src = self.open_source(&entry.path)?;
                if self.defers(entry, mode)? {
                    out.set_len(entry.size)
                        .map_err(|e| self.io("set the size of", dst, e))?;
                    let placeholder = out.try_clone().map_err(|e| self.io("open", dst, e))?;
                    self.deferred.push(Deferred {
                        path: dst.to_path_buf(),
                        source: src,
                        placeholder,
                        size: entry.size,
                    });
                } else {
                    copy_contents(&mut src, &mut out, entry.size)
                        .map_err(|e| self.io("write", dst, e))?;
                }
                self.note_owner(dst, owner);
                // A new file usually has the right owner and mode already (created by root with
                // the mode asked, under a umask that left it alone): a stat is much cheaper than
                // an attribute change, which dirties the inode (and, under overlayfs, does so on
                // the upper layer's filesystem) for nothing.
                let st = rustix::fs::fstat(&out).map_err(|e| self.io("stat", dst, e))?;
                let want_owner = (st.st_uid, st.st_gid) != owner && !self.opts.skip_chown;
                if want_owner {
                    let res = rustix::fs::fchown(
                        &out,
                        Some(rustix::fs::Uid::from_raw(owner.0)),
                        Some(rustix::fs::Gid::from_raw(owner.1)),
                    );
                    crate::rootless::owner_change(res, owner.0, owner.1)
                        .map_err(|e| self.io("chown", dst, e))?;
                }
                // A chown clears the setuid and setgid bits, so the mode is set after it.
                if want_owner || st.st_mode & 0o7777 != mode & 0o7777 {
                    rustix::fs::fchmod(&out, rustix::fs::Mode::from_raw_mode(mode))
                        .map_err(|e| self.io("chmod", dst, e))?;
                }
                let fd = OwnedFd::from(out);
                self.copy_xattrs(entry, &fd, dst)?;
                rustix::fs::futimens(&fd, &ts(entry.mtime))
                    .map_err(|e| self.io("set times", dst, e))?;
            }
            EntryKind::Symlink => {
                let target = entry.link_target.clone().unwrap_or_default();
                self.dest.symlink(&target, dst)?;
                self.chown(dst, owner)?;
                self.set_times(dst, entry.mtime)?;
            }
            EntryKind::Fifo
            | EntryKind::Socket
            | EntryKind::CharDevice
            | EntryKind::BlockDevice => {
                let kind = match entry.kind {
                    EntryKind::Fifo => FileType::Fifo,
                    EntryKind::Socket => FileType::Socket,
                    EntryKind::CharDevice => FileType::CharacterDevice,
                    _ => FileType::BlockDevice,
                };
                self.dest.mknod(dst, kind, mode, entry.rdev)?;
                self.chown(dst, owner)?;
                self.dest.chmod(dst, mode)?;
                self.set_times(dst, entry.mtime)?;
            }
        }
        self.note_written(dst);
        Ok(())
    }

    pub(super) fn note_written(&mut self, path: &Path) {
        if self.record {
            self.written.push(path.to_path_buf());
        }
    }

    fn note_owner(&mut self, path: &Path, owner: (u32, u32)) {
        if self.record {
            self.owners.insert(path.to_path_buf(), owner);
        }
    }

    /// Whether the regular file `entry`, copied with `mode`, is created without its bytes.
    fn defers(&self, entry: &Entry, mode: u32) -> Result<bool, CopyError> {
        if self.defer_min.is_none_or(|min| entry.size < min)
            || self.deferred.len() >= DEFER_MAX
            || entry.nlink > 1
            || mode & 0o6000 != 0
        {
            return Ok(false);
        }
        let xattrs = self.xattrs_of(entry)?;
        Ok(!xattrs
            .iter()
            .any(|(name, _)| name.as_encoded_bytes().starts_with(b"security.")))
    }

    /// The source entry's xattrs: as its listing recorded them, or read now.
    fn xattrs_of<'e>(&self, entry: &'e Entry) -> Result<Cow<'e, [Xattr]>, CopyError> {
        Ok(match &entry.xattrs {
            Some(x) => Cow::Borrowed(x),
            None => Cow::Owned(read_xattrs(self.fs.root(), &entry.path)?),
        })
    }

    /// Copies the source entry's xattrs onto `fd`. Failures are logged and skipped, as BuildKit
    /// does (e.g. `security.*` names a filesystem refuses).
    fn copy_xattrs(&self, entry: &Entry, fd: &impl AsFd, dst: &Path) -> Result<(), CopyError> {
        for (name, value) in self.xattrs_of(entry)?.iter() {
            if let Err(e) = rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()) {
                tracing::debug!(path = %dst.display(), xattr = ?name, error = %crate::report::chain(&e), "xattr not copied");
            }
        }
        Ok(())
    }
}
