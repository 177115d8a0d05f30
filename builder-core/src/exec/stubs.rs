//! Mount points a run needs in its rootfs, created before the run and removed after it.
//!
//! A mount needs an existing file or directory to mount on. When the image lacks one (`/proc` in a
//! `FROM scratch` image, `/etc/hosts`, a secret's target), it is created here and removed after the
//! run if it is still empty, and its parent directory gets its modification time back, so the step's
//! layer does not record mount points nobody asked for (BuildKit does the same).
//!
//! Paths are resolved inside the rootfs ([`Root`]); a dangling symlink on the way (an image's
//! `/etc/hosts -> /host/hosts`) is followed inside the rootfs and the stub is created at its target,
//! never on the host.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Timespec};

use crate::fsroot::{FsError, FsResult, Root, clean, clean_components};

/// What kind of mount point a target needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

#[derive(Debug)]
struct Created {
    path: PathBuf,
    kind: Kind,
    parent_before: Timespec,
    parent_after: Timespec,
}

/// The stubs created for one run; removed on [`Stubs::cleanup`] or drop.
#[derive(Debug)]
pub(crate) struct Stubs {
    root: Root,
    created: Vec<Created>,
}

const MAX_LINKS: u32 = 40;

fn mtime(st: &rustix::fs::Stat) -> Timespec {
    Timespec {
        tv_sec: st.st_mtime as _,
        tv_nsec: st.st_mtime_nsec as _,
    }
}

impl Stubs {
    /// Makes sure every target exists in the rootfs at `rootfs`, creating what is missing.
    pub(crate) fn create(rootfs: &Path, targets: &[(PathBuf, Kind)]) -> FsResult<Self> {
        let mut stubs = Stubs {
            root: Root::open(rootfs)?,
            created: Vec::new(),
        };
        for (target, kind) in targets {
            stubs.ensure(&clean(target), *kind, 0)?;
        }
        Ok(stubs)
    }

    fn ensure(&mut self, rel: &Path, kind: Kind, depth: u32) -> FsResult<()> {
        if depth > MAX_LINKS {
            return Err(loop_err(&self.root, rel));
        }
        let comps = clean_components(rel);
        let mut prefix = PathBuf::new();
        for (i, comp) in comps.iter().enumerate() {
            prefix.push(comp);
            let last = i + 1 == comps.len();
            match self.root.stat(&prefix) {
                Ok(_) => continue,
                Err(e) if !e.is_not_found() => return Err(e),
                Err(_) => {}
            }
            // Missing, or a dangling symlink: follow the link inside the root with the rest.
            if let Ok(st) = self.root.lstat(&prefix)
                && FileType::from_raw_mode(st.st_mode) == FileType::Symlink
            {
                let target = self.root.read_link(&prefix)?;
                let base = prefix.parent().unwrap_or(Path::new(""));
                let mut next = if target.is_absolute() {
                    target
                } else {
                    base.join(target)
                };
                for rest in &comps[i + 1..] {
                    next.push(rest);
                }
                return self.ensure(&clean(&next), kind, depth + 1);
            }
            let k = if last { kind } else { Kind::Dir };
            self.create_one(&prefix, k)?;
        }
        Ok(())
    }

