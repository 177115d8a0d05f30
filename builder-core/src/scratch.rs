//! Scratch directories that the next process can recognise as abandoned.
//!
//! A RUN step needs a few private files (`/etc/hosts`, secrets, heredoc scripts) for as long as it
//! runs. If kiln is killed meanwhile, nothing removes them. Each scratch directory therefore holds
//! a `.lock` file that its owner keeps locked for the directory's life: [`sweep`] removes exactly
//! the directories whose lock it can take (their owner is gone). An owner that finds its lock file
//! deleted before it locked it (a sweep raced it) starts again with a new directory.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const LOCK: &str = ".lock";

/// A directory removed when dropped, locked while it lives.
#[derive(Debug)]
pub struct ScratchDir {
    // Field order matters: the directory is removed before the lock is released.
    dir: tempfile::TempDir,
    _lock: File,
}

impl ScratchDir {
    /// Creates a locked scratch directory `<parent>/<prefix>XXXXXX`.
    pub fn new_in(parent: &Path, prefix: &str) -> io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(parent)?;
        let mut attempts = 0;
        loop {
            let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
            let lock = File::create(dir.path().join(LOCK))?;
            lock.lock()?;
            attempts += 1;
            if lock.metadata()?.nlink() > 0 || attempts >= 8 {
                return Ok(ScratchDir { dir, _lock: lock });
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the scratch directories `<parent>/<prefix>*` whose owner is gone. A directory without
/// a lock file is left alone for a minute (its owner may be about to create it). Errors are
/// ignored: a leftover is only disk space, retried at the next sweep.
pub fn sweep(parent: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(prefix)
            || !entry.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let dir: PathBuf = entry.path();
        let lock_path = dir.join(LOCK);
        match File::open(&lock_path) {
            Ok(lock) => {
                if lock.try_lock().is_ok() {
                    // Unlink the lock while holding it, so an owner that locks it later sees it
                    // gone and starts over.
                    let _ = std::fs::remove_file(&lock_path);
                    if std::fs::remove_dir_all(&dir).is_ok() {
                        removed += 1;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                    SystemTime::now().duration_since(t).unwrap_or_default()
                        > Duration::from_secs(60)
                });
                if old && std::fs::remove_dir_all(&dir).is_ok() {
                    removed += 1;
                }
            }
            Err(_) => {}
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
        // An abandoned one: its lock file exists but nobody holds it.
        let dead = parent.path().join("run-dead");
        std::fs::create_dir(&dead).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        std::fs::write(dead.join("secret"), b"s").unwrap();
        // A fresh one whose owner has not created its lock yet, and something else entirely.
        std::fs::create_dir(parent.path().join("run-new")).unwrap();
        std::fs::create_dir(parent.path().join("cache-mounts")).unwrap();

        assert_eq!(sweep(parent.path(), "run-"), 1);
        assert!(!dead.exists());
        assert!(live.path().join("hosts").exists());
        assert!(parent.path().join("run-new").exists());
        assert!(parent.path().join("cache-mounts").exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
    }
}
