//! Carries out a mount plan ([`super::plan`]). The privileged calls go through the [`Sys`] trait so
//! the sequence, including target resolution inside the rootfs, is testable without root.
//!
//! Every target is resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)` ([`Root`]) and mounted
//! on through its `/proc/self/fd/N` link, so a symlink planted in the image (`/etc/hosts ->
//! /host/etc/passwd`) cannot redirect a mount to the host, even if the tree changed after the
//! resolution.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use super::plan::Op;
use crate::fsroot::{Root, proc_fd_path};

/// The privileged kernel calls a mount plan needs.
pub(crate) trait Sys {
    /// `mount(2)`.
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()>;
    /// Makes `/` and everything below it private.
    fn make_private(&mut self) -> io::Result<()>;
    /// Remounts a bind mount with `add` (`RDONLY`, `NODEV`) on top of the flags it has, keeping the
    /// ones the kernel locks in user namespaces.
    fn remount(&mut self, target: &Path, add: MountFlags) -> io::Result<()>;
    /// Makes `new_root` the root and detaches the old one.
    fn pivot_root(&mut self, new_root: &Path) -> io::Result<()>;
}

/// A failed step of the plan.
#[derive(Debug)]
pub(crate) struct StepError {
    pub stage: String,
    pub source: io::Error,
}

fn step_err(stage: impl Into<String>) -> impl FnOnce(io::Error) -> StepError {
    let stage = stage.into();
    move |source| StepError { stage, source }
}

fn fs_err(stage: &str) -> impl FnOnce(crate::fsroot::FsError) -> StepError + '_ {
    move |e| StepError {
        stage: stage.to_owned(),
        source: e.source,
    }
}

/// Runs `ops` for the rootfs at `rootfs` (a trusted host path).
pub(crate) fn apply(sys: &mut dyn Sys, rootfs: &Path, ops: &[Op]) -> Result<(), StepError> {
    let mut root: Option<Root> = None;
    for op in ops {
        match op {
            Op::MakePrivate => sys
                .make_private()
                .map_err(step_err("make mounts private"))?,
            Op::BindRootfs => {
                sys.mount(
                    Some(rootfs),
                    rootfs,
                    None,
                    MountFlags::BIND | MountFlags::REC,
                    "",
                )
                .map_err(step_err(format!("bind rootfs {}", rootfs.display())))?;
                sys.remount(rootfs, MountFlags::NODEV)
                    .map_err(step_err(format!("make rootfs {} nodev", rootfs.display())))?;
                // Opened after the bind so lookups see the mounts made on top of it.
                root = Some(Root::open(rootfs).map_err(fs_err("open rootfs"))?);
            }
            Op::Mount {
                fstype,
                target,
                flags,
                data,
            } => {
                let r = current(&root)?;
                let stage = format!("mount {fstype} on /{}", target.display());
                let fd = resolve(r, target).map_err(step_err(stage.clone()))?;
                sys.mount(
                    Some(Path::new(fstype)),
                    &proc_fd_path(&fd),
                    Some(fstype),
                    *flags,
                    data,
                )
                .map_err(step_err(stage))?;
            }
            Op::Bind {
                source,
                target,
                readonly,
                recursive,
                nodev,
            } => {
                let r = current(&root)?;
                let stage = format!("bind {} on /{}", source.display(), target.display());
                let fd = resolve(r, target).map_err(step_err(stage.clone()))?;
                let at = proc_fd_path(&fd);
                let mut flags = MountFlags::BIND;
                if *recursive {
                    flags |= MountFlags::REC;
                }
                sys.mount(Some(source), &at, None, flags, "")
                    .map_err(step_err(stage.clone()))?;
                let mut add = MountFlags::empty();
                if *readonly {
                    add |= MountFlags::RDONLY;
                }
                if *nodev {
                    add |= MountFlags::NODEV;
                }
                if !add.is_empty() {
                    // The new mount covers the old fd's dentry: reopen to reach the mount itself.
                    let fd = resolve(r, target).map_err(step_err(stage.clone()))?;
                    sys.remount(&proc_fd_path(&fd), add)
                        .map_err(step_err(stage))?;
                }
            }
            Op::Mkdir(path) => {
                current(&root)?
                    .mkdir_all(path, 0o755)
                    .map_err(fs_err(&format!("create /{}", path.display())))?;
            }
            Op::Touch(path) => {
                current(&root)?
                    .create_file(path, 0o644)
                    .map_err(fs_err(&format!("create /{}", path.display())))?;
            }
            Op::Symlink { link, to } => {
                current(&root)?
                    .symlink(to, link)
                    .map_err(fs_err(&format!("create /{}", link.display())))?;
            }
            Op::Sysfs(target) => {
                let r = current(&root)?;
                let stage = format!("mount sysfs on /{}", target.display());
                let fd = resolve(r, target).map_err(step_err(stage.clone()))?;
                let at = proc_fd_path(&fd);
                let flags = MountFlags::NOSUID
                    | MountFlags::NODEV
                    | MountFlags::NOEXEC
                    | MountFlags::RDONLY;
                match sys.mount(Some(Path::new("sysfs")), &at, Some("sysfs"), flags, "") {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        sys.mount(
                            Some(Path::new("/sys")),
                            &at,
                            None,
                            MountFlags::BIND | MountFlags::REC,
                            "",
                        )
                        .map_err(step_err(stage.clone()))?;
                        let fd = resolve(r, target).map_err(step_err(stage.clone()))?;
                        sys.remount(&proc_fd_path(&fd), MountFlags::RDONLY)
                            .map_err(step_err(stage))?;
                    }
                    Err(e) => return Err(step_err(stage)(e)),
                }
            }
            Op::Mask(target) => {
                let r = current(&root)?;
                let stage = format!("mask /{}", target.display());
                let Some(fd) = resolve_optional(r, target).map_err(step_err(stage.clone()))? else {
                    continue;
                };
                let st = rustix::fs::fstat(&fd).map_err(|e| step_err(stage.clone())(e.into()))?;
                let at = proc_fd_path(&fd);
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    sys.mount(
                        Some(Path::new("tmpfs")),
                        &at,
                        Some("tmpfs"),
                        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
                        "",
                    )
                } else {
                    sys.mount(
                        Some(Path::new("/dev/null")),
                        &at,
                        None,
                        MountFlags::BIND,
                        "",
                    )
                }
                .map_err(step_err(stage))?;
            }
            Op::ReadOnly(target) => {
                let r = current(&root)?;
                let stage = format!("make /{} read-only", target.display());
                let Some(fd) = resolve_optional(r, target).map_err(step_err(stage.clone()))? else {
                    continue;
                };
                let at = proc_fd_path(&fd);
                sys.mount(Some(&at), &at, None, MountFlags::BIND | MountFlags::REC, "")
                    .map_err(step_err(stage.clone()))?;
                let fd = resolve(r, target).map_err(step_err(stage.clone()))?;
                sys.remount(&proc_fd_path(&fd), MountFlags::RDONLY)
                    .map_err(step_err(stage))?;
            }
            Op::PivotRoot => {
                let r = current(&root)?;
                sys.pivot_root(r.path()).map_err(step_err("pivot_root"))?;
            }
        }
    }
    Ok(())
}

