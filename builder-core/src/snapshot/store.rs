//! The on-disk layout shared by both snapshotters: committed snapshots, locked temporary entries,
//! atomic commits and the cleanup of what a killed build left behind.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::mount::UnmountFlags;
use sha2::Digest;

use super::{SnapshotError, io_err};
use crate::fsroot::proc_fd_path;

/// Directory names inside a snapshot or temporary entry.
pub(crate) const FS: &str = "fs";
const KEY: &str = "key";
const PARENT: &str = "parent";
/// A committed snapshot whose tree is not complete yet: the caller's note of what is missing.
const PENDING: &str = "pending";
/// Where an overlay is mounted inside a temporary entry.
pub(crate) const MERGED: &str = "merged";
/// Where the kernel tells which boot this is.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

#[derive(Debug)]
pub(crate) struct Store {
    pub snapshots: PathBuf,
    pub tmp: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Creates the layout under `dir` and removes stale temporary entries.
    pub(crate) fn open(dir: &Path) -> Result<Self, SnapshotError> {
        let store = Store {
            snapshots: dir.join("snapshots"),
            tmp: dir.join("tmp"),
        };
        for d in [&store.snapshots, &store.tmp] {
            std::fs::create_dir_all(d).map_err(io_err("create directory", d))?;
        }
        store.clean_stale()?;
        store.forget_after_reboot(dir, Path::new(BOOT_ID))?;
        Ok(store)
    }

