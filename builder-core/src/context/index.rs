//! The walked context as an index: entries in walk order, searched by path bytes.
//!
//! Walk order (pre-order, siblings by name) is [`Path`]'s component order of the relative
//! paths, which on clean relative paths is byte order with `/` ranked below every other byte
//! (`cmp_paths`). So the index needs no map: lookups are binary searches, and a directory's
//! descendants are the contiguous run after it.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use super::walk::Entry;

/// Orders clean relative paths component by component, as [`Path`]'s own ordering does, but on
/// bytes: at the first difference a `/` sorts before every other byte (no name holds a NUL), and
/// a prefix sorts first. `a/b` < `a.b` because the component `a` < `a.b`.
pub(crate) fn cmp_paths(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let rank = |c: u8| if c == b'/' { 0 } else { c };
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => rank(a[i]).cmp(&rank(b[i])),
        None => a.len().cmp(&b.len()),
    }
}

pub(crate) fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// The bytes of `path` as the index spells it: `.`, empty components, a leading `/` and a
/// trailing `/` dropped (`Path::new("src").join("")` is `src/`), as [`Path`]'s own comparison
/// ignores them.
fn clean(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    let b = bytes(path);
    let tidy = !b.starts_with(b"/")
        && !b.ends_with(b"/")
        && b.split(|&c| c == b'/')
            .all(|c| c != b"." && !c.is_empty() || b.is_empty());
    if tidy {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    for c in path.components() {
        if let std::path::Component::Normal(name) = c {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(name.as_bytes());
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether the clean relative path `p` is strictly below `dir` (`""` is the root).
fn is_below(p: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        !p.is_empty()
    } else {
        p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
    }
}

/// Every visible entry of a context in walk order: a pre-order walk with siblings in byte order
/// of their names, which is [`Path`]'s component-wise order of the relative paths. Lookups are
/// binary searches and a directory's descendants are the contiguous run after it.
///
/// The entries stay in the vectors the walk's threads filled (`chunks`); `order` names them in
/// walk order, so the index never holds two copies of a large context's entries. Each entry is
/// reference-counted, so that a `COPY`'s selection shares the index's entries instead of
/// cloning them (a selection of 100,000 entries is 1.6 MB of references instead of ~25 MB).
#[derive(Debug, Clone, Default)]
pub struct ContextIndex {
    chunks: Vec<Vec<Arc<Entry>>>,
    /// (chunk, position in it) of each entry, in walk order.
    order: Vec<(u32, u32)>,
}

impl ContextIndex {
    /// An index over the walk threads' entry vectors, `order` naming them in walk order.
    pub(crate) fn from_parts(chunks: Vec<Vec<Arc<Entry>>>, order: Vec<(u32, u32)>) -> Self {
        Self { chunks, order }
    }

    fn at(&self, (c, j): (u32, u32)) -> &Arc<Entry> {
        &self.chunks[c as usize][j as usize]
    }

    fn position(&self, path: &Path) -> Result<usize, usize> {
        let key = clean(path);
        self.order
            .binary_search_by(|&r| cmp_paths(bytes(&self.at(r).path), &key))
    }

    /// The entry at `path` (relative, clean; `""` is the root).
    pub fn get(&self, path: &Path) -> Option<&Entry> {
        self.get_shared(path).map(|e| &**e)
    }

    /// The entry at `path`, shared (a clone of it costs a reference count).
    pub fn get_shared(&self, path: &Path) -> Option<&Arc<Entry>> {
        self.position(path).ok().map(|i| self.at(self.order[i]))
    }

    /// Every entry, the root first, in walk order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.order.iter().map(|&r| &**self.at(r))
    }

    /// The positions in `order` of the run of entries strictly below `dir`.
    fn below(&self, dir: &Path) -> std::ops::Range<usize> {
        let start = match self.position(dir) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        let key = clean(dir);
        let len = self.order[start..].partition_point(|&r| is_below(bytes(&self.at(r).path), &key));
        start..start + len
    }

    /// The entries strictly below `dir`, in walk order.
    pub fn descendants<'a>(
        &'a self,
        dir: &'a Path,
    ) -> impl ExactSizeIterator<Item = &'a Entry> + 'a {
        self.descendants_shared(dir).map(|e| &**e)
    }

    /// The entries strictly below `dir`, in walk order, shared.
    pub fn descendants_shared<'a>(
        &'a self,
        dir: &'a Path,
    ) -> impl ExactSizeIterator<Item = &'a Arc<Entry>> + 'a {
        self.order[self.below(dir)].iter().map(|&r| self.at(r))
    }

    /// The direct children of `dir`, in byte order of their names.
    pub fn children<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a Entry> + 'a {
        self.children_shared(dir).map(|e| &**e)
    }

    /// The direct children of `dir`, in byte order of their names, shared.
    pub fn children_shared<'a>(
        &'a self,
        dir: &'a Path,
    ) -> impl Iterator<Item = &'a Arc<Entry>> + 'a {
        let run = &self.order[self.below(dir)];
        let mut i = 0;
        std::iter::from_fn(move || {
            let e = self.at(*run.get(i)?);
            i += 1;
            if e.is_dir() {
                // Skip the child's own subtree.
                let key = bytes(&e.path);
                i += run[i..].partition_point(|&d| is_below(bytes(&self.at(d).path), key));
            }
            Some(e)
        })
    }

    /// The number of entries, the root included.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the index holds nothing (not even the root).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds an entry, replacing one at the same path (used by tests).
    pub fn insert(&mut self, entry: Entry) {
        match self.position(&entry.path) {
            Ok(i) => {
                let (c, j) = self.order[i];
                self.chunks[c as usize][j as usize] = Arc::new(entry);
            }
            Err(i) => {
                if self.chunks.is_empty() {
                    self.chunks.push(Vec::new());
                }
                let chunk = &mut self.chunks[0];
                chunk.push(Arc::new(entry));
                self.order.insert(i, (0, (chunk.len() - 1) as u32));
            }
        }
    }
}