fn current(root: &Option<Root>) -> Result<&Root, StepError> {
    root.as_ref().ok_or_else(|| StepError {
        stage: "mount plan".to_owned(),
        source: io::Error::other("rootfs used before it was bound"),
    })
}

/// Resolves a mount target inside the rootfs (following symlinks inside it) to an `O_PATH`
/// descriptor.
fn resolve(root: &Root, target: &Path) -> io::Result<OwnedFd> {
    root.open_at(target, OFlags::PATH).map_err(|e| e.source)
}

fn resolve_optional(root: &Root, target: &Path) -> io::Result<Option<OwnedFd>> {
    match resolve(root, target) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The real kernel.
pub(crate) struct RealSys;

impl Sys for RealSys {
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        let data = std::ffi::CString::new(data).map_err(io::Error::other)?;
        let source = source.unwrap_or(Path::new(""));
        match fstype {
            Some(fs) => rustix::mount::mount(source, target, fs, flags, data.as_c_str()),
            None => rustix::mount::mount(source, target, "", flags, data.as_c_str()),
        }
        .map_err(Into::into)
    }

    fn make_private(&mut self) -> io::Result<()> {
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .map_err(Into::into)
    }

    fn remount(&mut self, target: &Path, add: MountFlags) -> io::Result<()> {
        let st = rustix::fs::statvfs(target)?;
        let mut flags = MountFlags::BIND | add;
        // In a user namespace these flags are locked: a remount must repeat them or fail.
        use rustix::fs::StatVfsMountFlags as V;
        for (v, m) in [
            (V::RDONLY, MountFlags::RDONLY),
            (V::NOSUID, MountFlags::NOSUID),
            (V::NODEV, MountFlags::NODEV),
            (V::NOEXEC, MountFlags::NOEXEC),
            (V::NOATIME, MountFlags::NOATIME),
            (V::NODIRATIME, MountFlags::NODIRATIME),
            (V::RELATIME, MountFlags::RELATIME),
        ] {
            if st.f_flag.contains(v) {
                flags |= m;
            }
        }
        rustix::mount::mount_remount(target, flags, "").map_err(Into::into)
    }

    fn pivot_root(&mut self, new_root: &Path) -> io::Result<()> {
        let dir = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let old = rustix::fs::open("/", dir, Mode::empty())?;
        let new = rustix::fs::open(new_root, dir, Mode::empty())?;
        rustix::process::fchdir(&new)?;
        // pivot_root(".", ".") stacks the old root under the new one; no put_old directory needed.
        rustix::process::pivot_root(".", ".")?;
        rustix::process::fchdir(&old)?;
        rustix::mount::mount_change(
            ".",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )?;
        rustix::mount::unmount(".", UnmountFlags::DETACH)?;
        rustix::process::chdir("/")?;
        Ok(())
    }
}

