//! Patching a layer: the layer of a step that ran again with a few of its inputs changed, made
//! from the layer the same step wrote before and the entries that differ.
//!
//! The caller prepares the step's new tree on top of the tree the old layer made, changes only
//! what differs, and passes the changes the snapshotter found relative to that old tree. Entries
//! the changes do not name are in the same state as when the old layer was written, and the
//! writer's output for an entry depends only on its state, so their bytes are copied from the old
//! layer as they are; the entries the changes name are written from the new tree. The result is
//! byte for byte the layer [`super::write_changes`] writes for the whole new tree, provided the
//! old layer is one this writer made (sorted, no whiteouts, no hard links) and the caller's new
//! tree differs from the old one only where the changes say. Deleted paths must not exist in the
//! tree below the old layer (the new tree then has nothing there, which needs no whiteout);
//! opaque directories are refused. Anything this module cannot patch exactly is reported as
//! [`LayerError::PatchUnsupported`], and the caller writes the layer the ordinary way.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::tarfmt::{BLOCK, padding};
use super::writer::TarWriter;
use super::{LayerError, LayerOptions, WriteStats};
use crate::changes::Change;
use crate::fsroot::Root;

/// What the new tree has at a path the changes name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Changed: written from the new tree.
    Upsert,
    /// The parent of a changed entry and unchanged itself: copied from the old layer when it
    /// has the entry, written from the new tree otherwise.
    Parent,
    /// Removed, with everything below it.
    Deleted,
}

/// Writes the layer of the tree under `src` that differs from the tree of the old layer `old`
/// by `changes` (see the module docs). `old` is read to its end, so a verifying reader checks
/// its digest before this returns.
pub fn write_patched<W: Write>(
    src: &Root,
    mut old: impl Read,
    changes: &[Change],
    opts: &LayerOptions,
    out: W,
) -> Result<(W, WriteStats), LayerError> {
    let mut plan: BTreeMap<PathBuf, Plan> = BTreeMap::new();
    for change in changes {
        let path = crate::fsroot::clean(change.path());
        if path.as_os_str().is_empty() {
            continue;
        }
        match change {
            Change::Upsert(_) => {
                plan.insert(path, Plan::Upsert);
            }
            Change::Delete(_) => {
                plan.insert(path, Plan::Deleted);
            }
            Change::Opaque(_) => return Err(unsupported("an opaque directory")),
        }
    }
    let parents: Vec<PathBuf> = plan
        .iter()
        .filter(|(_, p)| **p == Plan::Upsert)
        .flat_map(|(path, _)| path.ancestors().skip(1))
        .filter(|a| !a.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    for p in parents {
        plan.entry(p).or_insert(Plan::Parent);
    }

    let mut w = TarWriter::new(src, opts, out);
    let mut reader = OldEntries::new(&mut old);
    let mut parent_cache: Option<(PathBuf, OwnedFd)> = None;
    let mut emit = |w: &mut TarWriter<'_, W>, path: &Path| -> Result<(), LayerError> {
        let parent = path.parent().unwrap_or(Path::new(""));
        let name = path.file_name().unwrap_or_default();
        if parent_cache.as_ref().is_none_or(|(p, _)| p != parent) {
            parent_cache = Some((parent.to_path_buf(), src.open_dir(parent)?));
        }
        if let Some((_, fd)) = &parent_cache {
            w.emit(fd.as_fd(), name, path)?;
        }
        Ok(())
    };
    let mut planned = plan.into_iter().peekable();
    let mut next_old = reader.next()?;
    let mut deleted: Option<PathBuf> = None;
    let mut last: Option<PathBuf> = None;
    loop {
        let take_old = match (&next_old, planned.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(o), Some((p, _))) => o.path.as_path() <= p.as_path(),
        };
        if take_old {
            let Some(entry) = next_old.take() else { break };
            if last.as_ref().is_some_and(|l| entry.path <= *l) {
                return Err(unsupported("entries out of order"));
            }
            last = Some(entry.path.clone());
            let here = planned.next_if(|(p, _)| *p == entry.path);
            let under_deleted = deleted.as_ref().is_some_and(|d| entry.path.starts_with(d));
            match here.map(|(_, p)| p) {
                _ if under_deleted => reader.skip(&entry)?,
                Some(Plan::Deleted) => {
                    reader.skip(&entry)?;
                    deleted = Some(entry.path.clone());
                }
                Some(Plan::Upsert) => {
                    reader.skip(&entry)?;
                    emit(&mut w, &entry.path)?;
                }
                Some(Plan::Parent) | None => {
                    w.copy_raw(&mut reader.r, entry.head_len, 0)?;
                    w.copy_raw(&mut reader.r, entry.data_len, entry.size)?;
                }
            }
            next_old = reader.next()?;
        } else if let Some((path, p)) = planned.next() {
            match p {
                // A deletion of something the old layer did not add: the tree below shows it.
                Plan::Deleted => return Err(unsupported("a deletion below the layer")),
                Plan::Upsert | Plan::Parent => emit(&mut w, &path)?,
            }
        }
    }
    if w.wrote_multi_link() {
        return Err(unsupported("a file with several links"));
    }
    let done = w.finish()?;
    // The rest of the old layer (its end blocks): read so its digest is checked.
    io::copy(&mut old, &mut io::sink()).map_err(LayerError::Read)?;
    Ok(done)
}

