//! A COPY of a directory from the build context (or a named directory context) that runs again
//! after a few of its files changed starts from its previous result instead of from nothing.
//!
//! After a COPY ran, the worker remembers what it copied (`copy-results/<key>` in the store's
//! state directory): the snapshot and layer it made and, for every copied entry, a digest of
//! everything that reaches the layer (what the cache key covers, plus the modification time,
//! which the key leaves out). The memo is keyed by everything else the result depends on: the
//! parent state, the source directory, the instruction and `SOURCE_DATE_EPOCH`. When the same
//! COPY misses the cache later, the entries are compared with the memo and, instead of writing
//! every file again:
//!
//! - a writable snapshot is prepared on top of the previous result (for overlayfs one more
//!   lower layer, no file copied), the removed entries are deleted and only the changed and new
//!   ones are copied, with the ordinary copy code;
//! - the layer is the previous layer patched ([`crate::layer::write_patched`]): unchanged entries
//!   are copied from the old blob (trusted as a cache hit trusts it: by the stamp of its last
//!   verification, else hashed again), changed ones written from the tree;
//! - the snapshot is committed under the new chain ID with the previous result as its parent.
//!
//! The result is what a COPY from nothing gives: every entry the layer records is in the state
//! the copy code leaves it in, and the layer writer's bytes depend only on those states. Two
//! things a copy from nothing would do differently are refused up front: deleting a path the
//! parent state has (the new tree must show the parent's entry, not nothing), and a directory
//! that would need no entry of its own because it became identical to the parent's. Directories
//! the copy creates take the time they were written, as before; with `SOURCE_DATE_EPOCH` those
//! times are clamped to it, so the memo is only used when it is older than the copy it records.
//! A stack deeper than [`MAX_EXTRA_DEPTH`] snapshots over the layers is started afresh, and so is
//! anything the patcher cannot do exactly (hard links, kind changes, directories with xattrs).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::local_dir::LocalDir;
use super::{LocalWorkerConfig, WorkerError, chain_ids};
use crate::cache::LayerRef;
use crate::context::EntryKind;
use crate::copy::{ApplyOptions, CopyRequest, Selected, SelectedItem, Selection};
use crate::fsroot::{Root, clean};
use crate::image::now_secs;
use crate::solver::FsState;

mod memo;
use memo::{MAGIC, Memo, MemoEntry, load, store};

/// How many snapshots a chain may have above its layer count before a copy starts afresh
/// instead of stacking on its previous result.
pub(crate) const MAX_EXTRA_DEPTH: usize = 16;

/// A copied entry that has xattrs (or whose xattrs were not read).
const FLAG_XATTRS: u8 = 1;

/// What the memo records of a copied entry besides its path and kind (which the selection
/// holds): 17 bytes, where a [`MemoEntry`] with its own copy of the path is ~90.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    flags: u8,
    digest: [u8; 16],
}

/// A COPY that can use, and leave, a memo: one directory from a local directory, no archives,
/// no hard links.
pub(super) struct Candidate {
    memo_path: PathBuf,
    req: CopyRequest,
    sel: Selection,
    /// One per entry of the memo: the directory item itself, then its contents in order.
    marks: Vec<Mark>,
}

/// A time before any the kernel gives a file from now on (its clock is coarse).
pub(super) fn start_time() -> i64 {
    now_secs() - 1
}

impl Candidate {
    /// The copy's selection, for the copy itself when it runs from nothing (it shares the
    /// index's entries: 16 bytes per entry).
    pub(super) fn selection(&self) -> &Selection {
        &self.sel
    }

