//! Choosing what a `COPY`/`ADD` copies, and the digest that stands for it in the cache key.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::archive::{ArchiveKind, detect_archive};
use super::source::{Matched, SourceFs, expand, read_xattrs, resolve};
use super::{CopyError, CopyRequest};
use crate::context::pattern::go_clean;
use crate::context::{Entry, EntryKind, IgnoreMatcher, MatchState, Sha256Digest};
use crate::fsroot::clean;

/// One entry below a directory source.
///
/// The entry is shared with the context's index (a `COPY` of a large context selects every
/// entry of it), and its path relative to the item is the tail of the entry's own path, so a
/// selected entry costs 16 bytes and no allocation of its own.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Its metadata in the source.
    pub entry: Arc<Entry>,
    /// Where in `entry.path` the path relative to the source item starts.
    rel_at: u32,
}

impl Selected {
    /// The entry `entry` below the item at `item` (`entry.path` is `item` joined with the
    /// relative path; an entry whose path does not start with `item` is relative as a whole).
    pub fn below(item: &Path, entry: Arc<Entry>) -> Self {
        let rel_len = entry
            .path
            .strip_prefix(item)
            .map_or(entry.path.as_os_str().len(), |r| r.as_os_str().len());
        let rel_at = u32::try_from(entry.path.as_os_str().len() - rel_len).unwrap_or(0);
        Self { entry, rel_at }
    }

    /// Path relative to the source item (and so to the destination directory).
    pub fn rel(&self) -> &Path {
        let bytes = self.entry.path.as_os_str().as_bytes();
        Path::new(std::ffi::OsStr::from_bytes(
            bytes.get(self.rel_at as usize..).unwrap_or(bytes),
        ))
    }
}

/// One source after expansion: a file, symlink target or directory to copy.
#[derive(Debug, Clone)]
pub struct SelectedItem {
    /// The source as written in the instruction.
    pub source: String,
    /// The name the item gets inside a destination directory (the last component of the path
    /// as matched, before symlinks were followed); `None` for the source root itself.
    pub name: Option<OsString>,
    /// The resolved entry.
    pub entry: Entry,
    /// For a directory: the entries to copy below it, in pre-order with siblings in byte order.
    /// Directories that are only there because something below them is selected are included.
    pub contents: Vec<Selected>,
    /// For `ADD`: the archive format when the item is a local archive to extract.
    pub archive: Option<ArchiveKind>,
}

/// Everything a `COPY`/`ADD` copies, in instruction order.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The items, in the order of the sources (later ones overwrite earlier ones).
    pub items: Vec<SelectedItem>,
}

impl Selection {
    /// Whether the destination must be a directory because there are several items.
    pub fn is_multiple(&self) -> bool {
        self.items.len() > 1
    }
}

/// Resolves the request's sources in `fs` (see the module docs of `crate::copy`).
pub fn select(fs: &dyn SourceFs, req: &CopyRequest) -> Result<Selection, CopyError> {
    let excludes = if req.excludes.is_empty() {
        None
    } else {
        Some(IgnoreMatcher::from_strings(
            Path::new("--exclude"),
            &req.excludes,
        )?)
    };
    let mut items = Vec::new();
    for source in &req.sources {
        if super::is_url(source) {
            return Err(CopyError::UrlNotSupported(source.clone()));
        }
        let (pivot, include) = if req.parents {
            match source.split_once("/./") {
                Some((pivot, pattern)) => (pivot.to_string(), Some(pattern.to_string())),
                None => ("/".to_string(), Some(source.clone())),
            }
        } else {
            (source.clone(), None)
        };
        let include = match include {
            Some(p) => {
                let p = go_clean(&format!("/{p}"));
                let p = p.trim_start_matches('/').to_string();
                Some(IgnoreMatcher::from_strings(Path::new("--parents"), &[p])?)
            }
            None => None,
        };
        let cleaned = clean(&kiln_dockerfile_parser::bytes::to_path(&pivot));
        let matches = expand(fs, source, &cleaned)?;
        let wildcard_base_len = wildcard_base(&cleaned);
        let mut any = false;
        for Matched { matched, entry } in matches {
            if let (Some(ex), Some(base)) = (&excludes, wildcard_base_len) {
                let rel: PathBuf = matched.components().skip(base).collect();
                if ex.matches(&kiln_dockerfile_parser::bytes::from_os_str(rel.as_os_str())) {
                    continue;
                }
            }
            let mut contents = Vec::new();
            let all = match (entry.is_dir(), &include, &excludes) {
                // Nothing to filter: the whole subtree, in the order `collect` would give.
                (true, None, None) => fs.descendants(&entry.path),
                _ => None,
            };
            if let Some(all) = all {
                contents = all;
            } else if entry.is_dir() {
                collect(
                    fs,
                    &entry.path,
                    Path::new(""),
                    include.as_ref(),
                    excludes.as_ref(),
                    &MatchState::default(),
                    &MatchState::default(),
                    &mut contents,
                )?;
                if include.is_some() && contents.is_empty() {
                    continue;
                }
            } else if include.is_some() {
                // A --parents pattern naming the pivot itself selects nothing below it.
                continue;
            }
            let archive = if req.is_add && entry.kind == EntryKind::File {
                detect_archive(fs.root(), &entry.path)?
            } else {
                None
            };
            any = true;
            items.push(SelectedItem {
                source: source.clone(),
                name: matched.file_name().map(|n| n.to_os_string()),
                entry,
                contents,
                archive,
            });
        }
        if !any && (include.is_some() || wildcard_base_len.is_some()) {
            return Err(CopyError::SourceNotFound {
                source_path: source.clone(),
            });
        }
    }
    Ok(Selection { items })
}