fn unsupported(reason: &'static str) -> LayerError {
    LayerError::PatchUnsupported { reason }
}

/// One entry of the old layer: its path, and the lengths of its header blocks (a PAX header
/// included) and of its content with padding, which follow in the stream.
struct OldEntry {
    path: PathBuf,
    head_len: u64,
    size: u64,
    data_len: u64,
}

/// Reads the entries of a layer this writer made. The header blocks of an entry are read ahead
/// into `head`; [`OldEntries::next`] leaves them for the caller to copy or skip.
struct OldEntries<'r, R> {
    r: Replay<'r, R>,
}

/// A reader that first hands out the bytes kept in `head`, then reads on.
struct Replay<'r, R> {
    head: Vec<u8>,
    pos: usize,
    inner: &'r mut R,
}

impl<R: Read> Read for Replay<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = (self.head.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<'r, R: Read> OldEntries<'r, R> {
    fn new(inner: &'r mut R) -> Self {
        Self {
            r: Replay {
                head: Vec::new(),
                pos: 0,
                inner,
            },
        }
    }

    fn block(&mut self) -> Result<[u8; BLOCK], LayerError> {
        let mut b = [0u8; BLOCK];
        self.r.inner.read_exact(&mut b).map_err(LayerError::Read)?;
        self.r.head.extend_from_slice(&b);
        Ok(b)
    }

    /// The next entry, `None` at the end-of-archive blocks.
    fn next(&mut self) -> Result<Option<OldEntry>, LayerError> {
        self.r.head.clear();
        self.r.pos = 0;
        let mut h = self.block()?;
        if h.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        if h[156] == b'x' {
            let len = octal(&h[124..136]).ok_or_else(|| invalid(&h, "a bad PAX size"))?;
            if len > 1 << 20 {
                return Err(invalid(&h, "a PAX header over 1 MiB"));
            }
            let mut body = vec![0u8; len as usize + padding(len)];
            self.r
                .inner
                .read_exact(&mut body)
                .map_err(LayerError::Read)?;
            self.r.head.extend_from_slice(&body);
            body.truncate(len as usize);
            for (k, v) in pax_records(&body).ok_or_else(|| invalid(&h, "bad PAX records"))? {
                match k {
                    b"path" => pax_path = Some(v.to_vec()),
                    b"size" => {
                        let s = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
                        pax_size = Some(s.ok_or_else(|| invalid(&h, "a bad PAX size"))?);
                    }
                    _ => {}
                }
            }
            h = self.block()?;
        }
        match h[156] {
            b'0' | b'\0' | b'2' | b'3' | b'4' | b'5' | b'6' => {}
            b'1' => return Err(unsupported("a hard link entry")),
            _ => return Err(unsupported("an entry type this writer does not make")),
        }
        let name = match pax_path {
            Some(p) => p,
            None => {
                let field = |r: std::ops::Range<usize>| {
                    let f = &h[r];
                    f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())].to_vec()
                };
                let (name, prefix) = (field(0..100), field(345..500));
                if prefix.is_empty() {
                    name
                } else {
                    [prefix, b"/".to_vec(), name].concat()
                }
            }
        };
        let trimmed = name.strip_suffix(b"/").unwrap_or(&name);
        let path = PathBuf::from(OsStr::from_bytes(trimmed));
        if path
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
        {
            return Err(unsupported("a whiteout"));
        }
        if crate::fsroot::clean(&path) != path || path.as_os_str().is_empty() {
            return Err(invalid(&h, "a name that is not clean"));
        }
        let size = match pax_size {
            Some(s) => s,
            None => octal(&h[124..136]).ok_or_else(|| invalid(&h, "a bad size"))?,
        };
        Ok(Some(OldEntry {
            path,
            head_len: self.r.head.len() as u64,
            size,
            data_len: size + padding(size) as u64,
        }))
    }

    /// Skips an entry's header blocks and content.
    fn skip(&mut self, entry: &OldEntry) -> Result<(), LayerError> {
        self.r.pos = self.r.head.len();
        io::copy(
            &mut (&mut *self.r.inner).take(entry.data_len),
            &mut io::sink(),
        )
        .map_err(LayerError::Read)?;
        Ok(())
    }
}

