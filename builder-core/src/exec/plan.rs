//! The sandbox's mount sequence as data: a pure function from the run's mounts to a list of
//! operations, so the order and flags can be tested without privileges. [`super::sys`] carries the
//! list out.

use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

use super::Mount;
use crate::fsroot::clean;

/// One step of the mount sequence. Targets are relative to the rootfs and resolved inside it when
/// the step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Makes every mount of the new mount namespace private, so nothing propagates to the host.
    MakePrivate,
    /// Binds the rootfs onto itself (pivot_root needs a mount point), `nodev` (a device node the
    /// image carries or a step creates cannot be opened), and opens it for the steps that follow.
    BindRootfs,
    /// Mounts a fresh filesystem.
    Mount {
        fstype: &'static str,
        target: PathBuf,
        flags: MountFlags,
        data: String,
    },
    /// Binds a host path onto the target, read-only if asked. `nodev` is set on every bind but the
    /// device nodes of the sandbox's `/dev`: a device node in a bound directory cannot be opened.
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
        recursive: bool,
        nodev: bool,
    },
    /// Creates a directory (a mount point inside a tmpfs this plan mounted).
    Mkdir(PathBuf),
    /// Creates an empty file (a mount point inside a tmpfs this plan mounted).
    Touch(PathBuf),
    /// Creates a symlink `link` with content `to`.
    Symlink { link: PathBuf, to: PathBuf },
    /// Mounts sysfs read-only, or binds the host's `/sys` read-only where sysfs cannot be mounted
    /// (rootless with the host's network namespace).
    Sysfs(PathBuf),
    /// Hides a path: `/dev/null` over a file, an empty read-only tmpfs over a directory. A missing
    /// path is skipped.
    Mask(PathBuf),
    /// Makes an existing path read-only by binding it onto itself. A missing path is skipped.
    ReadOnly(PathBuf),
    /// Makes the rootfs `/` and detaches the old root.
    PivotRoot,
}

/// Host devices bound into the sandbox's `/dev`.
pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks the plan makes in the sandbox's `/dev` (name, target).
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Filesystems the plan mounts inside the sandbox's `/dev`.
const DEV_MOUNTS: &[&str] = &["pts", "shm", "mqueue"];

/// Paths Docker hides from containers (`/proc` entries that leak host information or allow
/// attacks on the host, firmware tables).
pub(crate) const MASKED_PATHS: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only: host-wide kernel settings a root process could otherwise change
/// (`/proc/sys/kernel/core_pattern` would run a program on the host).
pub(crate) const READONLY_PATHS: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

fn rel(p: &str) -> PathBuf {
    PathBuf::from(p)
}

/// The mount sequence for a run. `rootless` drops options that need ids a single-id user namespace
/// does not map.
#[cfg(test)]
pub(crate) fn mount_plan(mounts: &[Mount], rootless: bool) -> Vec<Op> {
    mount_plan_sized(mounts, rootless, None)
}