/// The number of components before the first wildcard, if the path has one.
fn wildcard_base(cleaned: &Path) -> Option<usize> {
    cleaned.components().position(|c| {
        crate::context::glob::has_wildcards(&kiln_dockerfile_parser::bytes::from_os_str(
            c.as_os_str(),
        ))
    })
}

#[allow(clippy::too_many_arguments)]
fn collect(
    fs: &dyn SourceFs,
    root: &Path,
    rel: &Path,
    include: Option<&IgnoreMatcher>,
    exclude: Option<&IgnoreMatcher>,
    inc_state: &MatchState,
    exc_state: &MatchState,
    out: &mut Vec<Selected>,
) -> Result<(), CopyError> {
    for child in fs.children(&root.join(rel))? {
        let Some(name) = child.path.file_name() else {
            continue;
        };
        let r = rel.join(name);
        let key = kiln_dockerfile_parser::bytes::from_os_str(r.as_os_str());
        let (included, inc_next) = match include {
            Some(m) => m.matches_with_parent(&key, inc_state),
            None => (true, MatchState::default()),
        };
        let (excluded, exc_next) = match exclude {
            Some(m) => m.matches_with_parent(&key, exc_state),
            None => (false, MatchState::default()),
        };
        let selected = included && !excluded;
        let is_dir = child.is_dir();
        if !selected && (!is_dir || (excluded && exclude.is_some_and(|m| !m.has_exclusions()))) {
            continue;
        }
        let mark = out.len();
        out.push(Selected::below(root, Arc::new(child)));
        if is_dir {
            collect(fs, root, &r, include, exclude, &inc_next, &exc_next, out)?;
            if !selected && out.len() == mark + 1 {
                // Nothing below it was selected: the directory is not needed as a parent.
                out.truncate(mark);
            }
        }
    }
    Ok(())
}

/// Appends a length-prefixed field.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The mode an entry gets at the destination.
pub(crate) fn dest_mode(req: &CopyRequest, entry: &Entry) -> u32 {
    match (&req.chmod, entry.kind) {
        (_, EntryKind::Symlink) => entry.mode,
        (Some(c), kind) => c.apply(entry.mode, kind == EntryKind::Dir),
        (None, _) => entry.mode,
    }
}

/// The normalised destination: absolute, relative ones joined to WORKDIR, a trailing `/` kept
/// (`.` and the empty string mean WORKDIR as a directory).
pub fn normalize_dest(dest: &str, workdir: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!(
            "{}/{}",
            if workdir.is_empty() { "/" } else { workdir },
            dest
        )
    };
    let trailing = joined.ends_with('/') || joined.ends_with("/.");
    let mut cleaned = go_clean(&joined);
    if trailing && !cleaned.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}

