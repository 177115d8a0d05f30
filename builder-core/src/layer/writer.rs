//! The deterministic layer writer: a tree, or the changes a step made to it, as a tar stream.
//!
//! Entries are written in the order of their paths compared component by component (a depth-first
//! walk with each directory's names sorted by bytes), so parents come before children. Every parent
//! directory of a changed entry is included, as containerd's differ does. Files are read through
//! directory descriptors opened with `O_NOFOLLOW` from a [`Root`], so a hostile symlink in the
//! source tree is recorded as a symlink and never followed. Hard links within the layer (same
//! device and inode) become link entries to the first path written. Times are seconds only, clamped
//! to `SOURCE_DATE_EPOCH` when given; owners are numeric; `security.capability` and `user.*`
//! xattrs (except `user.overlay.*`) are kept.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Dir, FileType, Mode, OFlags};

use super::LayerError;
use super::tarfmt::{BLOCK, EntryHeader, Kind, padding};
use crate::changes::Change;
use crate::fsroot::Root;

/// Options of the layer writer.
#[derive(Debug, Clone, Default)]
pub struct LayerOptions {
    /// `SOURCE_DATE_EPOCH`: file times later than this are written as this, and whiteouts carry
    /// it. Whiteouts carry 0 when unset.
    pub source_date_epoch: Option<i64>,
}

/// What a layer writer wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Tar entries (not counting PAX headers).
    pub entries: u64,
    /// Bytes of file content.
    pub content_bytes: u64,
}

const XATTR_PREFIX_OK: &[&str] = &["security.capability", "user."];
const COPY_BUF: usize = 1 << 20;

/// Regular files of a tree whose contents are read from elsewhere than the tree (see
/// [`write_tree_substituted`]), and where the writer put them in the layer.
#[derive(Debug, Default)]
pub struct Substitutes {
    /// Per path in the tree: the file to read the contents from, their size, and the device
    /// and inode of the tree's file they stand for (a file at that path that is another inode
    /// is written as it is).
    pub files: HashMap<PathBuf, (File, u64, (u64, u64))>,
    /// Per substituted file written: its path, the offset of its contents in the layer, size.
    pub placed: Vec<(PathBuf, u64, u64)>,
}

/// Writes every entry under the root of `src` (not the root itself) as one layer.
pub fn write_tree<W: Write>(
    src: &Root,
    opts: &LayerOptions,
    out: W,
) -> Result<(W, WriteStats), LayerError> {
    write_tree_substituted(src, opts, out, &mut Substitutes::default())
}

/// [`write_tree`], with the contents of the regular files named in `subst` (of the size given
/// there, which the tree's file must have) read from the files given there: a tree whose big
/// files are placeholders can be written as if they had their contents. Their offsets in the
/// layer are recorded in `subst.placed`, and the files written are taken out of `subst.files`.
pub fn write_tree_substituted<W: Write>(
    src: &Root,
    opts: &LayerOptions,
    out: W,
    subst: &mut Substitutes,
) -> Result<(W, WriteStats), LayerError> {
    let mut w = TarWriter::new(src, opts, out);
    w.subst = Some(subst);
    let top = src.open_dir(Path::new(""))?;
    // A depth-first walk with an explicit stack: (directory, its path, its sorted names, next).
    let mut stack: Vec<(OwnedFd, PathBuf, Vec<OsString>, usize)> = Vec::new();
    let names = w.list(&top, Path::new(""))?;
    stack.push((top, PathBuf::new(), names, 0));
    while let Some((dir, rel, names, next)) = stack.last_mut() {
        let Some(name) = names.get(*next).cloned() else {
            stack.pop();
            continue;
        };
        *next += 1;
        let child_rel = rel.join(&name);
        let dir_fd = dir.as_fd();
        if let Some(child) = w.emit(dir_fd, &name, &child_rel)? {
            let names = w.list(&child, &child_rel)?;
            stack.push((child, child_rel, names, 0));
        }
    }
    w.finish()
}

enum Action {
    Entry,
    Whiteout,
}

