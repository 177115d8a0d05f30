//! The context files of a key manifest: path → digest, sorted by path, kept in one text buffer.
//!
//! A step that copies 100,000 files has 100,000 of these. As a `BTreeMap<String, String>` they
//! took ~120 bytes each (two allocations per file and the tree's nodes); here each costs its
//! text and 16 bytes of offsets, or, for the files of a build context, 40 bytes: a reference to
//! the context index's entry, which holds the path, and the digest. Serialised exactly as that
//! map was (a JSON object in path order), so manifests written before read the same.

use std::fmt;
use std::sync::Arc;

use crate::context::Entry;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Context files the step reads: path → digest of everything the key takes from the file, in
/// byte order of the paths, one entry per path.
#[derive(Clone)]
pub struct FileDigests {
    /// Every path followed by its digest, in insertion order.
    text: String,
    /// (start in `text`, path length, digest length) per entry, sorted by path once `sorted`.
    spans: Vec<(usize, u32, u32)>,
    /// Or, when every path is a context entry's (UTF-8) path and every digest 32 hex digits:
    /// the entries, the digests and the order they came in. Only one of `spans` and `shared`
    /// has entries.
    shared: Vec<(Arc<Entry>, [u8; 32], u32)>,
    sorted: bool,
}

impl Default for FileDigests {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for FileDigests {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for FileDigests {}

impl FileDigests {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            text: String::new(),
            spans: Vec::new(),
            shared: Vec::new(),
            sorted: true,
        }
    }

    /// An empty set with room for `entries` context entries ([`FileDigests::push_shared`]).
    pub(crate) fn with_shared_capacity(entries: usize) -> Self {
        Self {
            shared: Vec::with_capacity(entries),
            ..Self::new()
        }
    }

    /// Adds a context entry's path with a digest of 32 hex digits, without copying the path
    /// (the entry holds it); as [`FileDigests::push`] when the path is not UTF-8, the digest not
    /// hex, or the set already holds copied paths.
    pub(crate) fn push_shared(&mut self, entry: &Arc<Entry>, hex: [u8; 32]) {
        let path = entry.path.to_str();
        let digest = std::str::from_utf8(&hex)
            .ok()
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        match (path, digest) {
            (Some(_), Some(_))
                if self.spans.is_empty() && self.shared.len() < u32::MAX as usize =>
            {
                let seq = self.shared.len() as u32;
                self.shared.push((entry.clone(), hex, seq));
                self.sorted = false;
            }
            (_, digest) => {
                let digest = digest.map(str::to_owned).unwrap_or_default();
                self.push(&entry.path.to_string_lossy(), &digest);
            }
        }
    }

    /// Moves shared entries to the text buffer (before a copied path joins them).
    fn unshare(&mut self) {
        let shared = std::mem::take(&mut self.shared);
        for (entry, hex, _) in &shared {
            let path = entry.path.to_string_lossy();
            let digest = std::str::from_utf8(hex).unwrap_or_default();
            let start = self.text.len();
            self.text.push_str(&path);
            self.text.push_str(digest);
            self.spans
                .push((start, path.len() as u32, digest.len() as u32));
        }
    }

    /// Adds an entry; a later entry for the same path replaces an earlier one once sorted
    /// ([`FileDigests::finish`]), as a map's `insert` would. Entries longer than 4 GiB are
    /// dropped.
    pub(crate) fn push(&mut self, path: &str, digest: &str) {
        let (Ok(p), Ok(d)) = (u32::try_from(path.len()), u32::try_from(digest.len())) else {
            return;
        };
        if !self.shared.is_empty() {
            self.unshare();
        }
        let start = self.text.len();
        self.text.push_str(path);
        self.text.push_str(digest);
        self.spans.push((start, p, d));
        self.sorted = false;
    }

