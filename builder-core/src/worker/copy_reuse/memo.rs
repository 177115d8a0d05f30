//! The memo file of a copy result: what a COPY left (its snapshot, its layer, when it started)
//! and one record per copied entry, written streamed with a sha256 trailer and read back whole;
//! a memo that is torn, truncated or of another version reads as none.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::cache::LayerRef;

// Version 1 memos hold digests made from sha256 content digests: refused whole, not read as
// "every entry changed". Also hashed into the memo's name.
pub(super) const MAGIC: &[u8] = b"kiln copy result v2\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MemoEntry {
    /// Path below the copied directory.
    pub(super) rel: Vec<u8>,
    pub(super) kind: u8,
    pub(super) flags: u8,
    /// What reaches the layer: the entry's cache digest and its modification time.
    pub(super) digest: [u8; 16],
}

#[derive(Debug)]
pub(super) struct Memo {
    /// The snapshot key (chain ID) of the result.
    pub(super) result: String,
    pub(super) layer: LayerRef,
    /// A time no later than any the copy gave a directory (seconds).
    pub(super) started: i64,
    pub(super) entries: Vec<MemoEntry>,
}

/// Writes a memo, streamed: `count` entries (path, kind tag, flags, digest), each written as it
/// comes, so that neither the entries nor the file's bytes are held whole (for 100,000 entries
/// they were ~8 MB and ~7 MB).
pub(super) fn store<'a>(
    path: &Path,
    result: &str,
    layer: &LayerRef,
    started: i64,
    count: usize,
    entries: impl Iterator<Item = (&'a [u8], u8, u8, [u8; 16])>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.as_file().lock()?;
    let mut out = Summed {
        out: std::io::BufWriter::new(tmp),
        sum: Sha256::new(),
    };
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(MAGIC);
    put(&mut head, result.as_bytes());
    put(&mut head, layer.diff_id.hex().as_bytes());
    head.extend_from_slice(&layer.size.to_le_bytes());
    head.extend_from_slice(&started.to_le_bytes());
    head.extend_from_slice(&(count as u64).to_le_bytes());
    out.write(&head)?;
    let mut written = 0;
    for (rel, kind, flags, digest) in entries {
        let len = u32::try_from(rel.len()).map_err(std::io::Error::other)?;
        out.write(&len.to_le_bytes())?;
        out.write(rel)?;
        out.write(&[kind, flags])?;
        out.write(&digest)?;
        written += 1;
    }
    if written != count {
        return Err(std::io::Error::other("memo entries and count differ"));
    }
    let sum = out.sum.finalize();
    std::io::Write::write_all(&mut out.out, &sum)?;
    let tmp = out.out.into_inner().map_err(|e| e.into_error())?;
    // A hint, not store data: no sync. A torn or empty file fails its checksum and is ignored.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A buffered file with a running sha256 of what went into it.
struct Summed {
    out: std::io::BufWriter<tempfile::NamedTempFile>,
    sum: Sha256,
}

impl Summed {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sum.update(bytes);
        std::io::Write::write_all(&mut self.out, bytes)
    }
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Reads a memo; `None` when it is missing, torn or of another version.
pub(super) fn load(path: &Path) -> Option<Memo> {
    let bytes = std::fs::read(path).ok()?;
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut r = Cursor(body.strip_prefix(MAGIC)?);
    let result = String::from_utf8(r.bytes()?.to_vec()).ok()?;
    let diff_id = crate::content::Digest::from_hex(std::str::from_utf8(r.bytes()?).ok()?).ok()?;
    let size = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let started = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let count = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let rel = r.bytes()?.to_vec();
        let kf = r.take(2)?;
        let digest: [u8; 16] = r.take(16)?.try_into().ok()?;
        entries.push(MemoEntry {
            rel,
            kind: kf[0],
            flags: kf[1],
            digest,
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Memo {
        result,
        layer: LayerRef {
            diff_id,
            size,
            packed: None,
        },
        started,
        entries,
    })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_round_trips_and_a_torn_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let memo = Memo {
            result: "abc".into(),
            layer: LayerRef {
                diff_id: crate::content::Digest::of(b"layer"),
                size: 42,
                packed: None,
            },
            started: 1_700_000_000,
            entries: vec![MemoEntry {
                rel: b"src/a.rs".to_vec(),
                kind: b'f',
                flags: 0,
                digest: [7; 16],
            }],
        };
        store(
            &path,
            &memo.result,
            &memo.layer,
            memo.started,
            memo.entries.len(),
            memo.entries
                .iter()
                .map(|e| (e.rel.as_slice(), e.kind, e.flags, e.digest)),
        )
        .unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.result, "abc");
        assert_eq!(back.layer, memo.layer);
        assert_eq!(back.started, memo.started);
        assert_eq!(back.entries, memo.entries);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(load(&path).is_none());
        std::fs::write(&path, b"").unwrap();
        assert!(load(&path).is_none());
    }
}
