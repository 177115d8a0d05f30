//! Writing a [`Selection`] into the destination root filesystem.
//!
//! Every path is resolved through the destination [`Root`], so a destination such as `/app`
//! that is a symlink to `/` or `../../..` in the image stays inside the image. Entries are created
//! relative to the real (symlink-resolved) destination directory, and the paths returned are
//! those real paths, relative to the root, which is what the layer must contain.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use super::archive::decompress;
use super::select::{Selection, normalize_dest};
use super::source::{SourceFs, open_source_file};
use super::{ArchiveExtractor, CopyError, CopyRequest, real_rel};
use crate::fsroot::{Root, clean};
use crate::userdb::UserDb;

#[path = "apply_entry.rs"]
mod entry;
#[path = "apply_parallel.rs"]
mod parallel;

/// How [`apply`] writes.
#[derive(Default, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// Extracts `ADD` archives; without one an archive source is an error.
    pub extractor: Option<&'a dyn ArchiveExtractor>,
    /// Do not change ownership on disk (e.g. rootless without a user namespace); the owner each
    /// path should have is still what [`CopyOutput::owners`] reports.
    pub skip_chown: bool,
    /// Modification time for directories the copy creates as missing parents (default: now, as
    /// BuildKit).
    pub created_dir_mtime: Option<(i64, u32)>,
}

impl ApplyOptions<'_> {
    /// No archive extractor, ownership changed on disk, and missing parents dated
    /// `source_date_epoch` (now when it is unset): how the worker's copies write.
    pub fn with_epoch(source_date_epoch: Option<i64>) -> Self {
        Self {
            created_dir_mtime: source_date_epoch.map(|e| (e, 0)),
            ..Self::default()
        }
    }
}

/// What [`apply`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOutput {
    /// Every path created or changed, relative to the destination root, sorted, without
    /// duplicates; parents come before their children.
    pub written: Vec<PathBuf>,
    /// The owner each written path has (or should have, with `skip_chown`).
    pub owners: HashMap<PathBuf, (u32, u32)>,
}

/// A regular file [`apply_deferring`] created at its size without writing its bytes: its
/// content is the source file's, still open here.
#[derive(Debug)]
pub struct Deferred {
    /// The file's path in the destination, relative to its root.
    pub path: PathBuf,
    /// The source file, opened when the copy ran.
    pub source: std::fs::File,
    /// The placeholder, kept open so that its inode stays its own while the caller needs it.
    pub placeholder: std::fs::File,
    /// The size the file was created with.
    pub size: u64,
}

struct Writer<'a> {
    fs: &'a dyn SourceFs,
    /// Regular files of at least this size are created without their bytes (see
    /// [`apply_deferring`]).
    defer_min: Option<u64>,
    deferred: Vec<Deferred>,
    /// Whether `written` and `owners` are kept.
    record: bool,
    dest: &'a Root,
    req: &'a CopyRequest,
    opts: &'a ApplyOptions<'a>,
    chown: Option<(u32, u32)>,
    /// In the order written; sorted and deduplicated at the end (pre-order with siblings in byte
    /// order is already path order, so that is usually one pass).
    written: Vec<PathBuf>,
    owners: HashMap<PathBuf, (u32, u32)>,
    /// Directories the current item created (they were absent, so nothing below them existed
    /// before this item): entries below them need no existence check.
    fresh: HashSet<PathBuf>,
    /// Descriptors of the fresh directories on the path to the entry being copied (pre-order
    /// keeps this a stack): a file whose parent is on top is created right in it, with no
    /// resolution from the root.
    fresh_fds: Vec<(PathBuf, OwnedFd)>,
    /// The source directory of the last file read, for the same reason.
    src_dir: Option<(PathBuf, OwnedFd)>,
}

/// Copies `sel` (selected from `fs`) into `dest` as `req` says.
pub fn apply(
    fs: &dyn SourceFs,
    sel: &Selection,
    req: &CopyRequest,
    dest: &Root,
    opts: &ApplyOptions<'_>,
) -> Result<CopyOutput, CopyError> {
    run(fs, sel, req, dest, opts, None, true).map(|(out, _)| out)
}

/// [`apply`], except that regular files of at least `defer_min` bytes with one link, no
/// setuid or setgid bit and no `security.*` xattr are created at their size (sparse) with all
/// their metadata but without their bytes, and returned with their open sources: the caller
/// writes their contents (a layer from the sources, the files later from the layer). Writing a
/// file later keeps what these files have (a write clears setuid, setgid and
/// `security.capability`; the caller restores the times). No [`CopyOutput`] is kept (~15 MB
/// at 100,000 files): such a caller reads the destination tree itself.
pub fn apply_deferring(
    fs: &dyn SourceFs,
    sel: &Selection,
    req: &CopyRequest,
    dest: &Root,
    opts: &ApplyOptions<'_>,
    defer_min: Option<u64>,
) -> Result<Vec<Deferred>, CopyError> {
    run(fs, sel, req, dest, opts, defer_min, false).map(|(_, deferred)| deferred)
}