impl Selection {
    /// The cache-relevant digest of the step, computed without the destination.
    ///
    /// sha256 over a versioned, length-prefixed encoding of: the instruction kind (`COPY` or
    /// `ADD`), the normalised destination (WORKDIR applied, trailing `/` kept), the `--chown`
    /// text, the `--chmod` text, `--parents` and `--link`, the `--exclude` patterns, and for
    /// every item in order its source as written, the name it gets at the destination, and its
    /// entries (the item itself, then its contents in sorted pre-order), each as: path relative
    /// to the item as it will appear under the destination, type, mode after `--chmod`, owner as
    /// it will be written (omitted when `--chown` is given: its text is in the header and the
    /// destination's user database is fixed by the parent step), symlink target, content digest
    /// (BLAKE3) of regular files, the first path of the same inode for hard links within the
    /// item, device number for device nodes, and extended attributes. For a directory item only its type
    /// counts (its own mode and owner do not reach the layer).
    ///
    /// Modification times are not part of it, as in BuildKit's content checksums: touching a
    /// file without changing it keeps the cache, and a cache hit then reuses the layer with the
    /// earlier mtimes.
    pub fn digest(&self, fs: &dyn SourceFs, req: &CopyRequest) -> Result<Sha256Digest, CopyError> {
        let mut h = Sha256::new();
        // v2: content digests are BLAKE3 (v1: sha256).
        field(&mut h, b"kiln.copy.v2");
        field(&mut h, if req.is_add { b"ADD" } else { b"COPY" });
        field(&mut h, normalize_dest(&req.dest, &req.workdir).as_bytes());
        field(&mut h, req.chown.as_deref().unwrap_or("").as_bytes());
        field(
            &mut h,
            req.chmod
                .as_ref()
                .map(|c| c.text())
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update([u8::from(req.parents), u8::from(req.link)]);
        h.update((req.excludes.len() as u64).to_le_bytes());
        for e in &req.excludes {
            field(&mut h, e.as_bytes());
        }
        h.update((self.items.len() as u64).to_le_bytes());
        for item in &self.items {
            field(&mut h, item.source.as_bytes());
            field(
                &mut h,
                item.name.as_ref().map(|n| n.as_bytes()).unwrap_or(b""),
            );
            match item.archive {
                Some(kind) => field(&mut h, kind.name().as_bytes()),
                None => field(&mut h, b""),
            }
            let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
            if item.entry.is_dir() {
                h.update([EntryKind::Dir.tag()]);
            } else {
                encode(&mut h, fs, req, Path::new(""), &item.entry, &mut links)?;
            }
            h.update((item.contents.len() as u64).to_le_bytes());
            for sel in &item.contents {
                encode(&mut h, fs, req, sel.rel(), &sel.entry, &mut links)?;
            }
        }
        Ok(Sha256Digest(h.finalize().into()))
    }

    /// Every selected entry's source path (relative to the source root) with a digest of what
    /// [`Selection::digest`] encodes for it, handed to `each` one at a time in selection order
    /// (a caller that keeps something else per entry never holds the whole list). Cache-miss
    /// explanations compare two builds' lists to name the files that changed; the cache key
    /// itself only uses [`Selection::digest`].
    pub fn each_entry_digest(
        &self,
        fs: &dyn SourceFs,
        req: &CopyRequest,
        mut each: impl FnMut(&Path, Sha256Digest),
    ) -> Result<(), CopyError> {
        for item in &self.items {
            let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
            let entries = std::iter::once((Path::new(""), &item.entry))
                .filter(|_| !item.entry.is_dir())
                .chain(item.contents.iter().map(|s| (s.rel(), &*s.entry)));
            for (rel, entry) in entries {
                let mut h = Sha256::new();
                encode(&mut h, fs, req, rel, entry, &mut links)?;
                each(&entry.path, Sha256Digest(h.finalize().into()));
            }
        }
        Ok(())
    }
}

fn encode(
    h: &mut Sha256,
    fs: &dyn SourceFs,
    req: &CopyRequest,
    rel: &Path,
    entry: &Entry,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), CopyError> {
    field(h, rel.as_os_str().as_bytes());
    h.update([entry.kind.tag()]);
    h.update(dest_mode(req, entry).to_le_bytes());
    if req.chown.is_none() {
        let (uid, gid) = fs.default_owner().unwrap_or((entry.uid, entry.gid));
        h.update(uid.to_le_bytes());
        h.update(gid.to_le_bytes());
    }
    field(
        h,
        entry
            .link_target
            .as_ref()
            .map(|t| t.as_os_str().as_bytes())
            .unwrap_or(b""),
    );
    let mut hardlink = PathBuf::new();
    if entry.kind == EntryKind::File {
        if entry.nlink > 1 {
            match links.get(&(entry.dev, entry.ino)) {
                Some(first) => hardlink = first.clone(),
                None => {
                    links.insert((entry.dev, entry.ino), rel.to_path_buf());
                }
            }
        }
        h.update(fs.digest(entry)?.0);
    }
    field(h, hardlink.as_os_str().as_bytes());
    if matches!(entry.kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
        h.update(entry.rdev.to_le_bytes());
    }
    let read;
    let xattrs = match &entry.xattrs {
        Some(x) => x,
        None => {
            read = read_xattrs(fs.root(), &entry.path)?;
            &read
        }
    };
    h.update((xattrs.len() as u64).to_le_bytes());
    for (k, v) in xattrs {
        field(h, k.as_bytes());
        field(h, v);
    }
    Ok(())
}

/// Resolves the source root entry of `fs` (used for `COPY . dest`).
#[allow(dead_code)] // no caller today; the walk starts at the selection's entries
pub fn source_root(fs: &dyn SourceFs) -> Result<Option<Entry>, CopyError> {
    resolve(fs, Path::new(""), true)
}
