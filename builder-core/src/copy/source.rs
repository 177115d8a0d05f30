//! Where `COPY`/`ADD` read from, and how source paths resolve there.
//!
//! A [`SourceFs`] is either the build context as walked (so `.dockerignore` applies: an excluded
//! entry does not exist for `COPY`, exactly as in BuildKit, which never transfers it) or the root
//! filesystem of a stage or image (`--from`). Paths are resolved component by component with
//! symlinks followed *inside* the source root, like `openat2(RESOLVE_IN_ROOT)` does: an absolute
//! target restarts at the source root and `..` never climbs above it. Sources named explicitly
//! (and wildcard matches) are followed, as BuildKit's `FollowSymlinks` does; entries found inside
//! a copied directory are never followed.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, Mode, OFlags};

use super::CopyError;
use crate::context::glob;
use crate::context::{ContentDigest, ContextIndex, Entry, EntryKind, FileHasher, hash_file};
use crate::fsroot::Root;

/// A tree that `COPY` reads from.
pub trait SourceFs: Sync {
    /// The root that file contents and xattrs are read from.
    fn root(&self) -> &Root;
    /// The entry at `path` (relative, clean, no symlink among its parents), without following it.
    fn lstat(&self, path: &Path) -> Result<Option<Entry>, CopyError>;
    /// The children of the directory `dir`, sorted by name.
    fn children(&self, dir: &Path) -> Result<Vec<Entry>, CopyError>;
    /// Every entry strictly below the directory `dir` in walk order (pre-order, siblings by
    /// name) with its path relative to `dir`, when the source can list them without a walk of
    /// its own; `None` makes the caller walk with [`SourceFs::children`].
    fn descendants(&self, dir: &Path) -> Option<Vec<super::Selected>> {
        let _ = dir;
        None
    }
    /// The content digest of the regular file `entry`.
    fn digest(&self, entry: &Entry) -> Result<ContentDigest, CopyError>;
    /// The owner every copied entry gets when there is no `--chown`: `Some((0, 0))` for the
    /// build context (BuildKit resets ownership when it loads the context), `None` to keep the
    /// source's owner (stages and images).
    fn default_owner(&self) -> Option<(u32, u32)>;
}

/// The build context as walked with `.dockerignore` applied.
pub struct ContextSource<'a> {
    root: &'a Root,
    index: &'a ContextIndex,
    hasher: &'a dyn FileHasher,
}

impl<'a> ContextSource<'a> {
    /// A source over a walked context; `hasher` gives (and may cache) file digests.
    pub fn new(root: &'a Root, index: &'a ContextIndex, hasher: &'a dyn FileHasher) -> Self {
        Self {
            root,
            index,
            hasher,
        }
    }
}

impl SourceFs for ContextSource<'_> {
    fn root(&self) -> &Root {
        self.root
    }
    fn lstat(&self, path: &Path) -> Result<Option<Entry>, CopyError> {
        Ok(self.index.get(path).cloned())
    }
    fn children(&self, dir: &Path) -> Result<Vec<Entry>, CopyError> {
        Ok(self.index.children(dir).cloned().collect())
    }
    fn descendants(&self, dir: &Path) -> Option<Vec<super::Selected>> {
        let below = self.index.descendants_shared(dir);
        let mut out = Vec::with_capacity(below.len());
        out.extend(below.map(|e| super::Selected::below(dir, e.clone())));
        Some(out)
    }
    fn digest(&self, entry: &Entry) -> Result<ContentDigest, CopyError> {
        Ok(self.hasher.digest(self.root, entry)?)
    }
    fn default_owner(&self) -> Option<(u32, u32)> {
        Some((0, 0))
    }
}

/// The root filesystem of a stage or image, read directly.
pub struct RootfsSource<'a> {
    root: &'a Root,
}

impl<'a> RootfsSource<'a> {
    /// A source over a root filesystem.
    pub fn new(root: &'a Root) -> Self {
        Self { root }
    }
}

fn io_err(root: &Root, op: &'static str, path: &Path, source: std::io::Error) -> CopyError {
    CopyError::Io {
        op,
        root: root.path().to_path_buf(),
        path: path.to_path_buf(),
        source,
    }
}