    fn create_one(&mut self, rel: &Path, kind: Kind) -> FsResult<()> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let before = mtime(&self.root.stat(parent)?);
        match kind {
            Kind::Dir => {
                self.root.create_dir(rel, 0o755)?;
            }
            Kind::File => {
                self.root.create_file(rel, 0o644)?;
            }
        }
        let after = mtime(&self.root.stat(parent)?);
        self.created.push(Created {
            path: rel.to_path_buf(),
            kind,
            parent_before: before,
            parent_after: after,
        });
        Ok(())
    }

    /// Removes the stubs that are still empty, newest first, restoring their parents' times.
    pub(crate) fn cleanup(mut self) {
        self.remove_all();
    }

    fn remove_all(&mut self) {
        while let Some(c) = self.created.pop() {
            if let Err(e) = self.remove_one(&c) {
                tracing::warn!(path = %c.path.display(), error = %crate::report::chain(&e), "cannot remove mount point stub");
            }
        }
    }

    fn remove_one(&self, c: &Created) -> FsResult<()> {
        let (parent, name) = self.root.parent(&c.path, false)?;
        let Some(name) = name else { return Ok(()) };
        let st = match rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(fs_error(&self.root, "stat", &c.path, e.into())),
        };
        // Only undo our own change to the parent's time: if the run touched the directory, its
        // time is the run's.
        let pst = rustix::fs::fstat(&parent)
            .map_err(|e| fs_error(&self.root, "stat", &c.path, e.into()))?;
        let untouched = {
            let t = mtime(&pst);
            t.tv_sec == c.parent_after.tv_sec && t.tv_nsec == c.parent_after.tv_nsec
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        let res = match (c.kind, ft) {
            (Kind::Dir, FileType::Directory) => {
                rustix::fs::unlinkat(&parent, &name, AtFlags::REMOVEDIR)
            }
            (Kind::File, FileType::RegularFile) if st.st_size == 0 => {
                rustix::fs::unlinkat(&parent, &name, AtFlags::empty())
            }
            _ => return Ok(()),
        };
        match res {
            Ok(()) => {}
            // The run put something in it: it is the step's now.
            Err(rustix::io::Errno::NOTEMPTY) | Err(rustix::io::Errno::EXIST) => return Ok(()),
            Err(e) => return Err(fs_error(&self.root, "remove", &c.path, e.into())),
        }
        if untouched {
            let times = rustix::fs::Timestamps {
                last_access: c.parent_before,
                last_modification: c.parent_before,
            };
            rustix::fs::futimens(&parent, &times)
                .map_err(|e| fs_error(&self.root, "set times", &c.path, e.into()))?;
        }
        Ok(())
    }
}

impl Drop for Stubs {
    fn drop(&mut self) {
        self.remove_all();
    }
}

fn fs_error(root: &Root, op: &'static str, path: &Path, source: io::Error) -> FsError {
    FsError {
        op,
        root: root.path().to_path_buf(),
        path: path.to_path_buf(),
        source,
    }
}

fn loop_err(root: &Root, path: &Path) -> FsError {
    fs_error(
        root,
        "create mount point",
        path,
        io::Error::from_raw_os_error(libc::ELOOP),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn creates_missing_and_removes_only_what_it_created() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root").unwrap();
        let old = filetime(r.join("etc"));
        let stubs = Stubs::create(
            r,
            &[
                ("/proc".into(), Kind::Dir),
                ("/etc/hosts".into(), Kind::File),
                ("/run/secrets/x".into(), Kind::File),
                ("/etc/passwd".into(), Kind::File),
            ],
        )
        .unwrap();
        assert!(r.join("proc").is_dir());
        assert!(r.join("etc/hosts").is_file());
        assert!(r.join("run/secrets/x").is_file());
        stubs.cleanup();
        assert!(!r.join("proc").exists());
        assert!(!r.join("etc/hosts").exists());
        assert!(!r.join("run").exists());
        assert_eq!(std::fs::read(r.join("etc/passwd")).unwrap(), b"root");
        assert_eq!(filetime(r.join("etc")), old);
    }

    #[test]
    fn keeps_stubs_the_run_filled() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let stubs = Stubs::create(r, &[("/data/cache".into(), Kind::Dir)]).unwrap();
        std::fs::write(r.join("data/keep"), "x").unwrap();
        drop(stubs);
        assert!(!r.join("data/cache").exists());
        assert!(r.join("data/keep").exists());
    }

    #[test]
    fn dangling_symlink_is_followed_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("etc")).unwrap();
        let host_target = outside.path().join("hosts");
        std::os::unix::fs::symlink(&host_target, r.join("etc/hosts")).unwrap();
        let stubs = Stubs::create(r, &[("/etc/hosts".into(), Kind::File)]).unwrap();
        assert!(!host_target.exists(), "created on the host");
        let inside = r.join(host_target.strip_prefix("/").unwrap());
        assert!(inside.is_file());
        assert!(r.join("etc/hosts").is_symlink());
        stubs.cleanup();
        assert!(!inside.exists());
        assert!(r.join("etc/hosts").is_symlink());
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/a", dir.path().join("a")).unwrap();
        let err = Stubs::create(dir.path(), &[("/a/x".into(), Kind::File)]).unwrap_err();
        assert_eq!(err.source.raw_os_error(), Some(libc::ELOOP));
    }

    fn filetime(p: PathBuf) -> (i64, i64) {
        let m = std::fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    }
}
