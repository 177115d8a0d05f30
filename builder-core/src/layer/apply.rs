//! The confined layer applier: extracts a layer tar (plain, gzip or zstd) into a [`Root`].
//!
//! Every name is cleaned lexically and resolved inside the root with `openat2(RESOLVE_IN_ROOT)`,
//! so `..`, absolute names and symlinks planted by earlier entries (even ones pointing at `/` or
//! `../../..`) all stay inside. Hard link targets are resolved the same way, so a link to
//! `/etc/passwd` names the root's own `etc/passwd` or fails. An existing entry is replaced unless
//! both are directories (which merge), as Docker does.
//!
//! Whiteouts follow the OCI layer spec. With [`WhiteoutStyle::Apply`] `.wh.name` removes `name`
//! and `.wh..wh..opq` removes everything in its directory that this layer did not itself add, so
//! the result is the same wherever the marker appears in the tar (containerd's rule). With
//! [`WhiteoutStyle::Overlay`] they become overlayfs whiteouts (0/0 character devices) and the
//! `trusted.overlay.opaque=y` xattr (`user.overlay.opaque` in a user namespace).
//!
//! Owners are set before modes so setuid and setgid bits survive; directory times are set last,
//! after their contents. Device nodes that cannot be created for lack of privilege are skipped and
//! counted (Docker does the same in rootless mode), and so are xattrs the filesystem refuses.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Dir, FileType};
use tar::EntryType;

use super::LayerError;
use super::compress::decompress;
use crate::changes::WhiteoutStyle;
use crate::fsroot::{FsError, Root, clean};

/// Options of the applier.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Set each entry's owner from the tar (needs root, or a user namespace mapping the ids).
    pub chown: bool,
    /// Skip device nodes that cannot be created for lack of privilege instead of failing.
    pub ignore_device_eperm: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            chown: true,
            ignore_device_eperm: true,
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries created (not counting whiteouts).
    pub entries: u64,
    /// Bytes of file content written.
    pub content_bytes: u64,
    /// Whiteouts and opaque markers processed.
    pub whiteouts: u64,
    /// Device nodes skipped for lack of privilege.
    pub skipped_devices: u64,
    /// Extended attributes the filesystem refused.
    pub skipped_xattrs: u64,
}

const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// Applies a layer (plain, gzip or zstd tar; detected by magic bytes) on top of `root`.
pub fn apply_layer(
    root: &Root,
    reader: impl Read,
    style: WhiteoutStyle,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    apply_tar(root, decompress(reader)?, style, opts)
}

/// Applies an uncompressed layer tar on top of `root` (what [`apply_layer`] does after it
/// detected the compression).
pub(crate) fn apply_tar(
    root: &Root,
    reader: impl Read,
    style: WhiteoutStyle,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let mut archive = tar::Archive::new(reader);
    let mut state = Applier {
        root,
        style,
        opts,
        stats: ApplyStats::default(),
        unpacked: HashSet::new(),
        dir_times: Vec::new(),
        opaque_dirs: Vec::new(),
        buf: vec![0u8; 1 << 20],
    };
    let entries = archive.entries().map_err(tar_read_error)?;
    for entry in entries {
        let mut entry = entry.map_err(tar_read_error)?;
        state.entry(&mut entry)?;
    }
    state.finish()
}

struct Applier<'a> {
    root: &'a Root,
    style: WhiteoutStyle,
    opts: &'a ApplyOptions,
    stats: ApplyStats,
    /// Paths this layer created, which an opaque marker in their directory must keep.
    unpacked: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, i64)>,
    opaque_dirs: Vec<PathBuf>,
    buf: Vec<u8>,
}

/// Metadata from a tar entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