/// [`mount_plan`] with `/dev/shm` of `shm_size` bytes (64 MiB when unset, as Docker).
pub(crate) fn mount_plan_sized(mounts: &[Mount], rootless: bool, shm_size: Option<u64>) -> Vec<Op> {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let mut ops = vec![
        Op::MakePrivate,
        Op::BindRootfs,
        Op::Mount {
            fstype: "proc",
            target: rel("proc"),
            flags: nosuid_nodev_noexec,
            data: String::new(),
        },
        // `nodev`: a node a step creates with `mknod` in `/dev` cannot be opened; the allowed
        // devices are bind mounts of their own, which keep the host's `/dev` flags.
        Op::Mount {
            fstype: "tmpfs",
            target: rel("dev"),
            flags: MountFlags::NOSUID | MountFlags::NODEV | MountFlags::STRICTATIME,
            data: "mode=755,size=65536k".to_owned(),
        },
    ];
    for dev in DEVICES {
        let target = PathBuf::from("dev").join(dev);
        ops.push(Op::Touch(target.clone()));
        ops.push(Op::Bind {
            source: PathBuf::from("/dev").join(dev),
            target,
            readonly: false,
            recursive: false,
            nodev: false,
        });
    }
    let pts_data = if rootless {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    ops.extend([
        Op::Mkdir(rel("dev/pts")),
        Op::Mount {
            fstype: "devpts",
            target: rel("dev/pts"),
            flags: MountFlags::NOSUID | MountFlags::NOEXEC,
            data: pts_data.to_owned(),
        },
        Op::Mkdir(rel("dev/shm")),
        Op::Mount {
            fstype: "tmpfs",
            target: rel("dev/shm"),
            flags: nosuid_nodev_noexec,
            data: format!("mode=1777,size={}", shm_size.unwrap_or(64 << 20)),
        },
        Op::Mkdir(rel("dev/mqueue")),
        Op::Mount {
            fstype: "mqueue",
            target: rel("dev/mqueue"),
            flags: nosuid_nodev_noexec,
            data: String::new(),
        },
    ]);
    for (link, to) in DEV_LINKS {
        ops.push(Op::Symlink {
            link: Path::new("dev").join(link),
            to: rel(to),
        });
    }
    ops.push(Op::Sysfs(rel("sys")));
    ops.extend(MASKED_PATHS.iter().map(|p| Op::Mask(rel(p))));
    ops.extend(READONLY_PATHS.iter().map(|p| Op::ReadOnly(rel(p))));
    for m in mounts {
        // The rootfs's mount-point stubs are hidden by the `/dev` tmpfs: a target in it (an SSH
        // agent socket at `/dev/log`, say) is created there first, as runc does.
        let target = clean(m.target());
        if in_dev_tmpfs(&target) {
            if let Some(parent) = target.parent()
                && parent != Path::new("dev")
            {
                ops.push(Op::Mkdir(parent.to_path_buf()));
            }
            let is_dir = match m {
                Mount::Tmpfs { .. } => true,
                Mount::Secret { .. } => false,
                Mount::Bind { source, .. } => source.is_dir(),
            };
            ops.push(if is_dir {
                Op::Mkdir(target.clone())
            } else {
                Op::Touch(target.clone())
            });
        }
        ops.push(match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => Op::Bind {
                source: source.clone(),
                target: clean(target),
                readonly: *readonly,
                recursive: true,
                nodev: true,
            },
            Mount::Secret { source, target } => Op::Bind {
                source: source.clone(),
                target: clean(target),
                readonly: true,
                recursive: false,
                nodev: true,
            },
            Mount::Tmpfs { target, size } => {
                let mut data = "mode=1777".to_owned();
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                Op::Mount {
                    fstype: "tmpfs",
                    target: clean(target),
                    flags: MountFlags::NOSUID | MountFlags::NODEV,
                    data,
                }
            }
        });
    }
    ops.push(Op::PivotRoot);
    ops
}