impl<'a> Writer<'a> {
    fn new(
        fs: &'a dyn SourceFs,
        dest: &'a Root,
        req: &'a CopyRequest,
        opts: &'a ApplyOptions<'a>,
        chown: Option<(u32, u32)>,
        defer_min: Option<u64>,
        record: bool,
    ) -> Self {
        Writer {
            fs,
            defer_min,
            deferred: Vec::new(),
            record,
            dest,
            req,
            opts,
            chown,
            written: Vec::new(),
            owners: HashMap::new(),
            fresh: HashSet::new(),
            fresh_fds: Vec::new(),
            src_dir: None,
        }
    }

    /// A writer with this one's settings and fresh directories, nothing written yet, for one
    /// copying thread of about `files` files.
    pub(super) fn sibling(&self, files: usize) -> Self {
        let mut w = Writer::new(
            self.fs,
            self.dest,
            self.req,
            self.opts,
            self.chown,
            self.defer_min,
            self.record,
        );
        if self.record {
            w.written.reserve(files);
            w.owners.reserve(files);
        }
        w.fresh = self.fresh.clone();
        w
    }
}

/// A directory's contents from this many entries on are copied with several threads.
const PARALLEL_MIN: usize = 512;

fn run(
    fs: &dyn SourceFs,
    sel: &Selection,
    req: &CopyRequest,
    dest: &Root,
    opts: &ApplyOptions<'_>,
    defer_min: Option<u64>,
    record: bool,
) -> Result<(CopyOutput, Vec<Deferred>), CopyError> {
    let chown = match &req.chown {
        Some(spec) => {
            let db = if UserDb::chown_needs_lookup(spec) {
                UserDb::load(dest)?
            } else {
                UserDb::default()
            };
            Some(db.resolve_chown(spec)?)
        }
        None => None,
    };
    let mut w = Writer::new(fs, dest, req, opts, chown, defer_min, record);
    let norm = normalize_dest(&req.dest, &req.workdir);
    let dest_rel = clean(&kiln_dockerfile_parser::bytes::to_path(&norm));
    let as_dir = norm.ends_with('/') || sel.is_multiple();
    let ensure = if as_dir {
        dest_rel.clone()
    } else {
        dest_rel.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    w.mkdir_all(&ensure)?;
    for item in &sel.items {
        if let Some(kind) = item.archive {
            w.mkdir_all(&dest_rel)?;
            let dir = real_rel(dest, &dest_rel)?;
            let extractor = opts.extractor.ok_or_else(|| CopyError::Extract {
                path: item.entry.path.clone(),
                message: "no archive extractor is configured".to_string(),
            })?;
            let file = open_source_file(fs.root(), &item.entry.path)?;
            let mut tar = decompress(kind, file).map_err(|e| CopyError::Extract {
                path: item.entry.path.clone(),
                message: crate::report::chain(&e),
            })?;
            let paths = extractor
                .extract(dest, &dir, &mut tar as &mut dyn Read, chown)
                .map_err(|message| CopyError::Extract {
                    path: item.entry.path.clone(),
                    message,
                })?;
            if w.record {
                w.written.extend(paths);
            }
            continue;
        }
        if item.entry.is_dir() {
            w.mkdir_all(&dest_rel)?;
            let top = real_rel(dest, &dest_rel)?;
            // The directory itself keeps its mode and owner; BuildKit restores its mtime from
            // the source directory.
            w.set_times(&top, item.entry.mtime)?;
            w.note_written(&top);
            w.fresh.clear();
            w.fresh_fds.clear();
            if item.contents.len() >= PARALLEL_MIN {
                w.copy_contents_parallel(&item.contents, &top)?;
                continue;
            }
            let mut links = HashMap::new();
            for s in &item.contents {
                w.copy_entry(&s.entry, &top.join(s.rel()), true, &mut links)?;
            }
            continue;
        }
        let into_dir = match dest.stat(&dest_rel) {
            Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e.into()),
        };
        let target = if into_dir {
            let dir = real_rel(dest, &dest_rel)?;
            match &item.name {
                Some(name) => dir.join(name),
                None => dir,
            }
        } else {
            let parent = dest_rel.parent().map(Path::to_path_buf).unwrap_or_default();
            let name = dest_rel.file_name().unwrap_or_else(|| OsStr::new(""));
            real_rel(dest, &parent)?.join(name)
        };
        let mut links = HashMap::new();
        w.fresh.clear();
        w.fresh_fds.clear();
        w.copy_entry(&item.entry, &target, false, &mut links)?;
    }
    let mut written = w.written;
    if !written.is_sorted() {
        written.sort();
    }
    written.dedup();
    let out = CopyOutput {
        written,
        owners: w.owners,
    };
    Ok((out, w.deferred))
}