impl SourceFs for RootfsSource<'_> {
    fn root(&self) -> &Root {
        self.root
    }
    fn lstat(&self, path: &Path) -> Result<Option<Entry>, CopyError> {
        let st = match self.root.lstat(path) {
            Ok(st) => st,
            Err(e) if e.is_not_found() || e.source.raw_os_error() == Some(libc::ENOTDIR) => {
                return Ok(None);
            }
            Err(e) => return Err(io_err(self.root, "stat", path, e.source)),
        };
        let target = if EntryKind::from_mode(st.st_mode) == EntryKind::Symlink {
            Some(
                self.root
                    .read_link(path)
                    .map_err(|e| io_err(self.root, "read link", path, e.source))?,
            )
        } else {
            None
        };
        Ok(Some(Entry::from_stat(path.to_path_buf(), &st, target)))
    }
    fn children(&self, dir: &Path) -> Result<Vec<Entry>, CopyError> {
        let fd = self
            .root
            .open_dir(dir)
            .map_err(|e| io_err(self.root, "open directory", dir, e.source))?;
        let read = |fd| -> std::io::Result<Vec<Vec<u8>>> {
            let mut d = Dir::read_from(fd)?;
            let mut names = Vec::new();
            while let Some(e) = d.read() {
                let n = e?.file_name().to_bytes().to_vec();
                if n != b"." && n != b".." {
                    names.push(n);
                }
            }
            names.sort();
            Ok(names)
        };
        let names = read(&fd).map_err(|e| io_err(self.root, "read directory", dir, e))?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let name = OsStr::from_bytes(&n);
            let path = dir.join(name);
            let st = match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(io_err(self.root, "stat", &path, e.into())),
            };
            let target = if EntryKind::from_mode(st.st_mode) == EntryKind::Symlink {
                let t = rustix::fs::readlinkat(&fd, name, Vec::new())
                    .map_err(|e| io_err(self.root, "read link", &path, e.into()))?;
                Some(PathBuf::from(OsStr::from_bytes(t.as_bytes())))
            } else {
                None
            };
            out.push(Entry::from_stat(path, &st, target));
        }
        Ok(out)
    }
    fn digest(&self, entry: &Entry) -> Result<ContentDigest, CopyError> {
        Ok(hash_file(self.root, &entry.path)?)
    }
    fn default_owner(&self) -> Option<(u32, u32)> {
        None
    }
}

const MAX_LINKS: usize = 40;

/// Resolves `path` inside the source, following symlinks (the final one too when `follow_final`).
/// Returns the resolved entry, or `None` when something on the way does not exist.
pub fn resolve(
    fs: &dyn SourceFs,
    path: &Path,
    follow_final: bool,
) -> Result<Option<Entry>, CopyError> {
    let mut todo: Vec<OsString> = components(path).into_iter().rev().collect();
    let mut cur = PathBuf::new();
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&comp);
        let Some(entry) = fs.lstat(&next)? else {
            return Ok(None);
        };
        let last = todo.is_empty();
        match entry.kind {
            EntryKind::Symlink if !last || follow_final => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(CopyError::SymlinkLoop {
                        path: path.to_path_buf(),
                    });
                }
                let target = entry.link_target.clone().unwrap_or_default();
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                todo.extend(components(&target).into_iter().rev());
            }
            EntryKind::Dir => cur = next,
            _ if last => return Ok(Some(entry)),
            // A file in the middle of the path.
            _ => return Ok(None),
        }
        if todo.is_empty() {
            return fs.lstat(&cur);
        }
    }
    fs.lstat(&cur)
}

/// The normal and `..` components of a path (`.`, `/` and empty ones dropped).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// One source after wildcard expansion: the name it has at the destination and what it resolves
/// to.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The path as matched, before following symlinks (relative to the source root).
    pub matched: PathBuf,
    /// The resolved entry (symlinks followed).
    pub entry: Entry,
}