    /// Snapshot contents are never fsynced: overlay upper directories are mounted `volatile`
    /// and imports are written through the page cache, which is what makes a step's commit cheap
    /// (an overlay unmount otherwise syncs the whole filesystem). A crash of the machine can then
    /// leave a committed snapshot with lost data. Snapshots are derived from layer blobs, which
    /// are synced, so after a reboot (the kernel's boot id changed) every snapshot is dropped and
    /// made again from its layers when a build needs it. A process that dies loses nothing: its
    /// writes are in the page cache.
    fn forget_after_reboot(&self, dir: &Path, boot_id: &Path) -> Result<(), SnapshotError> {
        let Ok(boot) = std::fs::read_to_string(boot_id) else {
            // No procfs: reboots cannot be told apart, and nothing is dropped.
            return Ok(());
        };
        let boot = boot.trim();
        let marker = dir.join(".boot-id");
        if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == boot) {
            return Ok(());
        }
        // One process at a time decides, so two first builds after a boot do not both drop
        // snapshots the other has just made.
        let lock_path = dir.join(".boot-id.lock");
        let lock = File::create(&lock_path).map_err(io_err("create", &lock_path))?;
        lock.lock().map_err(io_err("lock", &lock_path))?;
        if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == boot) {
            return Ok(());
        }
        let rd = std::fs::read_dir(&self.snapshots).map_err(io_err("list", &self.snapshots))?;
        let mut dropped = 0;
        for e in rd.flatten() {
            let entry = self.temp()?;
            std::fs::remove_dir(&entry.dir).map_err(io_err("remove", &entry.dir))?;
            std::fs::rename(e.path(), &entry.dir).map_err(io_err("move away", &e.path()))?;
            // Dropping the entry deletes it.
            drop(entry);
            dropped += 1;
        }
        if dropped > 0 {
            tracing::info!(
                dropped,
                "new boot: snapshots will be made again from their layers"
            );
        }
        let tmp = dir.join(".boot-id.tmp");
        let written = File::create(&tmp).and_then(|mut f| {
            std::io::Write::write_all(&mut f, boot.as_bytes())?;
            f.sync_all()
        });
        written.map_err(io_err("write", &tmp))?;
        std::fs::rename(&tmp, &marker).map_err(io_err("rename", &marker))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", dir))?;
        Ok(())
    }

    /// The directory of the committed snapshot `key`.
    pub(crate) fn dir_of(&self, key: &str) -> PathBuf {
        let hash = sha2::Sha256::digest(key.as_bytes());
        self.snapshots.join(hex::encode(hash))
    }

    pub(crate) fn exists(&self, key: &str) -> bool {
        self.dir_of(key).join(FS).is_dir()
    }

    pub(crate) fn require(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let dir = self.dir_of(key);
        if dir.join(FS).is_dir() {
            Ok(dir)
        } else {
            Err(SnapshotError::NotFound {
                key: key.to_owned(),
            })
        }
    }

    pub(crate) fn parent(&self, key: &str) -> Result<Option<String>, SnapshotError> {
        let dir = self.require(key)?;
        let p = dir.join(PARENT);
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &p)(e)),
        }
    }

    /// The layer directories of `key` and its ancestors, `key`'s first.
    pub(crate) fn chain(&self, key: &str) -> Result<Vec<PathBuf>, SnapshotError> {
        let mut out = Vec::new();
        let mut next = Some(key.to_owned());
        while let Some(k) = next {
            out.push(self.require(&k)?.join(FS));
            next = self.parent(&k)?;
            if out.len() > 4096 {
                return Err(io_err("walk parents of", &self.dir_of(key))(
                    io::Error::other("parent chain loops"),
                ));
            }
        }
        Ok(out)
    }

    /// A fresh temporary entry, locked by this process until dropped.
    pub(crate) fn temp(&self) -> Result<TempEntry, SnapshotError> {
        let tmpfile = rustix::fs::open(
            &self.tmp,
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err("create lock in", &self.tmp)(e.into()))?;
        let lock = File::from(tmpfile);
        lock.lock().map_err(io_err("lock", &self.tmp))?;
        // The lock file gets its name only once locked, so a concurrent cleanup never sees it
        // unlocked; the directory is created after it and removed before it.
        loop {
            let id = format!(
                "{}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0)
            );
            let lock_path = self.tmp.join(format!("{id}.lock"));
            match rustix::fs::linkat(
                CWD,
                proc_fd_path(&lock.as_fd()),
                CWD,
                &lock_path,
                AtFlags::SYMLINK_FOLLOW,
            ) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(io_err("create", &lock_path)(e.into())),
            }
            let dir = self.tmp.join(&id);
            let entry = TempEntry {
                dir: dir.clone(),
                lock_path,
                _lock: lock,
                keep: false,
            };
            std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
            return Ok(entry);
        }
    }

    /// Moves a complete temporary entry (with `fs/`) into place as `key`. Returns whether it was
    /// placed; `false` when `key` existed already (the entry is then discarded).
    pub(crate) fn commit(
        &self,
        mut entry: TempEntry,
        key: &str,
        parent: Option<&str>,
    ) -> Result<bool, SnapshotError> {
        let kp = entry.dir.join(KEY);
        std::fs::write(&kp, key).map_err(io_err("write", &kp))?;
        if let Some(parent) = parent {
            let pp = entry.dir.join(PARENT);
            std::fs::write(&pp, parent).map_err(io_err("write", &pp))?;
        }
        let dest = self.dir_of(key);
        if dest.exists() {
            return Ok(false);
        }
        match std::fs::rename(&entry.dir, &dest) {
            Ok(()) => {
                entry.keep = true;
                Ok(true)
            }
            // Another build committed the same key first.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {
                Ok(false)
            }
            Err(e) => Err(io_err("rename into place", &dest)(e)),
        }
    }

    /// Writes the note of what the tree of a temporary entry still lacks, before its commit.
    pub(crate) fn set_pending(&self, entry: &TempEntry, note: &[u8]) -> Result<(), SnapshotError> {
        let p = entry.dir.join(PENDING);
        std::fs::write(&p, note).map_err(io_err("write", &p))
    }

    /// Completes the committed snapshot `key` when it carries a pending note: `fill` gets its
    /// tree and the note, and the note is removed once `fill` succeeded. Holds a lock on the
    /// note meanwhile, so concurrent callers fill once and all return when the tree is complete.
    pub(crate) fn complete(
        &self,
        key: &str,
        fill: super::CompleteFill<'_>,
    ) -> Result<(), SnapshotError> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.dir_of(key);
        let p = dir.join(PENDING);
        let mut file = match File::options().read(true).write(true).open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("open", &p)(e)),
        };
        file.lock().map_err(io_err("lock", &p))?;
        // Another process completed it while this one waited for the lock.
        if file.metadata().map_err(io_err("stat", &p))?.nlink() == 0 {
            return Ok(());
        }
        let mut note = Vec::new();
        file.read_to_end(&mut note).map_err(io_err("read", &p))?;
        let root = crate::fsroot::Root::open(dir.join(FS))?;
        fill(&root, &note).map_err(|source| SnapshotError::Fill {
            key: key.to_owned(),
            source,
        })?;
        std::fs::remove_file(&p).map_err(io_err("remove", &p))
    }

    /// Removes `key` by renaming it out of `snapshots/` first, so it disappears at once.
    pub(crate) fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let dir = self.require(key)?;
        let entry = self.temp()?;
        // Replace the empty temp directory with the snapshot; dropping the entry deletes it.
        std::fs::remove_dir(&entry.dir).map_err(io_err("remove", &entry.dir))?;
        std::fs::rename(&dir, &entry.dir).map_err(io_err("move away", &dir))?;
        drop(entry);
        Ok(())
    }

    /// The keys of all committed snapshots.
    pub(crate) fn keys(&self) -> Result<Vec<String>, SnapshotError> {
        let rd = std::fs::read_dir(&self.snapshots).map_err(io_err("list", &self.snapshots))?;
        Ok(rd
            .flatten()
            .filter(|e| e.path().join(FS).is_dir())
            .filter_map(|e| std::fs::read_to_string(e.path().join(KEY)).ok())
            .collect())
    }

    /// A committed child of `key`, if any.
    pub(crate) fn child_of(&self, key: &str) -> Result<Option<String>, SnapshotError> {
        let rd = std::fs::read_dir(&self.snapshots).map_err(io_err("list", &self.snapshots))?;
        for e in rd.flatten() {
            let mut parent = String::new();
            if File::open(e.path().join(PARENT))
                .and_then(|mut f| f.read_to_string(&mut parent))
                .is_ok()
                && parent == key
            {
                let child = std::fs::read_to_string(e.path().join(KEY)).unwrap_or_default();
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// Removes temporary entries no live process holds.
    fn clean_stale(&self) -> Result<(), SnapshotError> {
        let rd = std::fs::read_dir(&self.tmp).map_err(io_err("list", &self.tmp))?;
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            if let Some(id) = name.strip_suffix(".lock") {
                let lock_path = self.tmp.join(name);
                let Ok(f) = File::open(&lock_path) else {
                    continue;
                };
                if f.try_lock().is_err() {
                    continue; // a live build owns it
                }
                let dir = self.tmp.join(id);
                if remove_entry_dir(&dir) {
                    let _ = std::fs::remove_file(&lock_path);
                }
            } else if !names.contains(&format!("{name}.lock")) {
                // Its lock was removed (the owner was cleaning up when it died).
                remove_entry_dir(&self.tmp.join(name));
            }
        }
        Ok(())
    }
}

/// Unmounts a leftover overlay and removes the directory. Returns whether it is gone; a mount that
/// cannot be unmounted keeps the directory (deleting through it would damage its layers).
fn remove_entry_dir(dir: &Path) -> bool {
    let merged = dir.join(MERGED);
    if is_mount_point(&merged) {
        let _ = rustix::mount::unmount(&merged, UnmountFlags::DETACH);
        if is_mount_point(&merged) {
            tracing::warn!(path = %merged.display(), "cannot unmount leftover snapshot mount");
            return false;
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %crate::report::chain(&e), "cannot remove leftover snapshot");
            false
        }
    }
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let (Ok(st), Some(parent)) = (rustix::fs::lstat(path), path.parent()) else {
        return false;
    };
    match rustix::fs::lstat(parent) {
        Ok(pst) => st.st_dev != pst.st_dev || st.st_ino == pst.st_ino,
        Err(_) => false,
    }
}

