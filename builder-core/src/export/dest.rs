//! Where a tar export goes (`-o type=oci|docker|tar,dest=X`, `kiln save -o X`).
//!
//! Only a regular file (or a missing path) is replaced, and atomically: a temp file in the same
//! directory, fsync, rename, fsync of the directory. A character device or a FIFO is opened and
//! written into, never replaced (`dest=/dev/null` leaves `/dev/null` alone; a FIFO feeds its
//! reader). A symlink is followed and its target gets the same rules; the link stays a link.
//! `-` is standard output. A directory, a socket or a block device is an error naming the path.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many symlinks a destination may go through (Linux's own limit).
const MAX_LINKS: usize = 40;

/// A destination that cannot be written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum DestError {
    /// A filesystem operation on the destination failed.
    #[error(transparent)]
    #[diagnostic(code(kiln::export::dest_io))]
    Io(#[from] crate::report::IoError),
    /// The destination is a directory, a socket or a block device.
    #[error("cannot write an archive to {}{}: it is {what}", dest.display(), via.as_ref().map(|p| format!(" (a symlink to {})", p.display())).unwrap_or_default())]
    #[diagnostic(
        code(kiln::export::dest_kind),
        help("name a regular file, a device such as /dev/null, a FIFO, or - for standard output")
    )]
    NotAFile {
        /// The destination as given.
        dest: PathBuf,
        /// The path its symlinks lead to, when different.
        via: Option<PathBuf>,
        /// What it is.
        what: &'static str,
    },
    /// The destination goes through too many symlinks.
    #[error("cannot write {}: more than {MAX_LINKS} symlinks", dest.display())]
    #[diagnostic(code(kiln::export::dest_links))]
    TooManyLinks {
        /// The destination as given.
        dest: PathBuf,
    },
    /// A device or FIFO was swapped for something else while it was opened.
    #[error("cannot write an archive to {}: it changed while being opened", path.display())]
    #[diagnostic(code(kiln::export::dest_changed))]
    Changed {
        /// The path.
        path: PathBuf,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DestError {
    let path = path.to_path_buf();
    move |source| DestError::Io(crate::report::IoError { op, path, source })
}

/// A destination, resolved.
#[derive(Debug)]
pub enum Dest {
    /// `-`.
    Stdout,
    /// A character device or FIFO, opened for writing.
    Stream(File, PathBuf),
    /// A regular file or a missing path, to be replaced atomically.
    Replace(PathBuf),
}

/// Follows `dest` through its symlinks and decides how to write it.
pub(crate) fn resolve(dest: &Path) -> Result<Dest, DestError> {
    if dest.as_os_str() == "-" {
        return Ok(Dest::Stdout);
    }
    let mut path = dest.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Dest::Replace(path)),
            Err(e) => return Err(io_err("write", &path)(e)),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io_err("read the symlink", &path))?;
            path = match path.parent() {
                Some(parent) if target.is_relative() => parent.join(target),
                _ => target,
            };
            continue;
        }
        if ft.is_file() {
            return Ok(Dest::Replace(path));
        }
        if ft.is_char_device() || ft.is_fifo() {
            return open_stream(path);
        }
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a block device"
        };
        return Err(DestError::NotAFile {
            dest: dest.to_path_buf(),
            via: (dest != path).then_some(path),
            what,
        });
    }
    Err(DestError::TooManyLinks {
        dest: dest.to_path_buf(),
    })
}

/// Opens a device or FIFO for writing, without following a symlink swapped in since it was
/// looked at, and checks it is still one.
fn open_stream(path: PathBuf) -> Result<Dest, DestError> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(&path)
        .map_err(io_err("open for writing", &path))?;
    let ft = file.metadata().map_err(io_err("stat", &path))?.file_type();
    if !(ft.is_char_device() || ft.is_fifo()) {
        return Err(DestError::Changed { path });
    }
    Ok(Dest::Stream(file, path))
}

/// Writes a file through a temp file beside it (mode 0644), fsynced and renamed into place only
/// when complete; the directory is fsynced after the rename. `write`'s own error type must take
/// a [`DestError`].
pub(crate) fn write_file_atomically<E: From<DestError>>(
    dest: &Path,
    write: impl FnOnce(File) -> Result<File, E>,
) -> Result<(), E> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Readable by others like any file a command writes (a temp file would be 0600).
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(io_err("create a file in", dir))?;
    let (file, path) = tmp.into_parts();
    let file = write(file)?;
    file.sync_all().map_err(io_err("fsync", &path))?;
    drop(file);
    path.persist(dest)
        .map_err(|e| io_err("write", dest)(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))?;
    Ok(())
}

/// Writes a tar (or any stream) to `dest` by the rules of this module. `write` gets a buffered
/// writer and returns it when done; it is flushed here.
pub fn write_stream<E: From<DestError>>(
    dest: &Path,
    write: impl FnOnce(Box<dyn Write + Send>) -> Result<Box<dyn Write + Send>, E>,
) -> Result<(), E> {
    match resolve(dest)? {
        Dest::Stdout => {
            let out = io::BufWriter::new(io::stdout());
            write(Box::new(out))?
                .flush()
                .map_err(|e| io_err("write", Path::new("standard output"))(e).into())
        }
        Dest::Stream(file, path) => write(Box::new(io::BufWriter::new(file)))?
            .flush()
            .map_err(|e| io_err("write", &path)(e).into()),
        Dest::Replace(path) => write_file_atomically(&path, |f: File| {
            // The writer gets its own handle of the file; the original is synced and renamed.
            let handle = f.try_clone().map_err(io_err("open", &path))?;
            write(Box::new(io::BufWriter::new(handle)))?
                .flush()
                .map_err(io_err("write", &path))?;
            Ok(f)
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resolves_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("f", &link).unwrap();
        let dangling = dir.path().join("d");
        std::os::unix::fs::symlink("missing", &dangling).unwrap();
        assert!(matches!(resolve(Path::new("-")).unwrap(), Dest::Stdout));
        assert!(matches!(resolve(&file).unwrap(), Dest::Replace(p) if p == file));
        assert!(matches!(resolve(&link).unwrap(), Dest::Replace(p) if p == file));
        assert!(
            matches!(resolve(&dangling).unwrap(), Dest::Replace(p) if p == dir.path().join("missing"))
        );
        assert!(matches!(
            resolve(Path::new("/dev/null")).unwrap(),
            Dest::Stream(_, _)
        ));
        let err = resolve(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(resolve(&a).unwrap_err().to_string().contains("symlinks"));
    }
}
