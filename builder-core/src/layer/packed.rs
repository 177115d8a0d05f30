//! Applying a compressed layer blob straight onto a tree, without an uncompressed copy in the
//! store.
//!
//! A base image's layers arrive compressed. Writing each one out decompressed (and synced) before
//! unpacking it doubled the bytes written and put a whole extra pass in front of the first
//! build. Here one thread reads the blob, checking its digest as it goes, decompresses it and
//! hashes the tar (the layer's diff_id); the calling thread applies the tar as it arrives. The
//! tree is only good if both digests match at the end, so every failure, from either side,
//! returns an error naming the blob and the caller discards the tree.

use std::io::{self, Read};
use std::sync::mpsc;

use super::{ApplyOptions, ApplyStats, LayerError, apply_tar, decompress};
use crate::changes::WhiteoutStyle;
use crate::content::{ContentStore, Digest, Hasher, unwrap_io_error};
use crate::fsroot::Root;
use crate::stream::read_full;

/// Bytes handed from the decompressing thread to the applying one at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
const DEPTH: usize = 8;

/// Applies the compressed layer blob `blob` from the store onto `root`, checking the blob against
/// its digest and the decompressed tar against `diff_id`. A failure leaves `root` partly written:
/// the caller discards it.
pub fn apply_packed(
    store: &ContentStore,
    blob: &Digest,
    diff_id: &Digest,
    root: &Root,
    style: WhiteoutStyle,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayerError> {
    let in_blob = |source: LayerError| LayerError::Packed {
        blob: *blob,
        source: Box::new(source),
    };
    let mut reader = store.open_verified(blob).map_err(|e| in_blob(e.into()))?;
    let path = store.blob_path(blob);
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(DEPTH);
    let (produced, applied) = std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<Option<(Digest, u64)>, LayerError> {
            let mut tar = decompress(&mut reader)?;
            let mut hasher = Hasher::new();
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match read_full(&mut tar, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        // The applier sees the stream end in an error; the cause is reported
                        // from here.
                        let _ = tx.send(Err(io::Error::other("the layer blob cannot be read")));
                        return Err(LayerError::Read(e));
                    }
                };
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                buf.truncate(n);
                if tx.send(Ok(buf)).is_err() {
                    // The applier stopped (after an error of its own).
                    return Ok(None);
                }
            }
            drop(tar);
            drop(tx);
            // The decompressor stops at the end of the stream: read the rest so the blob's
            // digest is checked over all of it.
            io::copy(&mut reader, &mut io::sink())
                .map_err(|e| LayerError::Content(unwrap_io_error(e, "read", path)))?;
            Ok(Some(hasher.finish()))
        });
        let mut stream = ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let applied = apply_tar(root, &mut stream, style, opts);
        // The tar reader stops at the end-of-archive blocks; what follows is part of the diff_id.
        // After a failure the rest is still read, so a corrupt blob is reported as such rather
        // than as whatever its garbage made of the tar.
        let rest = io::copy(&mut stream, &mut io::sink());
        drop(stream);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(LayerError::Read(io::Error::other("decompression panicked"))));
        (produced, applied.map(|stats| (stats, rest)))
    });
    let produced = produced.map_err(in_blob)?;
    let (stats, rest) = applied.map_err(in_blob)?;
    rest.map_err(|e| in_blob(LayerError::Read(e)))?;
    let Some((actual, _)) = produced else {
        return Err(in_blob(LayerError::Read(io::Error::other(
            "the layer stream ended early",
        ))));
    };
    if actual != *diff_id {
        return Err(LayerError::DiffIdMismatch {
            blob: *blob,
            expected: *diff_id,
            actual,
        });
    }
    Ok(stats)
}

/// The applying side of the channel as a `Read`.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The producer is done (or gone: it reports why).
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