/// A directory under `tmp/` owned by this process (its lock file is locked); removed on drop
/// unless it was moved into place.
#[derive(Debug)]
pub(crate) struct TempEntry {
    pub dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
    keep: bool,
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        if !self.keep && !remove_entry_dir(&self.dir) {
            // Keep the lock file too, so a later cleanup retries.
            return;
        }
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// A writable rootfs prepared by a [`super::Snapshotter`]. Dropping it discards it.
#[derive(Debug)]
pub struct Active {
    pub(crate) root: PathBuf,
    pub(crate) parent: Option<String>,
    pub(crate) entry: Option<TempEntry>,
    /// The overlay mount point, when mounted.
    pub(crate) mounted: Option<PathBuf>,
    /// The fuse-overlayfs process serving the mount, when it is one.
    pub(crate) daemon: Option<super::fuse::Daemon>,
    /// Where the current state of every changed entry can be read without the mount (the
    /// overlay upper directory), when that is not [`Active::root`].
    pub(crate) own: Option<PathBuf>,
}

impl Active {
    /// The rootfs directory to run steps in and read changed files from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory to read the entries [`super::Snapshotter::changes`] names from: the tree
    /// holding only this snapshot's own entries when the snapshotter keeps one (overlayfs: the
    /// upper directory, read without going through the mount), else [`Active::root`]. Entries
    /// there have the type, mode, owner, times, xattrs (besides the snapshotter's own) and
    /// content the root shows.
    pub fn changes_root(&self) -> &Path {
        self.own.as_deref().unwrap_or(&self.root)
    }