fn meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, LayerError> {
    let h = entry.header();
    let num = |r: io::Result<u64>| r.map_err(tar_read_error);
    let mut m = Meta {
        mode: h.mode().map_err(tar_read_error)? & 0o7777,
        uid: num(h.uid())? as u32,
        gid: num(h.gid())? as u32,
        mtime: num(h.mtime())? as i64,
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions().map_err(tar_read_error)? {
        for ext in exts {
            let ext = ext.map_err(tar_read_error)?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let parse = || std::str::from_utf8(value).ok();
            match key {
                "uid" => m.uid = parse().and_then(|v| v.parse().ok()).unwrap_or(m.uid),
                "gid" => m.gid = parse().and_then(|v| v.parse().ok()).unwrap_or(m.gid),
                "mtime" => {
                    // Seconds, optionally with a fraction.
                    let secs = parse().and_then(|v| v.split('.').next()?.parse().ok());
                    m.mtime = secs.unwrap_or(m.mtime);
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        m.xattrs.push((OsString::from(name), value.to_vec()));
                    }
                }
            }
        }
    }
    Ok(m)
}

fn is_eperm(e: &FsError) -> bool {
    matches!(
        e.source.raw_os_error(),
        Some(libc::EPERM) | Some(libc::EACCES)
    )
}