/// Writes the entries named by `changes` (and their parent directories) as one layer, reading
/// their current state from `src`. Deletions become `.wh.<name>` entries and opaque directories
/// `<dir>/.wh..wh..opq` entries. The order of `changes` does not matter.
pub fn write_changes<W: Write>(
    src: &Root,
    changes: &[Change],
    opts: &LayerOptions,
    out: W,
) -> Result<(W, WriteStats), LayerError> {
    let mut plan: BTreeMap<PathBuf, Action> = BTreeMap::new();
    for change in changes {
        let path = crate::fsroot::clean(change.path());
        let Some(name) = path.file_name().map(OsStr::to_os_string) else {
            continue; // the root itself is never an entry
        };
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        match change {
            Change::Upsert(_) => {
                plan.insert(path, Action::Entry);
            }
            Change::Delete(_) => {
                let mut wh = OsString::from(".wh.");
                wh.push(&name);
                plan.insert(parent.join(wh), Action::Whiteout);
            }
            Change::Opaque(_) => {
                plan.insert(path.join(".wh..wh..opq"), Action::Whiteout);
                plan.insert(path, Action::Entry);
            }
        }
    }
    let ancestors: Vec<PathBuf> = plan
        .keys()
        .flat_map(|p| p.ancestors().skip(1))
        .filter(|a| !a.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    for a in ancestors {
        plan.entry(a).or_insert(Action::Entry);
    }

    let mut w = TarWriter::new(src, opts, out);
    let mut parent_cache: Option<(PathBuf, OwnedFd)> = None;
    for (path, action) in &plan {
        let parent = path.parent().unwrap_or(Path::new(""));
        let name = path.file_name().unwrap_or_default();
        match action {
            Action::Whiteout => w.whiteout(path)?,
            Action::Entry => {
                if parent_cache.as_ref().is_none_or(|(p, _)| p != parent) {
                    parent_cache = Some((parent.to_path_buf(), src.open_dir(parent)?));
                }
                if let Some((_, fd)) = &parent_cache {
                    w.emit(fd.as_fd(), name, path)?;
                }
            }
        }
    }
    w.finish()
}

pub(super) struct TarWriter<'a, W> {
    src: &'a Root,
    opts: &'a LayerOptions,
    out: W,
    /// Bytes written so far.
    pos: u64,
    subst: Option<&'a mut Substitutes>,
    buf: Vec<u8>,
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: WriteStats,
}

impl<'a, W: Write> TarWriter<'a, W> {
    pub(super) fn new(src: &'a Root, opts: &'a LayerOptions, out: W) -> Self {
        Self {
            src,
            opts,
            out,
            pos: 0,
            subst: None,
            buf: Vec::new(),
            links: HashMap::new(),
            stats: WriteStats::default(),
        }
    }