/// The host path a `/proc/self/fd/N` target stands for, for tests and messages.
#[cfg(test)]
fn describe(target: &Path) -> PathBuf {
    std::fs::read_link(target).unwrap_or_else(|_| target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Mount;
    use crate::exec::plan::mount_plan;

    /// Records calls with targets turned back into paths relative to the rootfs.
    struct Fake {
        rootfs: PathBuf,
        calls: Vec<String>,
    }

    impl Fake {
        fn show(&self, p: &Path) -> String {
            let real = describe(p);
            match real.strip_prefix(&self.rootfs) {
                Ok(rel) => format!("/{}", rel.display()),
                Err(_) => format!("host:{}", real.display()),
            }
        }
    }

    impl Sys for Fake {
        fn mount(
            &mut self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            _flags: MountFlags,
            _data: &str,
        ) -> io::Result<()> {
            let src = source.map(|s| self.show(s)).unwrap_or_default();
            let t = self.show(target);
            self.calls
                .push(format!("mount {} {src} {t}", fstype.unwrap_or("bind")));
            Ok(())
        }
        fn make_private(&mut self) -> io::Result<()> {
            self.calls.push("private".into());
            Ok(())
        }
        fn remount(&mut self, target: &Path, add: MountFlags) -> io::Result<()> {
            let t = self.show(target);
            let mut what = Vec::new();
            if add.contains(MountFlags::RDONLY) {
                what.push("ro");
            }
            if add.contains(MountFlags::NODEV) {
                what.push("nodev");
            }
            self.calls.push(format!("{} {t}", what.join(",")));
            Ok(())
        }
        fn pivot_root(&mut self, new_root: &Path) -> io::Result<()> {
            let t = self.show(new_root);
            self.calls.push(format!("pivot {t}"));
            Ok(())
        }
    }

    #[test]
    fn hostile_symlink_target_stays_inside_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("hosts"), "host").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().canonicalize().unwrap();
        for d in ["proc", "dev", "sys", "etc"] {
            std::fs::create_dir(rootfs.join(d)).unwrap();
        }
        // The image points /etc/hosts at a host file; the stub lives at the link's target inside.
        std::os::unix::fs::symlink(outside.path().join("hosts"), rootfs.join("etc/hosts")).unwrap();
        let inside = rootfs.join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("hosts"), "").unwrap();

        let mounts = vec![Mount::Bind {
            source: "/run/gen/hosts".into(),
            target: "/etc/hosts".into(),
            readonly: true,
        }];
        let mut fake = Fake {
            rootfs: rootfs.clone(),
            calls: Vec::new(),
        };
        apply(&mut fake, &rootfs, &mount_plan(&mounts, false)).unwrap();
        let want_hosts = format!(
            "mount bind host:/run/gen/hosts /{}",
            inside
                .join("hosts")
                .strip_prefix(&rootfs)
                .unwrap()
                .display()
        );
        assert!(fake.calls.contains(&want_hosts), "{:#?}", fake.calls);
        assert_eq!(fake.calls[0], "private");
        assert!(
            fake.calls
                .contains(&"mount proc host:proc /proc".to_owned())
        );
        assert!(
            fake.calls
                .contains(&"mount bind host:/dev/null /dev/null".to_owned())
        );
        assert!(
            fake.calls
                .contains(&"mount sysfs host:sysfs /sys".to_owned())
        );
        assert_eq!(fake.calls.last().unwrap(), "pivot /");
        // /dev/null etc. were created in the (here unmounted) dev directory.
        assert!(rootfs.join("dev/null").is_file());
        assert!(rootfs.join("dev/fd").is_symlink());
    }

    #[test]
    fn missing_mount_point_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().canonicalize().unwrap();
        let mut fake = Fake {
            rootfs: rootfs.clone(),
            calls: Vec::new(),
        };
        let err = apply(&mut fake, &rootfs, &mount_plan(&[], false)).unwrap_err();
        assert_eq!(err.stage, "mount proc on /proc");
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
    }
}