    /// The memo of `req` copied from `dir` onto `parent`; `None` when the copy is not one this
    /// module handles (or its sources cannot be read: the ordinary copy reports that).
    pub(super) fn new(
        cfg: &LocalWorkerConfig,
        parent: &FsState,
        dir: &LocalDir,
        req: CopyRequest,
    ) -> Option<Candidate> {
        let fs = dir.source();
        let sel = crate::copy::select(&fs, &req).ok()?;
        let [item] = sel.items.as_slice() else {
            return None;
        };
        if !item.entry.is_dir() || item.archive.is_some() {
            return None;
        }
        if item
            .contents
            .iter()
            .any(|s| s.entry.kind == EntryKind::File && s.entry.nlink > 1)
        {
            return None;
        }
        let mut marks = Vec::with_capacity(item.contents.len() + 1);
        marks.push(mark(&item.entry, &[0u8; 32]));
        // One digest per entry of the contents, in order (the directory item has none).
        let mut contents = item.contents.iter();
        let mut extra = false;
        sel.each_entry_digest(&fs, &req, |_, d| match contents.next() {
            Some(s) => marks.push(mark(&s.entry, &d.0)),
            None => extra = true,
        })
        .ok()?;
        if extra || contents.next().is_some() {
            return None;
        }
        let mut h = Sha256::new();
        let parent_key = chain_ids(&parent.layers).pop().unwrap_or_default();
        for part in [
            MAGIC,
            parent_key.as_bytes(),
            dir.ctx.root().path().as_os_str().as_bytes(),
            format!("{req:?}").as_bytes(),
            format!("{:?}", cfg.source_date_epoch).as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let memo_path = cfg
            .store
            .state_dir()
            .join("copy-results")
            .join(hex::encode(h.finalize()));
        Some(Candidate {
            memo_path,
            req,
            sel,
            marks,
        })
    }

    /// Runs the copy on top of its previous result; `Ok(None)` when there is no usable one.
    pub(super) fn try_reuse(
        &self,
        cfg: &LocalWorkerConfig,
        parent: &FsState,
        dir: &LocalDir,
    ) -> Result<Option<LayerRef>, WorkerError> {
        let Some(memo) = load(&self.memo_path) else {
            return Ok(None);
        };
        if !cfg.snapshots.exists(&memo.result) {
            let _ = std::fs::remove_file(&self.memo_path);
            return Ok(None);
        }
        if cfg.source_date_epoch.is_some_and(|e| e > memo.started) {
            return Ok(None);
        }
        if depth(cfg, &memo.result) > parent.layers.len() + 1 + MAX_EXTRA_DEPTH {
            return Ok(None);
        }
        // The copy snapshotter leaves files equal to the parent's out of a layer, so a changed
        // file must not exist below there; overlayfs (kernel or fuse) records every file the
        // copy wrote.
        let strict = cfg.snapshots.name() == "copy";
        let Some(delta) = self.delta(&memo, strict) else {
            return Ok(None);
        };
        if delta.copy.is_empty() && delta.removed.is_empty() {
            return Ok(None);
        }
        super::deferred::complete_chain(&cfg.store, cfg.snapshots.as_ref(), &memo.result)?;
        let active = cfg.snapshots.prepare(Some(&memo.result))?;
        let dest = Root::open(active.root())?;
        let dest_rel = clean(&kiln_dockerfile_parser::bytes::to_path(
            &crate::copy::select::normalize_dest(&self.req.dest, &self.req.workdir),
        ));
        let top = crate::copy::real_rel(&dest, &dest_rel)?;
        let mut below = ParentView::new(cfg, parent);
        for rel in &delta.must_be_new {
            if below.lacks(&top.join(rel))? != Some(true) {
                return Ok(None);
            }
        }
        let mut gone: Option<&Path> = None;
        for rel in &delta.removed {
            if gone.is_some_and(|g| rel.starts_with(g)) {
                continue;
            }
            dest.remove_all(&top.join(rel))?;
            gone = Some(rel);
        }
        let [item] = self.sel.items.as_slice() else {
            return Ok(None);
        };
        let sub = Selection {
            items: vec![SelectedItem {
                source: item.source.clone(),
                name: item.name.clone(),
                entry: item.entry.clone(),
                contents: delta.copy,
                archive: None,
            }],
        };
        let fs = dir.source();
        let opts = ApplyOptions::with_epoch(cfg.source_date_epoch);
        crate::copy::apply(&fs, &sub, &self.req, &dest, &opts)?;
        if !self.set_dir_times(&dest, &top, &delta.touched, &mut below)? {
            return Ok(None);
        }
        drop(dest);
        let changes = cfg.snapshots.changes(&active)?;
        let root = Root::open(active.changes_root())?;
        let layer_opts = crate::layer::LayerOptions {
            source_date_epoch: cfg.source_date_epoch,
        };
        // The old blob as a cache hit would take it: checked against the stamp of its last
        // verification, hashed again only when that does not match.
        let checked = super::verify::layer_is_intact(&cfg.store, &memo.layer);
        if !checked {
            return Ok(None);
        }
        let (info, _) = crate::layer::write_patched_to_store(
            &cfg.store,
            &root,
            &memo.layer.diff_id,
            checked,
            &changes,
            &layer_opts,
        )?;
        drop(root);
        super::verify::stamp(&cfg.store, &info.digest);
        let layer = LayerRef {
            diff_id: info.digest,
            size: info.size,
            packed: None,
        };
        let mut layers = parent.layers.clone();
        layers.push(layer.clone());
        let Some(key) = chain_ids(&layers).pop() else {
            return Ok(None);
        };
        cfg.snapshots.commit(active, &key)?;
        self.save(&key, &layer, memo.started);
        Ok(Some(layer))
    }

    /// Remembers the result of this copy.
    pub(super) fn remember(self, parent: &FsState, layer: &LayerRef, started: i64) {
        let mut layers = parent.layers.clone();
        layers.push(layer.clone());
        if let Some(key) = chain_ids(&layers).pop() {
            self.save(&key, layer, started);
        }
    }

    /// This copy's entries as the memo records them: path below the copied directory, kind
    /// tag and mark, the directory item first.
    fn entries(&self) -> impl Iterator<Item = (&[u8], u8, Mark)> + '_ {
        let items = self.sel.items.iter().take(1);
        let top = items
            .clone()
            .map(|i| (&b""[..], i.entry.kind.tag()))
            .chain(items.flat_map(|i| {
                i.contents
                    .iter()
                    .map(|s| (s.rel().as_os_str().as_bytes(), s.entry.kind.tag()))
            }));
        top.zip(self.marks.iter())
            .map(|((rel, kind), m)| (rel, kind, *m))
    }