/// Expands one source (already cleaned, relative to the source root) as BuildKit does: the part
/// up to the first component with a wildcard is resolved, then the tree below it is walked in
/// name order and every path matching the rest (Go `filepath.Match`) is taken; a matching
/// directory is not descended into. Without wildcards the source is resolved directly.
pub fn expand(fs: &dyn SourceFs, source: &str, cleaned: &Path) -> Result<Vec<Matched>, CopyError> {
    let comps: Vec<String> = cleaned
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => {
                Some(kiln_dockerfile_parser::bytes::from_os_str(n).into_owned())
            }
            _ => None,
        })
        .collect();
    let split = comps.iter().position(|c| glob::has_wildcards(c));
    let Some(split) = split else {
        return match resolve(fs, cleaned, true)? {
            Some(entry) => Ok(vec![Matched {
                matched: cleaned.to_path_buf(),
                entry,
            }]),
            None => Err(CopyError::SourceNotFound {
                source_path: source.to_string(),
            }),
        };
    };
    let base: PathBuf = comps[..split]
        .iter()
        .map(|c| kiln_dockerfile_parser::bytes::to_path(c))
        .collect();
    let pattern = comps[split..].join("/");
    glob::validate(&pattern).map_err(|e| CopyError::BadPattern {
        source_path: source.to_string(),
        source: e,
    })?;
    let Some(base_entry) = resolve(fs, &base, true)? else {
        return Err(CopyError::SourceNotFound {
            source_path: source.to_string(),
        });
    };
    // `*` and `?` never match `/`, so without a class the walk need not go deeper than the
    // pattern has components.
    let max_depth = if pattern.contains('[') {
        usize::MAX
    } else {
        comps.len() - split
    };
    let mut out = Vec::new();
    if base_entry.is_dir() {
        walk_matches(
            fs,
            &base_entry.path,
            Path::new(""),
            &pattern,
            max_depth,
            &mut out,
        )?;
    }
    let mut matched = Vec::with_capacity(out.len());
    for rel in out {
        let m = base.join(&rel);
        let real = base_entry.path.join(&rel);
        if let Some(entry) = resolve(fs, &real, true)? {
            matched.push(Matched { matched: m, entry });
        } else {
            return Err(CopyError::SourceNotFound {
                source_path: m.to_string_lossy().into_owned(),
            });
        }
    }
    Ok(matched)
}

fn walk_matches(
    fs: &dyn SourceFs,
    dir: &Path,
    rel: &Path,
    pattern: &str,
    depth_left: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), CopyError> {
    if depth_left == 0 {
        return Ok(());
    }
    for child in fs.children(&dir.join(rel))? {
        let Some(name) = child.path.file_name() else {
            continue;
        };
        let r = rel.join(name);
        let text = kiln_dockerfile_parser::bytes::from_os_str(r.as_os_str());
        if glob::matches(pattern, &text).unwrap_or(false) {
            out.push(r);
            continue;
        }
        if child.is_dir() {
            walk_matches(fs, dir, &r, pattern, depth_left - 1, out)?;
        }
    }
    Ok(())
}

/// Reads the extended attributes of `path` inside `root` without following a final symlink,
/// sorted by name.
pub fn read_xattrs(root: &Root, path: &Path) -> Result<Vec<(OsString, Vec<u8>)>, CopyError> {
    let (parent, name) = root
        .parent(path, false)
        .map_err(|e| io_err(root, "open", path, e.source))?;
    let target = match &name {
        Some(n) => crate::fsroot::proc_fd_path(&parent).join(n),
        None => crate::fsroot::proc_fd_path(&parent),
    };
    crate::xattr::list(&target).map_err(|e| io_err(root, "read xattrs", path, e))
}

/// Opens a regular file of the source for reading without following a final symlink.
pub fn open_source_file(root: &Root, path: &Path) -> Result<std::fs::File, CopyError> {
    let (parent, name) = root
        .parent(path, false)
        .map_err(|e| io_err(root, "open", path, e.source))?;
    let name =
        name.ok_or_else(|| io_err(root, "open", path, std::io::ErrorKind::IsADirectory.into()))?;
    let fd = rustix::fs::openat(
        &parent,
        &name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| io_err(root, "open", path, e.into()))?;
    Ok(std::fs::File::from(fd))
}