/// Whether `target` lies in the `/dev` tmpfs the plan mounts, outside the entries the plan itself
/// makes there.
fn in_dev_tmpfs(target: &Path) -> bool {
    let Some(first) = target
        .strip_prefix("dev")
        .ok()
        .and_then(|rest| rest.components().next())
    else {
        return false;
    };
    let mut own = DEVICES
        .iter()
        .chain(DEV_MOUNTS)
        .chain(DEV_LINKS.iter().map(|(name, _)| name));
    !own.any(|d| first.as_os_str() == std::ffi::OsStr::new(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_in_the_dev_tmpfs_are_created_there_first() {
        let mounts = [
            Mount::Secret {
                source: "/host/s".into(),
                target: "/dev/log".into(),
            },
            Mount::Tmpfs {
                target: "/dev/cache/dir".into(),
                size: None,
            },
            Mount::Tmpfs {
                target: "/dev/shm/x".into(),
                size: None,
            },
        ];
        let ops = mount_plan(&mounts, false);
        let at = |op: &Op| ops.iter().position(|o| o == op).unwrap();
        let bind = ops
            .iter()
            .position(|o| matches!(o, Op::Bind { target, .. } if target == Path::new("dev/log")))
            .unwrap();
        assert_eq!(at(&Op::Touch("dev/log".into())) + 1, bind);
        assert!(at(&Op::Mkdir("dev/cache".into())) < at(&Op::Mkdir("dev/cache/dir".into())));
        // Entries the plan makes itself are left alone.
        assert!(!ops.contains(&Op::Mkdir("dev/shm/x".into())));
        assert!(!in_dev_tmpfs(Path::new("dev")) && !in_dev_tmpfs(Path::new("etc/dev")));
    }

    #[test]
    fn order_private_first_pivot_last() {
        let ops = mount_plan(&[], false);
        assert_eq!(ops[0], Op::MakePrivate);
        assert_eq!(ops[1], Op::BindRootfs);
        assert_eq!(ops.last(), Some(&Op::PivotRoot));
        // /proc comes before anything masked below it, /sys before its masks.
        let pos = |want: &Op| ops.iter().position(|o| o == want).unwrap();
        let proc = ops
            .iter()
            .position(|o| matches!(o, Op::Mount { fstype: "proc", .. }))
            .unwrap();
        assert!(proc < pos(&Op::ReadOnly(rel("proc/sys"))));
        assert!(pos(&Op::Sysfs(rel("sys"))) < pos(&Op::Mask(rel("sys/firmware"))));
    }

    #[test]
    fn devices_get_mount_points_then_binds() {
        let ops = mount_plan(&[], false);
        for dev in DEVICES {
            let target = PathBuf::from("dev").join(dev);
            let touch = ops
                .iter()
                .position(|o| *o == Op::Touch(target.clone()))
                .unwrap();
            assert!(
                matches!(&ops[touch + 1], Op::Bind { source, target: t, readonly: false, nodev: false, .. }
                if *source == PathBuf::from("/dev").join(dev) && *t == target)
            );
        }
    }

    #[test]
    fn rootless_devpts_has_no_gid() {
        let data = |rootless| {
            mount_plan(&[], rootless)
                .into_iter()
                .find_map(|o| match o {
                    Op::Mount {
                        fstype: "devpts",
                        data,
                        ..
                    } => Some(data),
                    _ => None,
                })
                .unwrap()
        };
        assert!(data(false).contains("gid=5"));
        assert!(!data(true).contains("gid="));
    }

    #[test]
    fn user_mounts_follow_standard_ones_in_order() {
        let mounts = vec![
            Mount::Bind {
                source: "/host/ctx".into(),
                target: "/../src".into(),
                readonly: true,
            },
            Mount::Tmpfs {
                target: "/tmp/cache".into(),
                size: Some(1 << 20),
            },
            Mount::Secret {
                source: "/run/kiln/s1".into(),
                target: "/run/secrets/token".into(),
            },
        ];
        let ops = mount_plan(&mounts, false);
        let n = ops.len();
        assert_eq!(
            ops[n - 4],
            Op::Bind {
                source: "/host/ctx".into(),
                target: "src".into(),
                readonly: true,
                recursive: true,
                nodev: true,
            }
        );
        assert_eq!(
            ops[n - 3],
            Op::Mount {
                fstype: "tmpfs",
                target: "tmp/cache".into(),
                flags: MountFlags::NOSUID | MountFlags::NODEV,
                data: "mode=1777,size=1048576".into()
            }
        );
        assert!(
            matches!(&ops[n - 2], Op::Bind { readonly: true, recursive: false, nodev: true, target, .. }
            if target == Path::new("run/secrets/token"))
        );
        assert_eq!(ops[n - 1], Op::PivotRoot);
    }

    #[test]
    fn kernel_settings_are_read_only() {
        let ops = mount_plan(&[], false);
        assert!(ops.contains(&Op::ReadOnly(rel("proc/sys"))));
        assert!(ops.contains(&Op::ReadOnly(rel("proc/sysrq-trigger"))));
        assert!(ops.contains(&Op::Mask(rel("proc/kcore"))));
    }

    #[test]
    fn only_the_allowed_devices_are_openable() {
        let mounts = [Mount::Bind {
            source: "/cache".into(),
            target: "/var/cache".into(),
            readonly: false,
        }];
        let ops = mount_plan(&mounts, false);
        // Every filesystem that can hold a node a step creates is `nodev`; devpts holds only the
        // kernel's own pty nodes.
        for op in &ops {
            match op {
                Op::Mount { fstype, flags, .. } if *fstype != "devpts" => {
                    assert!(flags.contains(MountFlags::NODEV), "{op:?}")
                }
                Op::Bind { source, nodev, .. } => {
                    let device = DEVICES.iter().any(|d| Path::new("/dev").join(d) == *source);
                    assert_eq!(*nodev, !device, "{op:?}");
                }
                _ => {}
            }
        }
    }
}