    /// The parent snapshot's key.
    pub fn parent(&self) -> Option<&str> {
        self.parent.as_deref()
    }

    /// Unmounts the overlay, if any.
    pub(crate) fn unmount(&mut self) -> Result<(), SnapshotError> {
        if let Some(d) = self.daemon.take() {
            self.mounted = None;
            return d.unmount();
        }
        if let Some(m) = self.mounted.take() {
            rustix::mount::unmount(&m, UnmountFlags::empty())
                .or_else(|_| rustix::mount::unmount(&m, UnmountFlags::DETACH))
                .map_err(|e| io_err("unmount", &m)(e.into()))?;
        }
        Ok(())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!(error = %crate::report::chain(&e), "cannot unmount active snapshot");
        }
    }
}

/// A read-only view of a committed snapshot. Dropping it releases the mount, if one was needed.
#[derive(Debug)]
pub struct View {
    pub(crate) path: PathBuf,
    /// Held so the mount lives as long as the view.
    pub(crate) _mount: Option<Active>,
}

impl View {
    /// The tree's root directory; nothing may be written under it.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_new_boot_drops_the_snapshots_and_an_old_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot_id");
        std::fs::write(&boot, "first-boot\n").unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.forget_after_reboot(dir.path(), &boot).unwrap();
        let entry = store.temp().unwrap();
        std::fs::create_dir(entry.dir.join(FS)).unwrap();
        std::fs::write(entry.dir.join(FS).join("file"), "data").unwrap();
        assert!(store.commit(entry, "k1", None).unwrap());
        assert!(store.exists("k1"));

        // Same boot: kept.
        store.forget_after_reboot(dir.path(), &boot).unwrap();
        assert!(store.exists("k1"));
        // Another boot: dropped, nothing left in the temporary area, the marker updated.
        std::fs::write(&boot, "second-boot\n").unwrap();
        store.forget_after_reboot(dir.path(), &boot).unwrap();
        assert!(!store.exists("k1"));
        assert_eq!(std::fs::read_dir(&store.snapshots).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&store.tmp).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".boot-id")).unwrap(),
            "second-boot"
        );
    }
}
