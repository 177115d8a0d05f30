//! Scratch directories that the next process can recognise as abandoned.
//!
//! A RUN step needs a few private files (`/etc/hosts`, secrets, heredoc scripts) for as long as it
//! runs. If kiln is killed meanwhile, nothing removes them. So each scratch directory
//! `<prefix>XXXXXX` has a lock file `<prefix>XXXXXX.lock` beside it, created and locked *before*
//! the directory, and kept locked for the directory's life. [`sweep`] removes every directory
//! whose lock it can take (its owner is gone) and every directory without a lock file (which only
//! happens when its owner is gone). An owner that finds
//! its lock file deleted before it locked it (a sweep raced it) starts again with a new name.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

const LOCK_SUFFIX: &str = ".lock";

/// A directory removed when dropped, locked while it lives.
#[derive(Debug)]
pub struct ScratchDir {
    dir: PathBuf,
    // Removed (and unlocked) after the directory, in `Drop`.
    lock: Option<tempfile::NamedTempFile>,
}

impl ScratchDir {
    /// Creates a locked scratch directory `<parent>/<prefix>XXXXXX`.
    pub fn new_in(parent: &Path, prefix: &str) -> io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(parent)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let lock = tempfile::Builder::new()
                .prefix(prefix)
                .suffix(LOCK_SUFFIX)
                .tempfile_in(parent)?;
            lock.as_file().lock()?;
            if lock.as_file().metadata()?.nlink() == 0 && attempts < 8 {
                // A sweep removed it between its creation and our lock: take another name.
                continue;
            }
            let name = lock.path().to_string_lossy();
            let dir = PathBuf::from(name.strip_suffix(LOCK_SUFFIX).unwrap_or(&name).to_string());
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    return Ok(ScratchDir {
                        dir,
                        lock: Some(lock),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Dropping the NamedTempFile removes the lock file and releases the lock.
        self.lock.take();
    }
}

/// Removes the scratch directories `<parent>/<prefix>*` whose owner is gone, and their lock files.
/// Errors are ignored: a leftover is only disk space, retried at the next sweep. Returns how many
/// directories it removed.
pub fn sweep(parent: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        if let Some(stem) = name.strip_suffix(LOCK_SUFFIX) {
            let Ok(lock) = File::open(&path) else {
                continue;
            };
            if lock.try_lock().is_ok() {
                // Owner gone: remove its directory, then (still holding the lock) the lock file,
                // so an owner that locks it later sees it deleted and starts over.
                if std::fs::remove_dir_all(parent.join(stem)).is_ok() {
                    removed += 1;
                }
                let _ = std::fs::remove_file(&path);
            }
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push((path, name));
        }
    }
    // A directory is only ever created after its lock file, and the lock file only goes after the
    // directory: one without a lock file belongs to nobody.
    for (dir, name) in dirs {
        if !parent.join(format!("{name}{LOCK_SUFFIX}")).exists()
            && std::fs::remove_dir_all(&dir).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_abandoned_directories() {
        let parent = tempfile::tempdir().unwrap();
        let live = ScratchDir::new_in(parent.path(), "run-").unwrap();
        std::fs::write(live.path().join("hosts"), b"x").unwrap();
        // Abandoned: a lock file nobody holds, with its directory.
        let dead = parent.path().join("run-dead");
        std::fs::create_dir(&dead).unwrap();
        File::create(parent.path().join("run-dead.lock")).unwrap();
        std::fs::write(dead.join("secret"), b"s").unwrap();
        // Abandoned: a directory whose lock file is gone; and a lock file whose owner died before
        // creating the directory.
        std::fs::create_dir(parent.path().join("run-orphan")).unwrap();
        File::create(parent.path().join("run-early.lock")).unwrap();
        // Not ours.
        std::fs::create_dir(parent.path().join("cache-mounts")).unwrap();

        assert_eq!(sweep(parent.path(), "run-"), 2);
        assert!(!dead.exists() && !parent.path().join("run-dead.lock").exists());
        assert!(!parent.path().join("run-orphan").exists());
        assert!(!parent.path().join("run-early.lock").exists());
        assert!(live.path().join("hosts").exists());
        assert!(parent.path().join("cache-mounts").exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(parent.path()).unwrap().count(),
            1,
            "only cache-mounts is left"
        );
    }
}
