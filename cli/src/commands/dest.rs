//! Where a tar output (`kiln build -o type=oci|docker|tar,dest=X`, `kiln save -o X`) goes.
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

use miette::{IntoDiagnostic, WrapErr, miette};

/// How many symlinks a destination may go through (Linux's own limit).
const MAX_LINKS: usize = 40;

/// A destination, resolved.
#[derive(Debug)]
pub(crate) enum Dest {
    /// `-`.
    Stdout,
    /// A character device or FIFO, opened for writing.
    Stream(File, PathBuf),
    /// A regular file or a missing path, to be replaced atomically.
    Replace(PathBuf),
}

/// Follows `dest` through its symlinks and decides how to write it.
pub(crate) fn resolve(dest: &Path) -> miette::Result<Dest> {
    if dest.as_os_str() == "-" {
        return Ok(Dest::Stdout);
    }
    let mut path = dest.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Dest::Replace(path)),
            Err(e) => {
                return Err(e)
                    .into_diagnostic()
                    .wrap_err_with(|| format!("cannot write {}", path.display()));
            }
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot read the symlink {}", path.display()))?;
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
        return Err(refuse(dest, &path, what));
    }
    Err(miette!(
        "cannot write {}: more than {MAX_LINKS} symlinks",
        dest.display()
    ))
}

fn refuse(dest: &Path, path: &Path, what: &str) -> miette::Report {
    if dest == path {
        miette!(
            "cannot write an archive to {}: it is {what}",
            dest.display()
        )
    } else {
        miette!(
            "cannot write an archive to {} (a symlink to {}): it is {what}",
            dest.display(),
            path.display()
        )
    }
}

/// Opens a device or FIFO for writing, without following a symlink swapped in since it was
/// looked at, and checks it is still one.
fn open_stream(path: PathBuf) -> miette::Result<Dest> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(&path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot open {} for writing", path.display()))?;
    let ft = file
        .metadata()
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot stat {}", path.display()))?
        .file_type();
    if !(ft.is_char_device() || ft.is_fifo()) {
        return Err(miette!(
            "cannot write an archive to {}: it changed while being opened",
            path.display()
        ));
    }
    Ok(Dest::Stream(file, path))
}

/// Writes a file through a temp file beside it (mode 0644), fsynced and renamed into place only
/// when complete; the directory is fsynced after the rename.
pub(crate) fn write_file_atomically(
    dest: &Path,
    write: impl FnOnce(File) -> miette::Result<File>,
) -> miette::Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Readable by others like any file a command writes (a temp file would be 0600).
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create a file in {}", dir.display()))?;
    let (file, path) = tmp.into_parts();
    let file = write(file)?;
    file.sync_all()
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot fsync {}", path.display()))?;
    drop(file);
    path.persist(dest)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", dest.display()))?;
    kiln_builder_core::content::fsync_dir(dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot fsync {}", dir.display()))?;
    Ok(())
}

/// Writes a tar (or any stream) to `dest` by the rules of this module.
pub(crate) fn write_stream(
    dest: &Path,
    write: impl FnOnce(Box<dyn Write>) -> miette::Result<Box<dyn Write>>,
) -> miette::Result<()> {
    match resolve(dest)? {
        Dest::Stdout => {
            let out = io::BufWriter::new(io::stdout().lock());
            write(Box::new(out))?.flush().into_diagnostic()
        }
        Dest::Stream(file, path) => write(Box::new(io::BufWriter::new(file)))?
            .flush()
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display())),
        Dest::Replace(path) => write_file_atomically(&path, |f| {
            // The writer gets its own handle of the file; the original is synced and renamed.
            let handle = f.try_clone().into_diagnostic()?;
            write(Box::new(io::BufWriter::new(handle)))?
                .flush()
                .into_diagnostic()?;
            Ok(f)
        }),
    }
}

#[cfg(test)]
mod tests {
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
