//! Layer compression: detection by magic bytes for reading, and fast deterministic gzip and zstd
//! for exports.
//!
//! Local layers stay uncompressed (as Docker's and buildah's stores keep them); an export or push
//! compresses each layer once and remembers `diff_id → compressed blob` in
//! `<store>/kiln/compressed/<algorithm>/<diff_id hex>.json`, so the next export reuses it.
//!
//! gzip is pigz-style: the input is cut into fixed 1 MiB blocks, each compressed at level 1 with
//! the previous block's last 32 KiB as dictionary and ended with a sync flush, on all cores, then
//! concatenated in order into one gzip member with the CRC combined from the blocks' CRCs. Each
//! block's bytes depend only on its own input and its predecessor's, so the output is identical
//! whatever the thread count. The block size and level are part of the output format: changing
//! them changes every exported layer digest.

use std::io::{self, BufReader, Cursor, Read, Write};
use std::sync::mpsc;

use flate2::{Compress, Crc, FlushCompress};

use super::LayerError;
use crate::content::{BlobInfo, ContentStore, Digest, unwrap_io_error, write_atomic};
use crate::image::Compression;
use crate::stream::read_full;

/// The compression of an archive, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCompression {
    /// Not compressed (or unknown: read as a plain tar).
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
}

/// Identifies the compression of a stream from its first (up to 6) bytes.
pub fn detect_compression(head: &[u8]) -> ArchiveCompression {
    if head.starts_with(&[0x1f, 0x8b]) {
        ArchiveCompression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArchiveCompression::Zstd
    } else if head.starts_with(b"BZh") {
        ArchiveCompression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        ArchiveCompression::Xz
    } else {
        ArchiveCompression::None
    }
}

/// Wraps `reader` in the decompressor its magic bytes call for.
pub fn decompress<'a>(mut reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>, LayerError> {
    let mut head = [0u8; 6];
    let got = read_full(&mut reader, &mut head).map_err(LayerError::Read)?;
    let kind = detect_compression(&head[..got]);
    let chained =
        BufReader::with_capacity(1 << 20, Cursor::new(head[..got].to_vec()).chain(reader));
    Ok(match kind {
        ArchiveCompression::None => Box::new(chained),
        ArchiveCompression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(chained)),
        ArchiveCompression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(chained).map_err(LayerError::Read)?)
        }
        ArchiveCompression::Bzip2 => return Err(LayerError::UnsupportedCompression("bzip2")),
        ArchiveCompression::Xz => return Err(LayerError::UnsupportedCompression("xz")),
    })
}

/// gzip block size; part of the output format (see the module docs).
pub const GZIP_BLOCK: usize = 1 << 20;
const DICT: usize = 32 * 1024;

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
}

struct Done {
    deflated: Vec<u8>,
    crc: Crc,
    data: Vec<u8>,
}

/// Incompressible blocks are detected on a probe of this many bytes first.
const PROBE: usize = 64 * 1024;
/// A stored deflate block holds at most this many bytes.
const STORED_MAX: usize = 65_535;

/// Deflates one block, ending byte-aligned. A block that does not shrink (already compressed
/// data) is written as stored blocks instead, which is faster and does not grow it; whether the
/// probe or the whole block decides depends only on the block's bytes, so output stays
/// deterministic.
fn deflate_block(job: &Job, out: &mut Vec<u8>) -> io::Result<()> {
    if job.data.len() > PROBE {
        deflate_raw(&job.dict, &job.data[..PROBE], out)?;
        if out.len() >= PROBE {
            store_block(&job.data, out);
            return Ok(());
        }
    }
    deflate_raw(&job.dict, &job.data, out)?;
    if out.len() >= job.data.len() {
        store_block(&job.data, out);
    }
    Ok(())
}