fn invalid(h: &[u8; BLOCK], reason: &'static str) -> LayerError {
    let name = &h[..h.iter().take(100).position(|&b| b == 0).unwrap_or(100)];
    LayerError::InvalidEntry {
        path: PathBuf::from(OsStr::from_bytes(name)),
        reason,
    }
}

/// A numeric header field: octal digits, NUL or space terminated.
fn octal(field: &[u8]) -> Option<u64> {
    let digits: &[u8] = {
        let end = field
            .iter()
            .position(|&b| b == 0 || b == b' ')
            .unwrap_or(field.len());
        &field[..end]
    };
    let s = std::str::from_utf8(digits).ok()?.trim_start();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// PAX records `<len> <key>=<value>\n`.
fn pax_records(mut body: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let sp = body.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&body[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > body.len() || body[len - 1] != b'\n' {
            return None;
        }
        let rec = &body[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=')?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        body = &body[len..];
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::layer::write_tree;

    fn tar_of(dir: &Path) -> Vec<u8> {
        let opts = LayerOptions {
            source_date_epoch: Some(1_700_000_000),
        };
        write_tree(&Root::open(dir).unwrap(), &opts, Vec::new())
            .unwrap()
            .0
    }

    fn patched(dir: &Path, old: &[u8], changes: &[Change]) -> Result<Vec<u8>, LayerError> {
        let opts = LayerOptions {
            source_date_epoch: Some(1_700_000_000),
        };
        write_patched(&Root::open(dir).unwrap(), old, changes, &opts, Vec::new()).map(|r| r.0)
    }

    fn up(p: &str) -> Change {
        Change::Upsert(PathBuf::from(p))
    }

    #[test]
    fn a_patched_layer_is_the_layer_of_the_new_tree() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let long = "n".repeat(120);
        for (p, c) in [
            ("app/a/one.txt", "one"),
            ("app/a/two.txt", "two"),
            ("app/b/three.txt", "three"),
            ("app/gone/x.txt", "x"),
        ] {
            std::fs::create_dir_all(d.join(p).parent().unwrap()).unwrap();
            std::fs::write(d.join(p), c).unwrap();
        }
        std::fs::create_dir_all(d.join("app").join(&long)).unwrap();
        std::fs::write(d.join("app").join(&long).join("deep.txt"), "deep").unwrap();
        std::os::unix::fs::symlink("a/one.txt", d.join("app/link")).unwrap();
        let old = tar_of(d);

        // One file rewritten, one added in a new directory, one directory removed.
        std::fs::remove_file(d.join("app/a/two.txt")).unwrap();
        std::fs::write(d.join("app/a/two.txt"), "two, longer now").unwrap();
        std::fs::create_dir(d.join("app/c")).unwrap();
        std::fs::write(d.join("app/c/new.txt"), "new").unwrap();
        std::fs::remove_dir_all(d.join("app/gone")).unwrap();
        let changes = [
            up("app"),
            up("app/a"),
            up("app/a/two.txt"),
            up("app/c"),
            up("app/c/new.txt"),
            Change::Delete(PathBuf::from("app/gone")),
        ];
        assert_eq!(patched(d, &old, &changes).unwrap(), tar_of(d));
        // Nothing changed: the same bytes.
        let same = tar_of(d);
        assert_eq!(patched(d, &same, &[]).unwrap(), same);
    }

    #[test]
    fn what_cannot_be_patched_exactly_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir(d.join("app")).unwrap();
        std::fs::write(d.join("app/f"), "f").unwrap();
        std::fs::hard_link(d.join("app/f"), d.join("app/g")).unwrap();
        let old = tar_of(d);
        let err = patched(d, &old, &[up("app/f")]).unwrap_err();
        assert!(matches!(err, LayerError::PatchUnsupported { .. }), "{err}");

        std::fs::remove_file(d.join("app/g")).unwrap();
        let old = tar_of(d);
        let err = patched(d, &old, &[Change::Opaque(PathBuf::from("app"))]).unwrap_err();
        assert!(matches!(err, LayerError::PatchUnsupported { .. }), "{err}");
        let err = patched(d, &old, &[Change::Delete(PathBuf::from("etc"))]).unwrap_err();
        assert!(matches!(err, LayerError::PatchUnsupported { .. }), "{err}");
        // A truncated old layer is an error, never a shorter layer.
        assert!(patched(d, &old[..old.len() - 2048], &[up("app/f")]).is_err());
    }
}