impl Applier<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw = entry.path_bytes().into_owned();
        let rel = clean(Path::new(OsStr::from_bytes(&raw)));
        let Some(name) = rel.file_name().map(|n| n.as_bytes().to_vec()) else {
            return Ok(()); // the root itself: its metadata belongs to whoever made the root
        };
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE {
            self.stats.whiteouts += 1;
            return self.opaque(&parent);
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            self.stats.whiteouts += 1;
            let target = parent.join(OsStr::from_bytes(target));
            return match self.style {
                WhiteoutStyle::Apply => Ok(self.root.remove_all(&target)?),
                WhiteoutStyle::Overlay => {
                    Ok(self.root.mknod(&target, FileType::CharacterDevice, 0, 0)?)
                }
            };
        }
        let kind = entry.header().entry_type();
        let m = meta(entry)?;
        match kind {
            EntryType::Directory => {
                self.root.create_dir(&rel, m.mode)?;
                self.finish_entry(&rel, &m, false)?;
                self.dir_times.push((rel.clone(), m.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file = self.root.create_file(&rel, m.mode)?;
                let n = copy(entry, &mut file, &mut self.buf).map_err(|e| {
                    LayerError::Io(crate::report::IoError {
                        op: "write",
                        path: self.root.path().join(&rel),
                        source: e,
                    })
                })?;
                self.stats.content_bytes += n;
                drop(file);
                self.finish_entry(&rel, &m, true)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::InvalidEntry {
                        path: rel.clone(),
                        reason: "symlink without a target",
                    })?
                    .into_owned();
                self.root
                    .symlink(Path::new(OsStr::from_bytes(&target)), &rel)?;
                if self.opts.chown {
                    self.root.lchown(&rel, m.uid, m.gid)?;
                }
                self.root.set_times(&rel, m.mtime, 0)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| clean(Path::new(OsStr::from_bytes(&t))))
                    .filter(|t| !t.as_os_str().is_empty())
                    .ok_or_else(|| LayerError::InvalidEntry {
                        path: rel.clone(),
                        reason: "hard link without a target",
                    })?;
                self.root
                    .hard_link(&target, &rel)
                    .map_err(|source| LayerError::HardLink {
                        path: rel.clone(),
                        target,
                        source,
                    })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if kind == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                match self.root.mknod(&rel, ft, m.mode, dev) {
                    Ok(()) => self.finish_entry(&rel, &m, true)?,
                    Err(e)
                        if ft != FileType::Fifo
                            && self.opts.ignore_device_eperm
                            && is_eperm(&e) =>
                    {
                        tracing::debug!(path = %rel.display(), "skipping device node: {e}", e = crate::report::chain(&e));
                        self.stats.skipped_devices += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            EntryType::XGlobalHeader => return Ok(()),
            other => {
                return Err(LayerError::UnsupportedEntry {
                    path: rel,
                    kind: format!("{other:?}"),
                });
            }
        }
        self.stats.entries += 1;
        self.unpacked.insert(rel);
        Ok(())
    }

    /// Owner, mode (after the owner, which clears setuid), xattrs and, for non-directories, times.
    fn finish_entry(&mut self, rel: &Path, m: &Meta, times: bool) -> Result<(), LayerError> {
        if self.opts.chown {
            self.root.lchown(rel, m.uid, m.gid)?;
        }
        self.root.chmod(rel, m.mode)?;
        for (name, value) in &m.xattrs {
            // overlayfs' own bookkeeping (opaque markers, redirects) comes from whiteouts only,
            // never from an archive's xattrs.
            let n = name.as_bytes();
            if crate::xattr::is_overlay_own(n) {
                self.stats.skipped_xattrs += 1;
                continue;
            }
            match self.root.set_xattr(rel, name, value) {
                Ok(()) => {}
                Err(e) if is_eperm(&e) || e.source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    self.stats.skipped_xattrs += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if times {
            self.root.set_times(rel, m.mtime, 0)?;
        }
        Ok(())
    }

    fn opaque(&mut self, dir: &Path) -> Result<(), LayerError> {
        match self.style {
            WhiteoutStyle::Overlay => {
                self.root.mkdir_all(dir, 0o755)?;
                self.opaque_dirs.push(dir.to_path_buf());
                Ok(())
            }
            WhiteoutStyle::Apply => match self.root.lstat(dir) {
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e.into()),
                Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => Ok(()),
                Ok(_) => self.remove_lower(dir),
            },
        }
    }

    /// Removes everything under `dir` that this layer did not unpack, descending into kept
    /// directories.
    fn remove_lower(&self, dir: &Path) -> Result<(), LayerError> {
        let fd = self.root.open_dir(dir)?;
        let mut d = Dir::read_from(&fd).map_err(|e| {
            LayerError::Io(crate::report::IoError {
                op: "list",
                path: self.root.path().join(dir),
                source: e.into(),
            })
        })?;
        let mut children = Vec::new();
        while let Some(entry) = d.read() {
            let entry = entry.map_err(|e| {
                LayerError::Io(crate::report::IoError {
                    op: "list",
                    path: self.root.path().join(dir),
                    source: e.into(),
                })
            })?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                children.push((dir.join(OsStr::from_bytes(n)), entry.file_type()));
            }
        }
        for (child, ft) in children {
            if !self.unpacked.contains(&child) {
                self.root.remove_all(&child)?;
            } else if ft == FileType::Directory {
                self.remove_lower(&child)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ApplyStats, LayerError> {
        let opaque = format!(
            "{}opaque",
            crate::rootless::current().overlay_xattr_prefix()
        );
        for dir in &self.opaque_dirs {
            self.root.set_xattr(dir, OsStr::new(&opaque), b"y")?;
        }
        // Directory times last, deepest first, once nothing will touch them again.
        self.dir_times.sort_by(|a, b| b.0.cmp(&a.0));
        for (dir, mtime) in &self.dir_times {
            match self.root.set_times(dir, *mtime, 0) {
                Err(e) if e.is_not_found() => {} // removed by a later whiteout
                other => other?,
            }
        }
        Ok(self.stats)
    }
}

fn copy(r: &mut impl Read, w: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// The tar reader's errors quote the header bytes they failed on; keep only the kind of failure
/// (an OS error passes unchanged), so an error never shows a file's content.
fn tar_read_error(e: io::Error) -> LayerError {
    if e.raw_os_error().is_some() {
        return LayerError::Read(e);
    }
    let what = match e.kind() {
        io::ErrorKind::UnexpectedEof => "the archive ends early",
        _ => "not a tar archive, or a damaged one",
    };
    LayerError::Read(io::Error::new(e.kind(), what))
}