/// Non-final stored blocks: a zero header byte (we are byte-aligned), LEN and NLEN, the bytes.
fn store_block(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for chunk in data.chunks(STORED_MAX) {
        let len = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Raw deflate at level 1 with a sync flush, from a fresh compressor: `Compress::reset` leaves
/// state behind that changes the output (measured with zlib-rs), which would make the bytes
/// depend on which blocks a worker compressed before.
fn deflate_raw(dict: &[u8], data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let c = &mut Compress::new(flate2::Compression::fast(), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    out.clear();
    out.reserve(data.len() + data.len() / 16 + 1024);
    loop {
        let done = c.total_in() as usize;
        c.compress_vec(&data[done..], out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // The flush is complete once all input is in and the output buffer was not filled.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(());
        }
        out.reserve(64 * 1024);
    }
}

/// Compresses `input` into `output` as one gzip member, on `threads` threads, and returns
/// `output`. The bytes do not depend on `threads`.
pub fn gzip_parallel<R: Read, W: Write>(
    mut input: R,
    mut output: W,
    threads: usize,
) -> io::Result<W> {
    let threads = threads.max(1);
    // gzip header: no name, mtime 0, "fastest" flag, unknown OS.
    output.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255])?;
    let mut crc = Crc::new();
    std::thread::scope(|s| -> io::Result<()> {
        let mut to_workers = Vec::new();
        let mut from_workers = Vec::new();
        for _ in 0..threads {
            let (jtx, jrx) = mpsc::sync_channel::<Job>(2);
            let (dtx, drx) = mpsc::sync_channel::<io::Result<Done>>(2);
            s.spawn(move || {
                for job in jrx {
                    let mut deflated = Vec::new();
                    let r = deflate_block(&job, &mut deflated).map(|()| {
                        let mut crc = Crc::new();
                        crc.update(&job.data);
                        Done {
                            deflated,
                            crc,
                            data: job.data,
                        }
                    });
                    if dtx.send(r).is_err() {
                        return;
                    }
                }
            });
            to_workers.push(jtx);
            from_workers.push(drx);
        }
        // Jobs go round-robin, so results come back in order by reading the workers in turn.
        let mut sent = 0usize;
        let mut received = 0usize;
        let mut dict: Vec<u8> = Vec::new();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut eof = false;
        let window = threads * 2;
        loop {
            while !eof && sent - received < window {
                let mut data = spare.pop().unwrap_or_default();
                data.resize(GZIP_BLOCK, 0);
                let n = read_full(&mut input, &mut data)?;
                data.truncate(n);
                if n == 0 {
                    eof = true;
                    break;
                }
                let next_dict = data[n.saturating_sub(DICT)..].to_vec();
                let job = Job {
                    dict: std::mem::replace(&mut dict, next_dict),
                    data,
                };
                to_workers[sent % threads]
                    .send(job)
                    .map_err(|_| io::Error::other("gzip worker stopped"))?;
                sent += 1;
                if n < GZIP_BLOCK {
                    eof = true;
                }
            }
            if received == sent {
                break;
            }
            let done = from_workers[received % threads]
                .recv()
                .map_err(|_| io::Error::other("gzip worker stopped"))??;
            output.write_all(&done.deflated)?;
            crc.combine(&done.crc);
            spare.push(done.data);
            received += 1;
        }
        drop(to_workers);
        Ok(())
    })?;
    // An empty final stored block ends the deflate stream, then CRC32 and length mod 2^32.
    output.write_all(&[3, 0])?;
    output.write_all(&crc.sum().to_le_bytes())?;
    output.write_all(&crc.amount().to_le_bytes())?;
    Ok(output)
}

/// Options of `compress_layer`: how exports and pushes compress layers.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// Threads for gzip (default: all cores). The output does not depend on it.
    pub threads: usize,
    /// zstd level (default 3, as BuildKit).
    pub zstd_level: i32,
}

impl Default for CompressOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            zstd_level: 3,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MapRecord {
    digest: Digest,
    size: u64,
}

fn map_path(store: &ContentStore, c: Compression, diff_id: &Digest) -> std::path::PathBuf {
    store
        .state_dir()
        .join("compressed")
        .join(c.name())
        .join(format!("{}.json", diff_id.hex()))
}

/// The remembered compressed blob for an uncompressed layer, if it is still in the store.
pub fn lookup_compressed(
    store: &ContentStore,
    diff_id: &Digest,
    compression: Compression,
) -> Option<BlobInfo> {
    if compression == Compression::None {
        let size = store.size(diff_id).ok()?;
        return Some(BlobInfo {
            digest: *diff_id,
            size,
        });
    }
    let bytes = std::fs::read(map_path(store, compression, diff_id)).ok()?;
    let rec: MapRecord = serde_json::from_slice(&bytes).ok()?;
    (store.size(&rec.digest).ok()? == rec.size).then_some(BlobInfo {
        digest: rec.digest,
        size: rec.size,
    })
}

/// Compresses the uncompressed layer blob `diff_id` into a new blob, verifying the input and
/// hashing the output in the same pass, and remembers the result. A layer compressed before is
/// not compressed again.
pub fn compress_layer(
    store: &ContentStore,
    diff_id: &Digest,
    compression: Compression,
    opts: &CompressOptions,
) -> Result<BlobInfo, LayerError> {
    if compression == Compression::None {
        return Ok(BlobInfo {
            digest: *diff_id,
            size: store.size(diff_id)?,
        });
    }
    if let Some(hit) = lookup_compressed(store, diff_id, compression) {
        return Ok(hit);
    }
    let mut input = store.open_verified(diff_id)?;
    let writer = store.writer()?;
    let tmp = writer.temp_path().to_path_buf();
    // A corrupt input surfaces as the content error the verified reader carries.
    let wrap = |e: io::Error| LayerError::Content(unwrap_io_error(e, "compress into", tmp.clone()));
    let writer = if compression == Compression::Zstd {
        let mut enc = zstd::stream::write::Encoder::new(writer, opts.zstd_level).map_err(&wrap)?;
        io::copy(&mut input, &mut enc).map_err(&wrap)?;
        enc.finish().map_err(&wrap)?
    } else {
        gzip_parallel(input, writer, opts.threads).map_err(&wrap)?
    };
    let info = writer.commit(None)?;
    let dir = map_path(store, compression, diff_id);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            LayerError::Io(crate::report::IoError {
                op: "create directory",
                path: parent.to_path_buf(),
                source: e,
            })
        })?;
    }
    let rec = serde_json::to_vec(&MapRecord {
        digest: info.digest,
        size: info.size,
    })
    .map_err(|e| {
        LayerError::Io(crate::report::IoError {
            op: "encode",
            path: dir.clone(),
            source: e.into(),
        })
    })?;
    write_atomic(&dir, &rec)?;
    Ok(info)
}
