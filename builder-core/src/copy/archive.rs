//! `ADD` specifics: recognising local tar archives by content, decompressing them for the layer
//! applier that extracts them, and `--checksum` verification.
//!
//! BuildKit extracts a local `ADD` source when it decompresses (gzip, bzip2, xz, zstd, or none)
//! into something whose first tar header reads; otherwise the file is copied as is. kiln checks
//! the same for all five: the magic bytes pick the decompressor and the first 512 bytes it yields
//! must be a valid tar header, so a lone `file.txt.gz` is copied as is.
//!
//! The xz decoder only offers a push interface (it writes into a `Write`), so [`decompress`] runs
//! it on its own thread feeding a pipe; a decoding error reaches the reader when the pipe ends,
//! never as a silently truncated stream.
//!
//! Extraction itself is the layer applier's job (confinement, whiteouts, ownership): the caller
//! plugs it in through [`ArchiveExtractor`].

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::CopyError;
use super::source::open_source_file;
use crate::fsroot::Root;

/// A local archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// An uncompressed tar.
    Tar,
    /// gzip-compressed tar.
    Gzip,
    /// bzip2-compressed tar.
    Bzip2,
    /// xz-compressed tar.
    Xz,
    /// zstd-compressed tar.
    Zstd,
}

impl ArchiveKind {
    /// A stable name, used in digests and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tar => "tar",
            Self::Gzip => "tar+gzip",
            Self::Bzip2 => "tar+bzip2",
            Self::Xz => "tar+xz",
            Self::Zstd => "tar+zstd",
        }
    }
}

/// Extracts an `ADD` archive into the destination (wired to the layer applier by the caller).
pub trait ArchiveExtractor: Sync {
    /// Extracts the uncompressed tar stream `tar` into the directory `dest_dir` of `dest`
    /// (created already), giving every entry `owner` when set. Returns the paths written,
    /// relative to `dest`'s root.
    fn extract(
        &self,
        dest: &Root,
        dest_dir: &Path,
        tar: &mut dyn Read,
        owner: Option<(u32, u32)>,
    ) -> Result<Vec<PathBuf>, String>;
}

/// Whether the 512-byte block is a tar header: not all zero and with a valid checksum.
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 || block[..512].iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let Ok(want) = u64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u64 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u64
            }
        })
        .sum();
    // Some historic tars summed signed bytes.
    let signed: i64 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as i8 as i64
            }
        })
        .sum();
    want == sum || want as i64 == signed
}

fn read_up_to(r: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Classifies the regular file `path` of `root`: `Some` when `ADD` extracts it.
pub fn detect_archive(root: &Root, path: &Path) -> Result<Option<ArchiveKind>, CopyError> {
    let io = |source| CopyError::Io {
        op: "read",
        root: root.path().to_path_buf(),
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_source_file(root, path)?;
    let head = read_up_to(&mut file, 512).map_err(io)?;
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        ArchiveKind::Gzip
    } else if head.starts_with(b"BZh") {
        ArchiveKind::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ArchiveKind::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArchiveKind::Zstd
    } else {
        return Ok(is_tar_header(&head).then_some(ArchiveKind::Tar));
    };
    let file = open_source_file(root, path)?;
    let Ok(mut reader) = decompress(kind, file) else {
        return Ok(None);
    };
    match read_up_to(&mut *reader, 512) {
        Ok(block) if is_tar_header(&block) => Ok(Some(kind)),
        _ => Ok(None),
    }
}

/// The uncompressed tar stream of an archive.
pub fn decompress(
    kind: ArchiveKind,
    file: std::fs::File,
) -> Result<Box<dyn Read + Send>, std::io::Error> {
    Ok(match kind {
        ArchiveKind::Tar => Box::new(file),
        ArchiveKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            file,
        ))),
        ArchiveKind::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
        ArchiveKind::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(
            file,
        ))),
        ArchiveKind::Xz => Box::new(XzReader::spawn(file)?),
    })
}

/// The decompressed bytes of an xz stream, decoded on a helper thread into a pipe.
struct XzReader {
    pipe: std::io::PipeReader,
    decoder: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl XzReader {
    fn spawn(file: std::fs::File) -> std::io::Result<Self> {
        let (pipe, mut writer) = std::io::pipe()?;
        let decoder = std::thread::Builder::new()
            .name("kiln-xz".to_string())
            .spawn(move || {
                let mut input = std::io::BufReader::new(file);
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut writer);
                match lzma_rs::xz_decompress(&mut input, &mut out) {
                    Ok(()) => std::io::Write::flush(&mut out),
                    // The reader went away (it read what it needed): not a decoding error.
                    Err(lzma_rs::error::Error::IoError(e))
                        if e.kind() == std::io::ErrorKind::BrokenPipe =>
                    {
                        Ok(())
                    }
                    Err(lzma_rs::error::Error::IoError(e)) => Err(e),
                    Err(e) => Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("xz: {e}", e = crate::report::chain(&e)),
                    )),
                }
            })?;
        Ok(XzReader {
            pipe,
            decoder: Some(decoder),
        })
    }
}

impl Read for XzReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0
            && !buf.is_empty()
            && let Some(decoder) = self.decoder.take()
        {
            // End of the pipe: the stream is complete only if the decoder says so.
            match decoder.join() {
                Ok(result) => result?,
                Err(_) => {
                    return Err(std::io::Error::other("the xz decoder thread panicked"));
                }
            }
        }
        Ok(n)
    }
}

/// Checks `--checksum=sha256:<hex>` against the content read from `reader`.
#[cfg_attr(not(test), allow(dead_code))] // ADD --checksum checks downloads as they stream
pub fn verify_checksum(
    source: &str,
    expected: &str,
    reader: &mut dyn Read,
) -> Result<(), CopyError> {
    let mismatch = |actual: String| CopyError::Checksum {
        source_path: source.to_string(),
        expected: expected.to_string(),
        actual,
    };
    let Some(hex_part) = expected.strip_prefix("sha256:") else {
        return Err(mismatch("an unsupported digest algorithm".to_string()));
    };
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(mismatch("a malformed expected digest".to_string()));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| CopyError::Io {
            op: "read",
            root: PathBuf::new(),
            path: PathBuf::from(source),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let actual = format!("sha256:{}", hex::encode(h.finalize()));
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(mismatch(actual))
    }
}