    fn save(&self, result: &str, layer: &LayerRef, started: i64) {
        let entries = self
            .entries()
            .map(|(rel, kind, m)| (rel, kind, m.flags, m.digest));
        if let Err(e) = store(
            &self.memo_path,
            result,
            layer,
            started,
            self.marks.len(),
            entries,
        ) {
            tracing::debug!(path = %self.memo_path.display(), "cannot remember a copy: {e}", e = crate::report::chain(&e));
        }
    }

    /// Gives the directories whose time the changes above may have moved the time a copy from
    /// nothing gives them: the moment of the copy when something was created in them (a file
    /// or symlink always is; a directory when the parent state lacks it), else their source's
    /// time. `false` when that cannot be told.
    fn set_dir_times(
        &self,
        dest: &Root,
        top: &Path,
        touched: &std::collections::BTreeSet<PathBuf>,
        below: &mut ParentView<'_>,
    ) -> Result<bool, WorkerError> {
        let [item] = self.sel.items.as_slice() else {
            return Ok(false);
        };
        // For each touched directory: whether a copy from nothing creates something in it, if
        // known from the selection alone, and its child directories.
        let mut kids: HashMap<&Path, (bool, Vec<&Path>)> = touched
            .iter()
            .map(|d| (d.as_path(), (false, Vec::new())))
            .collect();
        for s in &item.contents {
            let parent = s.rel().parent().unwrap_or(Path::new(""));
            if let Some(k) = kids.get_mut(parent) {
                if s.entry.is_dir() {
                    k.1.push(s.rel());
                } else {
                    k.0 = true;
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let src_time: HashMap<&Path, (i64, u32)> = item
            .contents
            .iter()
            .filter(|s| s.entry.is_dir() && kids.contains_key(s.rel()))
            .map(|s| (s.rel(), s.entry.mtime))
            .chain(std::iter::once((Path::new(""), item.entry.mtime)))
            .collect();
        for dir in touched {
            let Some((files, dirs)) = kids.get(dir.as_path()) else {
                continue;
            };
            let mut created = *files;
            for d in dirs {
                if created {
                    break;
                }
                match below.lacks(&top.join(d))? {
                    Some(lacks) => created = lacks,
                    None => return Ok(false),
                }
            }
            let (secs, nanos) = if created {
                (now.as_secs() as i64, now.subsec_nanos())
            } else {
                match src_time.get(dir.as_path()) {
                    Some(t) => *t,
                    // Removed with everything below it.
                    None => continue,
                }
            };
            dest.set_times(&top.join(dir), secs, i64::from(nanos))?;
        }
        Ok(true)
    }

    /// What differs from the memo, or `None` when it is more than this module patches.
    fn delta(&self, memo: &Memo, strict: bool) -> Option<Delta> {
        let [item] = self.sel.items.as_slice() else {
            return None;
        };
        let old: HashMap<&[u8], &MemoEntry> =
            memo.entries.iter().map(|e| (e.rel.as_slice(), e)).collect();
        let new_paths: std::collections::HashSet<&[u8]> =
            self.entries().map(|(rel, _, _)| rel).collect();
        let mut delta = Delta::default();
        delta.touched.insert(PathBuf::new());
        let simple = |k: u8| {
            [EntryKind::File, EntryKind::Dir, EntryKind::Symlink]
                .iter()
                .any(|x| x.tag() == k)
        };
        // The item itself (the first entry) only lends the top directory its time, which the
        // copy sets again in any case.
        let contents = self.entries().skip(1).zip(&item.contents);
        let mut iter = contents.peekable();
        while let Some(((rel, kind, e), sel)) = iter.next() {
            let was = old.get(rel);
            if was.is_some_and(|w| w.digest == e.digest) {
                continue;
            }
            if !simple(kind) {
                return None;
            }
            if let Some(w) = was {
                let dir = EntryKind::Dir.tag();
                if w.kind != kind || (kind == dir && (w.flags | e.flags) & FLAG_XATTRS != 0) {
                    return None;
                }
            }
            if strict && was.is_some() {
                delta.must_be_new.push(sel.rel().to_path_buf());
            } else if kind == EntryKind::Dir.tag() {
                let has_child = iter.peek().is_some_and(|((next, _, _), _)| {
                    Path::new(std::ffi::OsStr::from_bytes(next))
                        .starts_with(std::ffi::OsStr::from_bytes(rel))
                });
                if !has_child {
                    delta.must_be_new.push(sel.rel().to_path_buf());
                }
            }
            if kind == EntryKind::Dir.tag() {
                delta.touched.insert(sel.rel().to_path_buf());
            }
            delta
                .touched
                .insert(sel.rel().parent().unwrap_or(Path::new("")).to_path_buf());
            delta.copy.push(Selected::clone(sel));
        }
        for w in memo.entries.iter().skip(1) {
            if !new_paths.contains(w.rel.as_slice()) {
                let rel = PathBuf::from(std::ffi::OsStr::from_bytes(&w.rel));
                delta.must_be_new.push(rel.clone());
                delta
                    .touched
                    .insert(rel.parent().unwrap_or(Path::new("")).to_path_buf());
                delta.removed.push(rel);
            }
        }
        Some(delta)
    }
}

#[derive(Default)]
struct Delta {
    /// Entries to copy (changed or new), in the selection's order.
    copy: Vec<Selected>,
    /// Entries to delete, in path order (a directory before what was below it).
    removed: Vec<PathBuf>,
    /// Paths below the destination that the parent state must not have.
    must_be_new: Vec<PathBuf>,
    /// Directories (below the destination, `""` for itself) whose time the copy may move.
    touched: std::collections::BTreeSet<PathBuf>,
}

fn mark(entry: &crate::context::Entry, digest: &[u8; 32]) -> Mark {
    let mut h = Sha256::new();
    h.update(digest);
    h.update(entry.mtime.0.to_le_bytes());
    h.update(entry.mtime.1.to_le_bytes());
    let full = h.finalize();
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    let has_xattrs = entry.xattrs.as_ref().is_none_or(|x| !x.is_empty());
    Mark {
        flags: if has_xattrs { FLAG_XATTRS } else { 0 },
        digest: d,
    }
}

/// How many snapshots the chain of `key` has.
fn depth(cfg: &LocalWorkerConfig, key: &str) -> usize {
    let mut n = 1;
    let mut k = key.to_owned();
    while let Ok(Some(p)) = cfg.snapshots.parent(&k) {
        n += 1;
        k = p;
        if n > 4096 {
            break;
        }
    }
    n
}

/// The parent state, viewed read-only when first asked about (a mount for a deep chain).
struct ParentView<'a> {
    cfg: &'a LocalWorkerConfig,
    parent: &'a FsState,
    view: Option<Option<(crate::snapshot::View, Root)>>,
}

impl<'a> ParentView<'a> {
    fn new(cfg: &'a LocalWorkerConfig, parent: &'a FsState) -> Self {
        Self {
            cfg,
            parent,
            view: None,
        }
    }

    /// Whether the parent state lacks `rel`: `None` when that cannot be told.
    fn lacks(&mut self, rel: &Path) -> Result<Option<bool>, WorkerError> {
        if self.view.is_none() {
            let v = match super::view(self.cfg, self.parent)? {
                Some(v) => {
                    let root = Root::open(v.path())?;
                    Some((v, root))
                }
                None => None,
            };
            self.view = Some(v);
        }
        let Some(Some((_, root))) = &self.view else {
            return Ok(Some(true));
        };
        Ok(match root.lstat(rel) {
            Ok(_) => Some(false),
            Err(e) if e.is_not_found() => Some(true),
            Err(_) => None,
        })
    }
}