    /// Sorts the entries by path and keeps the last one pushed for each path.
    pub(crate) fn finish(&mut self) {
        if self.sorted {
            return;
        }
        fn p(e: &(Arc<Entry>, [u8; 32], u32)) -> &str {
            e.0.path.to_str().unwrap_or_default()
        }
        // Unstable, which needs no buffer (a stable sort of 100,000 entries took 4 MB), with the
        // arrival order breaking ties.
        self.shared
            .sort_unstable_by(|a, b| p(a).cmp(p(b)).then(a.2.cmp(&b.2)));
        self.shared.dedup_by(|later, kept| {
            let same = later.0.path == kept.0.path;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        let text = &self.text;
        let path = |&(s, p, _): &(usize, u32, u32)| &text[s..s + p as usize];
        // Among equal paths the last pushed (the latest start) stays last.
        self.spans
            .sort_unstable_by(|a, b| path(a).cmp(path(b)).then(a.0.cmp(&b.0)));
        // In place: of a run of equal paths the first slot stays, holding the last one's span.
        self.spans.dedup_by(|later, kept| {
            let same = path(later) == path(kept);
            if same {
                *kept = *later;
            }
            same
        });
        self.sorted = true;
    }

    /// Adds one entry and sorts (a test's or a small manifest's way in).
    pub fn insert(&mut self, path: impl AsRef<str>, digest: impl AsRef<str>) {
        self.push(path.as_ref(), digest.as_ref());
        self.finish();
    }

    /// The `i`th (path, digest).
    fn at(&self, i: usize) -> (&str, &str) {
        if let Some((entry, hex, _)) = self.shared.get(i) {
            return (
                entry.path.to_str().unwrap_or_default(),
                std::str::from_utf8(hex).unwrap_or_default(),
            );
        }
        let Some(&(s, p, d)) = self.spans.get(i) else {
            return ("", "");
        };
        let mid = s + p as usize;
        (&self.text[s..mid], &self.text[mid..mid + d as usize])
    }

    /// Every (path, digest), in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        debug_assert!(self.sorted, "FileDigests read before finish()");
        (0..self.len()).map(|i| self.at(i))
    }

    /// The digest recorded for `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (p, d) = self.at(mid);
            match p.cmp(path) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(d),
            }
        }
        None
    }

    /// Whether `path` is recorded.
    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.spans.len() + self.shared.len()
    }

    /// Whether no path is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<P: AsRef<str>, D: AsRef<str>> FromIterator<(P, D)> for FileDigests {
    fn from_iter<I: IntoIterator<Item = (P, D)>>(iter: I) -> Self {
        let mut out = FileDigests::new();
        for (p, d) in iter {
            out.push(p.as_ref(), d.as_ref());
        }
        out.finish();
        out
    }
}

impl fmt::Debug for FileDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries((0..self.len()).map(|i| self.at(i)))
            .finish()
    }
}

impl Serialize for FileDigests {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (path, digest) in (0..self.len()).map(|i| self.at(i)) {
            map.serialize_entry(path, digest)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FileDigests {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Files;
        impl<'de> Visitor<'de> for Files {
            type Value = FileDigests;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of paths to digests")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<FileDigests, M::Error> {
                let mut out = FileDigests::new();
                while let Some((p, d)) =
                    map.next_entry::<std::borrow::Cow<'de, str>, std::borrow::Cow<'de, str>>()?
                {
                    out.push(&p, &d);
                }
                out.finish();
                Ok(out)
            }
        }
        deserializer.deserialize_map(Files)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn serialises_as_the_map_it_replaces_and_reads_it_back() {
        let pairs = [
            ("src/b.rs", "02"),
            ("a/b", "01"),
            ("a.b", "03"),
            ("src/b.rs", "04"),
        ];
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(p, d)| (p.to_string(), d.to_string()))
            .collect();
        let files: FileDigests = pairs.iter().copied().collect();
        assert_eq!(files.len(), 3);
        assert_eq!(files.get("src/b.rs"), Some("04"));
        assert_eq!(files.get("a/c"), None);
        let json = serde_json::to_string(&files).unwrap();
        assert_eq!(json, serde_json::to_string(&map).unwrap());
        let back: FileDigests = serde_json::from_str(&json).unwrap();
        assert_eq!(back, files);
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            map.iter()
                .map(|(p, d)| (p.as_str(), d.as_str()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn context_entries_are_shared_and_read_as_copied_paths() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.b", "a/b", "a/c", "z"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, name).unwrap();
        }
        let index = crate::context::BuildContext::open(dir.path(), None)
            .unwrap()
            .walk()
            .unwrap();
        let entry = |p: &str| index.get_shared(std::path::Path::new(p)).unwrap();
        let hex = |c: u8| [c; 32];
        // Walk order (`a/b` before `a.b`), and `z` twice: the last one counts.
        let pushes = [
            ("a/b", b'1'),
            ("a/c", b'2'),
            ("a.b", b'3'),
            ("z", b'4'),
            ("z", b'5'),
        ];
        let mut shared = FileDigests::with_shared_capacity(pushes.len());
        for (p, c) in pushes {
            shared.push_shared(entry(p), hex(c));
        }
        shared.finish();
        let copied: FileDigests = pushes
            .iter()
            .map(|&(p, c)| (p.to_string(), String::from_utf8(hex(c).to_vec()).unwrap()))
            .collect();
        assert_eq!(shared, copied);
        assert_eq!(shared.len(), 4);
        assert_eq!(shared.get("z"), Some("5".repeat(32).as_str()));
        assert_eq!(shared.get("a"), None);
        assert_eq!(
            serde_json::to_string(&shared).unwrap(),
            serde_json::to_string(&copied).unwrap()
        );
        // A copied path joining shared ones moves them to the text buffer.
        shared.insert("m", "6");
        assert_eq!(shared.len(), 5);
        assert_eq!(shared.get("a.b"), Some("3".repeat(32).as_str()));
        assert_eq!(shared.get("m"), Some("6"));
    }
}
