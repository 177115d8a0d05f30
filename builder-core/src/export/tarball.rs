//! A minimal deterministic tar writer for image archives: fixed modes, owner 0:0 and mtime 0, so
//! the same image always gives the same archive bytes.

use std::io::{Read, Write};

use super::ExportError;
use crate::content::{ContentStore, Digest, unwrap_io_error};
use crate::layer::tarfmt::{BLOCK, EntryHeader, Kind, padding};

pub(super) struct TarOut<W> {
    out: W,
}

fn header(name: &str, kind: Kind, size: u64) -> EntryHeader {
    EntryHeader {
        name: name.as_bytes().to_vec(),
        kind,
        mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        size,
        mtime: 0,
        link: Vec::new(),
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    }
}

impl<W: Write> TarOut<W> {
    pub(super) fn new(out: W) -> Self {
        Self { out }
    }

    fn w(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.out.write_all(bytes).map_err(ExportError::Write)
    }

    pub(super) fn dir(&mut self, name: &str) -> Result<(), ExportError> {
        header(name, Kind::Dir, 0)
            .write_to(&mut self.out)
            .map_err(ExportError::Write)
    }

    pub(super) fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), ExportError> {
        header(name, Kind::File, bytes.len() as u64)
            .write_to(&mut self.out)
            .map_err(ExportError::Write)?;
        self.w(bytes)?;
        self.w(&[0u8; BLOCK][..padding(bytes.len() as u64)])
    }

    /// Streams a blob from the store, verified, as `name`.
    pub(super) fn blob(
        &mut self,
        name: &str,
        store: &ContentStore,
        digest: &Digest,
    ) -> Result<(), ExportError> {
        let mut r = store.open_verified(digest)?;
        let size = r.size();
        header(name, Kind::File, size)
            .write_to(&mut self.out)
            .map_err(ExportError::Write)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|e| unwrap_io_error(e, "read", store.blob_path(digest)))?;
            if n == 0 {
                break;
            }
            // The verified reader never returns more than the blob's size.
            left = left.saturating_sub(n as u64);
            self.w(&buf[..n])?;
        }
        if left != 0 {
            return Err(ExportError::Content(
                crate::content::ContentError::SizeMismatch {
                    digest: *digest,
                    expected: size,
                    actual: size - left,
                },
            ));
        }
        self.w(&[0u8; BLOCK][..padding(size)])
    }

    pub(super) fn finish(mut self) -> Result<W, ExportError> {
        self.w(&[0u8; 2 * BLOCK])?;
        self.out.flush().map_err(ExportError::Write)?;
        Ok(self.out)
    }
}

/// `blobs/sha256/<hex>`, the path of a blob inside a layout or archive.
pub(super) fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}