    fn io_err(&self, op: &'static str, rel: &Path, e: impl Into<std::io::Error>) -> LayerError {
        LayerError::Io(crate::report::IoError {
            op,
            path: self.src.path().join(rel),
            source: e.into(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), LayerError> {
        self.out.write_all(bytes).map_err(LayerError::Write)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn header(&mut self, h: &EntryHeader) -> Result<(), LayerError> {
        let mut counted = Counted {
            out: &mut self.out,
            n: 0,
        };
        h.write_to(&mut counted).map_err(LayerError::Write)?;
        self.pos += counted.n;
        self.stats.entries += 1;
        Ok(())
    }

    fn list(&self, dir: &OwnedFd, rel: &Path) -> Result<Vec<OsString>, LayerError> {
        let mut d = Dir::read_from(dir).map_err(|e| self.io_err("list", rel, e))?;
        let mut names = Vec::new();
        while let Some(entry) = d.read() {
            let entry = entry.map_err(|e| self.io_err("list", rel, e))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    fn clamp(&self, mtime: i64) -> i64 {
        match self.opts.source_date_epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }

    fn whiteout(&mut self, rel: &Path) -> Result<(), LayerError> {
        let h = EntryHeader {
            name: rel.as_os_str().as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: self.opts.source_date_epoch.unwrap_or(0),
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        };
        self.header(&h)
    }

    /// Whether a file with more than one link was written: its later paths would be link
    /// entries to the first one written, which only a whole-layer writer can know.
    pub(super) fn wrote_multi_link(&self) -> bool {
        !self.links.is_empty()
    }

    /// Copies `len` bytes of an entry written earlier (headers, content and padding, as they
    /// were) from `from` into the layer.
    pub(super) fn copy_raw(
        &mut self,
        from: &mut impl Read,
        mut len: u64,
        content: u64,
    ) -> Result<(), LayerError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_BUF];
        }
        while len > 0 {
            let want = len.min(self.buf.len() as u64) as usize;
            from.read_exact(&mut self.buf[..want])
                .map_err(LayerError::Read)?;
            self.out
                .write_all(&self.buf[..want])
                .map_err(LayerError::Write)?;
            self.pos += want as u64;
            len -= want as u64;
        }
        self.stats.entries += 1;
        self.stats.content_bytes += content;
        Ok(())
    }

    /// Writes the entry `name` in `parent`; returns the directory's descriptor if it is one.
    pub(super) fn emit(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> Result<Option<OwnedFd>, LayerError> {
        if name.as_bytes().starts_with(b".wh.") {
            return Err(LayerError::WhiteoutName {
                path: rel.to_path_buf(),
            });
        }
        // The entry itself, never what a symlink points at; a regular file is opened below and
        // checked to be the inode stat'ed here.
        let st = rustix::fs::statat(parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io_err("stat", rel, e))?;
        let mut h = EntryHeader {
            name: rel.as_os_str().as_bytes().to_vec(),
            kind: Kind::File,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            size: 0,
            mtime: self.clamp(st.st_mtime),
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        h.kind = Kind::HardLink;
                        h.link = first.clone();
                        self.header(&h)?;
                        return Ok(None);
                    }
                    self.links.insert(key, h.name.clone());
                }
                // Opened by name for reading, without following a symlink (a file replaced by
                // one since the stat fails here), and checked to be the inode stat'ed above.
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io_err("open", rel, e))?;
                let again = rustix::fs::fstat(&fd).map_err(|e| self.io_err("stat", rel, e))?;
                if (again.st_dev, again.st_ino) != key {
                    return Err(self.io_err(
                        "open",
                        rel,
                        std::io::Error::other("the file was replaced while it was archived"),
                    ));
                }
                let file = File::from(fd);
                h.size = st.st_size as u64;
                h.xattrs = self.xattrs(file.as_fd(), rel)?;
                let stand_in = match self.subst.as_deref_mut() {
                    Some(s) => s.files.remove(rel),
                    None => None,
                };
                let (file, substituted) = match stand_in {
                    Some((_, _, id)) if id != key => (file, false),
                    Some((source, size, _)) if size == h.size && st.st_nlink == 1 => (source, true),
                    Some(_) => {
                        return Err(self.io_err(
                            "archive",
                            rel,
                            std::io::Error::other("a placeholder does not match its source"),
                        ));
                    }
                    None => (file, false),
                };
                self.header(&h)?;
                if substituted && let Some(s) = self.subst.as_deref_mut() {
                    // The contents follow the header.
                    s.placed.push((rel.to_path_buf(), self.pos, h.size));
                }
                self.copy_content(file, h.size, rel)?;
                Ok(None)
            }
            FileType::Directory => {
                let dir = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io_err("open directory", rel, e))?;
                h.kind = Kind::Dir;
                h.name.push(b'/');
                h.xattrs = self.xattrs(dir.as_fd(), rel)?;
                self.header(&h)?;
                Ok(Some(dir))
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, name, Vec::new())
                    .map_err(|e| self.io_err("read link", rel, e))?;
                h.kind = Kind::Symlink;
                h.link = target.into_bytes();
                self.header(&h)?;
                Ok(None)
            }
            kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                h.kind = match kind {
                    FileType::CharacterDevice => Kind::Char,
                    FileType::BlockDevice => Kind::Block,
                    _ => Kind::Fifo,
                };
                if h.kind != Kind::Fifo {
                    h.dev_major = rustix::fs::major(st.st_rdev);
                    h.dev_minor = rustix::fs::minor(st.st_rdev);
                }
                self.header(&h)?;
                Ok(None)
            }
            // Sockets are not archived (as Docker does); nothing else exists.
            _ => Ok(None),
        }
    }

    fn xattrs(&self, fd: BorrowedFd<'_>, rel: &Path) -> Result<Vec<(String, Vec<u8>)>, LayerError> {
        let all = crate::xattr::list_fd(fd).map_err(|e| self.io_err("list xattrs", rel, e))?;
        Ok(all
            .into_iter()
            .filter_map(|(key, value)| {
                let key = key.into_string().ok()?;
                let wanted = XATTR_PREFIX_OK.iter().any(|p| key.starts_with(p))
                    && !crate::xattr::is_overlay_own(key.as_bytes());
                wanted.then_some((key, value))
            })
            .collect())
    }

    fn copy_content(&mut self, mut file: File, size: u64, rel: &Path) -> Result<(), LayerError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_BUF];
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(LayerError::FileChanged {
                        path: self.src.path().join(rel),
                        expected: size,
                        actual: size - left,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err("read", rel, e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(LayerError::Write)?;
            self.pos += n as u64;
            left -= n as u64;
        }
        self.stats.content_bytes += size;
        self.write(&[0u8; BLOCK][..padding(size)])
    }

    pub(super) fn finish(mut self) -> Result<(W, WriteStats), LayerError> {
        self.write(&[0u8; 2 * BLOCK])?;
        self.out.flush().map_err(LayerError::Write)?;
        Ok((self.out, self.stats))
    }
}

/// Counts what goes through to `out`.
struct Counted<'a, W> {
    out: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
