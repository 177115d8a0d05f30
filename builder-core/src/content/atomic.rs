//! Atomic replacement of small files: write a temp file beside the target, fsync it (unless the
//! file is only a hint, see [`write_atomic_unsynced`]), rename it over
//! the target, fsync the directory. Readers see the old or the new content, never a torn file, and a
//! crash leaves at most a stray temp file (named `.tmp-*`, which readers ignore).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::error::{ContentError, Result};

/// Replaces `path` with `bytes` atomically and durably. The parent directory must exist.
///
/// The temp file is locked (`flock`) while it is written, so [`sweep_abandoned_temps`] can tell
/// a live writer's file from one a killed process left. A sweep that deletes the file in the
/// instant between its creation and the lock makes the rename fail; the write is then redone.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically but not durably: readers see the old or the new
/// content, and a crash of the machine may leave either, no file, or an empty or torn one. Only
/// for hints whose readers check what they read and take anything else as no hint (stamps of
/// verified blobs, the previous results of COPY steps): two syncs cost more than a small step.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(|e| ContentError::io("create temp file in", dir, e))?;
        tmp.as_file()
            .lock()
            .map_err(|e| ContentError::io("lock", tmp.path().to_path_buf(), e))?;
        tmp.write_all(bytes)
            .map_err(|e| ContentError::io("write", tmp.path().to_path_buf(), e))?;
        if durable {
            tmp.as_file()
                .sync_all()
                .map_err(|e| ContentError::io("fsync", tmp.path().to_path_buf(), e))?;
        }
        match tmp.persist(path) {
            Ok(_) if durable => return fsync_dir(dir),
            Ok(_) => return Ok(()),
            Err(e) if e.error.kind() == std::io::ErrorKind::NotFound && attempt < 3 => continue,
            Err(e) => return Err(ContentError::io("rename into place", path, e.error)),
        }
    }
}

/// Removes the `.tmp-*` files in `dir` that no live [`write_atomic`] holds: what killed
/// processes left. Returns how many were removed.
pub fn sweep_abandoned_temps(dir: &Path) -> usize {
    let mut removed = 0;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if !e.file_name().as_encoded_bytes().starts_with(b".tmp-") {
            continue;
        }
        let Ok(file) = File::open(e.path()) else {
            continue;
        };
        if file.try_lock().is_ok() && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Makes a directory's entries (a rename, a new file) durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ContentError::io("fsync directory", dir, e))
}

/// Creates a directory and its parents.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| ContentError::io("create directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_without_leaving_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("missing/f"), b"x").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
