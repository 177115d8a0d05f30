//! The context files of a key manifest: path → digest, sorted by path, kept in one text buffer.
//!
//! A step that copies 100,000 files has 100,000 of these. As a `BTreeMap<String, String>` they
//! took ~120 bytes each (two allocations per file and the tree's nodes); here each costs its
//! text and 16 bytes of offsets. Serialised exactly as that map was (a JSON object in path
//! order), so manifests written before read the same.

use std::fmt;

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
            sorted: true,
        }
    }

    /// An empty set with room for `entries` entries of `text` bytes of paths and digests in
    /// all (a buffer grown by doubling would hold up to twice that, and both buffers while it
    /// moves).
    pub(crate) fn with_capacity(entries: usize, text: usize) -> Self {
        Self {
            text: String::with_capacity(text),
            spans: Vec::with_capacity(entries),
            sorted: true,
        }
    }

    /// Adds an entry; a later entry for the same path replaces an earlier one once sorted
    /// ([`FileDigests::finish`]), as a map's `insert` would. Entries longer than 4 GiB are
    /// dropped.
    pub(crate) fn push(&mut self, path: &str, digest: &str) {
        let (Ok(p), Ok(d)) = (u32::try_from(path.len()), u32::try_from(digest.len())) else {
            return;
        };
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
        let text = &self.text;
        let path = |&(s, p, _): &(usize, u32, u32)| &text[s..s + p as usize];
        // Stable: among equal paths the last pushed stays last.
        self.spans.sort_by(|a, b| path(a).cmp(path(b)));
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

    fn entry(&self, &(s, p, d): &(usize, u32, u32)) -> (&str, &str) {
        let mid = s + p as usize;
        (&self.text[s..mid], &self.text[mid..mid + d as usize])
    }

    /// Every (path, digest), in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        debug_assert!(self.sorted, "FileDigests read before finish()");
        self.spans.iter().map(|s| self.entry(s))
    }

    /// The digest recorded for `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        let i = self
            .spans
            .binary_search_by(|s| self.entry(s).0.cmp(path))
            .ok()?;
        Some(self.entry(&self.spans[i]).1)
    }

    /// Whether `path` is recorded.
    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether no path is recorded.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
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
            .entries(self.spans.iter().map(|s| self.entry(s)))
            .finish()
    }
}

impl Serialize for FileDigests {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (path, digest) in self.spans.iter().map(|s| self.entry(s)) {
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
}
