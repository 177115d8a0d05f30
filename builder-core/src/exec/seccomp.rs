//! The system-call filter of a RUN step: Docker's default seccomp profile, as data.
//!
//! One table ([`PROFILE`]) drives both executors: the built-in sandbox compiles it to a BPF
//! program once per process ([`Filter::compile`], through libseccomp, which resolves the names for
//! the host's architectures) and loads the program in the command process right before `execve`
//! ([`load`]); the runc executor writes the same table into its `config.json`
//! ([`oci_profile`]), where runc resolves it.
//!
//! The semantics are Docker's: every call not allowed fails with `EPERM`; the groups gated on a
//! capability apply only when the step has it (kiln's steps have Docker's default set, so the
//! `CAP_SYS_ADMIN` group, `mount`, `bpf`, `perf_event_open`, `setns`..., is out); without
//! `CAP_SYS_ADMIN`, `clone` and `unshare` may not create namespaces and `clone3` fails with
//! `ENOSYS` (so the C library falls back to `clone`, whose flags the filter can see); `socket`
//! refuses `AF_VSOCK`; `personality` takes only the harmless personas. Calls such as `keyctl`,
//! `add_key`, `request_key`, `kexec_load`, `userfaultfd` or `open_by_handle_at` are in no group
//! and always fail.

use std::io;

use rustix::thread::CapabilitySet;

/// What a rule does with a call it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Allow,
    Errno(u32),
}

/// A comparison on one argument of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq(u64),
    Ne(u64),
    /// `arg & mask == value`.
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

/// When a group of the profile applies.
#[derive(Debug, Clone, Copy)]
enum When {
    Always,
    /// The step has this capability.
    Cap(CapabilitySet),
    /// The step does not have this capability.
    NoCap(CapabilitySet),
    /// The host is one of these architectures (`std::env::consts::ARCH` names).
    Arch(&'static [&'static str]),
}

/// One group of the profile: the calls, what happens to them, and the argument tests that must
/// all hold (none: any arguments).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group {
    pub names: &'static [&'static str],
    pub action: Action,
    pub args: &'static [(u32, Cmp)],
    when: When,
}

const fn allow(names: &'static [&'static str], when: When) -> Group {
    Group {
        names,
        action: Action::Allow,
        args: &[],
        when,
    }
}

const fn allow_if(
    names: &'static [&'static str],
    args: &'static [(u32, Cmp)],
    when: When,
) -> Group {
    Group {
        names,
        action: Action::Allow,
        args,
        when,
    }
}

/// The flags of `clone(2)` and `unshare(2)` that create namespaces
/// (`CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`).
pub(crate) const NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`, refused by `socket`.
const AF_VSOCK: u64 = 40;

/// The error a call outside the profile gets (`EPERM`).
pub(crate) const DEFAULT_ERRNO: u32 = 1;

/// Calls every step may make.
#[rustfmt::skip]
const ALWAYS: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
    "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
    "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv",
    "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr",
    "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send",
    "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat",
    "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
    // Allowed by Docker on kernels from 4.8, where ptrace can no longer bypass the filter.
    "process_vm_readv", "process_vm_writev", "ptrace",
];

/// Docker's default profile, group by group.
#[rustfmt::skip]
pub(crate) const PROFILE: &[Group] = &[
    allow(ALWAYS, When::Always),
    allow_if(&["socket"], &[(0, Cmp::Ne(AF_VSOCK))], When::Always),
    // The personas `setarch`, `linux32` and friends use; not READ_IMPLIES_EXEC and the like.
    allow_if(&["personality"], &[(0, Cmp::Eq(0))], When::Always),
    allow_if(&["personality"], &[(0, Cmp::Eq(0x0008))], When::Always),
    allow_if(&["personality"], &[(0, Cmp::Eq(0x20000))], When::Always),
    allow_if(&["personality"], &[(0, Cmp::Eq(0x20008))], When::Always),
    allow_if(&["personality"], &[(0, Cmp::Eq(0xffff_ffff))], When::Always),
    allow(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        When::Arch(&["arm", "aarch64"]),
    ),
    allow(&["arch_prctl"], When::Arch(&["x86_64"])),
    allow(&["modify_ldt"], When::Arch(&["x86_64", "x86"])),
    allow(&["riscv_flush_icache"], When::Arch(&["riscv64"])),
    allow(
        &["sync_file_range2", "swapcontext"],
        When::Arch(&["powerpc64"]),
    ),
    allow(
        &["open_by_handle_at"],
        When::Cap(CapabilitySet::DAC_READ_SEARCH),
    ),
    allow(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        When::Cap(CapabilitySet::SYS_ADMIN),
    ),
    allow_if(
        &["clone", "unshare"],
        &[(
            0,
            Cmp::MaskedEq {
                mask: NAMESPACE_FLAGS,
                value: 0,
            },
        )],
        When::NoCap(CapabilitySet::SYS_ADMIN),
    ),
    Group {
        names: &["clone3"],
        action: Action::Errno(38), // ENOSYS
        args: &[],
        when: When::NoCap(CapabilitySet::SYS_ADMIN),
    },
    allow(&["reboot"], When::Cap(CapabilitySet::SYS_BOOT)),
    allow(&["chroot"], When::Cap(CapabilitySet::SYS_CHROOT)),
    allow(
        &["delete_module", "init_module", "finit_module"],
        When::Cap(CapabilitySet::SYS_MODULE),
    ),
    allow(&["acct"], When::Cap(CapabilitySet::SYS_PACCT)),
    allow(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        When::Cap(CapabilitySet::SYS_PTRACE),
    ),
    allow(&["iopl", "ioperm"], When::Cap(CapabilitySet::SYS_RAWIO)),
    allow(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        When::Cap(CapabilitySet::SYS_TIME),
    ),
    allow(&["vhangup"], When::Cap(CapabilitySet::SYS_TTY_CONFIG)),
    allow(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        When::Cap(CapabilitySet::SYS_NICE),
    ),
    allow(&["syslog"], When::Cap(CapabilitySet::SYSLOG)),
    allow(&["bpf"], When::Cap(CapabilitySet::BPF)),
    allow(&["perf_event_open"], When::Cap(CapabilitySet::PERFMON)),
];

/// The groups that apply to a step with capabilities `caps` on this host.
pub(crate) fn groups(caps: CapabilitySet) -> impl Iterator<Item = &'static Group> {
    PROFILE.iter().filter(move |g| match g.when {
        When::Always => true,
        When::Cap(c) => caps.contains(c),
        When::NoCap(c) => !caps.contains(c),
        When::Arch(arches) => arches.contains(&std::env::consts::ARCH),
    })
}

/// The libseccomp architectures a filter covers on this host: the native one plus the ones its
/// kernel also runs (32-bit x86 and x32 on x86-64, 32-bit ARM on arm64), as Docker's profile does.
fn extra_arches() -> &'static [libseccomp::ScmpArch] {
    use libseccomp::ScmpArch;
    match std::env::consts::ARCH {
        "x86_64" => &[ScmpArch::X86, ScmpArch::X32],
        "aarch64" => &[ScmpArch::Arm],
        _ => &[],
    }
}

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {what}")]
pub struct SeccompError {
    what: String,
}

fn fail(what: impl std::fmt::Display) -> SeccompError {
    SeccompError {
        what: what.to_string(),
    }
}

/// A compiled filter: a classic BPF program, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// The program's instructions, 8 bytes each, in the host's byte order.
    pub program: Vec<u8>,
}

impl Filter {
    /// Compiles the profile for a step with capabilities `caps`. Names this kernel's architecture
    /// does not know are skipped, as runc does.
    pub(crate) fn compile(caps: CapabilitySet) -> Result<Self, SeccompError> {
        use libseccomp::{
            ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
        };
        let mut ctx =
            ScmpFilterContext::new(ScmpAction::Errno(DEFAULT_ERRNO as i32)).map_err(fail)?;
        // Docker does not set no_new_privs for builds; the command process loads the filter while
        // it still has CAP_SYS_ADMIN, so it need not.
        ctx.set_ctl_nnp(false).map_err(fail)?;
        for arch in extra_arches() {
            ctx.add_arch(*arch).map_err(fail)?;
        }
        for g in groups(caps) {
            let action = match g.action {
                Action::Allow => ScmpAction::Allow,
                Action::Errno(e) => ScmpAction::Errno(e as i32),
            };
            let conds: Vec<ScmpArgCompare> = g
                .args
                .iter()
                .map(|(i, c)| match *c {
                    Cmp::Eq(v) => ScmpArgCompare::new(*i, ScmpCompareOp::Equal, v),
                    Cmp::Ne(v) => ScmpArgCompare::new(*i, ScmpCompareOp::NotEqual, v),
                    Cmp::MaskedEq { mask, value } => {
                        ScmpArgCompare::new(*i, ScmpCompareOp::MaskedEqual(mask), value)
                    }
                })
                .collect();
            for name in g.names {
                let Ok(call) = ScmpSyscall::from_name(name) else {
                    continue;
                };
                let added = if conds.is_empty() {
                    ctx.add_rule(action, call)
                } else {
                    ctx.add_rule_conditional(action, call, &conds)
                };
                // A call libseccomp cannot express on one of the architectures (a multiplexed
                // `socketcall` argument rule on 32-bit x86, say) is left to the default action.
                if let Err(e) = added {
                    tracing::debug!("seccomp: {name}: {e}", e = crate::report::chain(&e));
                }
            }
        }
        let mut out = tempfile::tempfile().map_err(fail)?;
        ctx.export_bpf(&mut out).map_err(fail)?;
        use std::io::{Read, Seek};
        out.rewind().map_err(fail)?;
        let mut program = Vec::new();
        out.read_to_end(&mut program).map_err(fail)?;
        if program.is_empty() || !program.len().is_multiple_of(8) {
            return Err(fail(format!(
                "libseccomp produced {} bytes of BPF",
                program.len()
            )));
        }
        Ok(Self { program })
    }
}

/// The program for Docker's default capability set, compiled once per process and kept as
/// base64 for the helper's spec.
pub(crate) fn default_program() -> Result<&'static str, SeccompError> {
    static PROGRAM: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    use base64::Engine as _;
    PROGRAM
        .get_or_init(|| {
            Filter::compile(crate::exec::caps::default_set())
                .map(|f| base64::engine::general_purpose::STANDARD.encode(f.program))
                .map_err(|e| e.what)
        })
        .as_deref()
        .map_err(fail)
}

/// Loads a compiled program into the calling thread (and, as it is single-threaded, the process).
/// Needs `CAP_SYS_ADMIN` in the process's user namespace (no `no_new_privs` is set); all later
/// calls of the process, its children's included, go through it.
pub(crate) fn load(program: &[u8]) -> io::Result<()> {
    if program.is_empty()
        || !program.len().is_multiple_of(8)
        || program.len() / 8 > u16::MAX as usize
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "malformed BPF program",
        ));
    }
    // The bytes come from `export_bpf` in this same binary, so they are `sock_filter`s in the
    // host's layout; copy them into properly aligned storage.
    let filters: Vec<libc::sock_filter> = program
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filters.len() as u16,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filters`, which outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The profile for a step with capabilities `caps`, as an OCI runtime's `linux.seccomp`.
pub(crate) fn oci_profile(
    caps: CapabilitySet,
) -> Result<oci_spec::runtime::LinuxSeccomp, oci_spec::OciSpecError> {
    use oci_spec::runtime::{
        Arch, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
        LinuxSeccompOperator, LinuxSyscallBuilder,
    };
    let mut syscalls = Vec::new();
    for g in groups(caps) {
        let mut b = LinuxSyscallBuilder::default()
            .names(g.names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        b = match g.action {
            Action::Allow => b.action(LinuxSeccompAction::ScmpActAllow),
            Action::Errno(e) => b.action(LinuxSeccompAction::ScmpActErrno).errno_ret(e),
        };
        if !g.args.is_empty() {
            let args = g
                .args
                .iter()
                .map(|(i, c)| {
                    let (op, value, two) = match *c {
                        Cmp::Eq(v) => (LinuxSeccompOperator::ScmpCmpEq, v, 0),
                        Cmp::Ne(v) => (LinuxSeccompOperator::ScmpCmpNe, v, 0),
                        Cmp::MaskedEq { mask, value } => {
                            (LinuxSeccompOperator::ScmpCmpMaskedEq, mask, value)
                        }
                    };
                    LinuxSeccompArgBuilder::default()
                        .index(*i as usize)
                        .value(value)
                        .value_two(two)
                        .op(op)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            b = b.args(args);
        }
        syscalls.push(b.build()?);
    }
    let (native, extra): (Arch, &[Arch]) = match std::env::consts::ARCH {
        "x86_64" => (
            Arch::ScmpArchX86_64,
            &[Arch::ScmpArchX86, Arch::ScmpArchX32],
        ),
        "aarch64" => (Arch::ScmpArchAarch64, &[Arch::ScmpArchArm]),
        _ => (Arch::ScmpArchNative, &[]),
    };
    let mut architectures = vec![native];
    architectures.extend_from_slice(extra);
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(DEFAULT_ERRNO)
        .architectures(architectures)
        .syscalls(syscalls)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::caps;

    fn names(caps: CapabilitySet) -> Vec<&'static str> {
        groups(caps)
            .filter(|g| g.action == Action::Allow && g.args.is_empty())
            .flat_map(|g| g.names.iter().copied())
            .collect()
    }

    #[test]
    fn the_default_set_gets_no_admin_calls() {
        let allowed = names(caps::default_set());
        for call in [
            "mount",
            "bpf",
            "perf_event_open",
            "setns",
            "keyctl",
            "add_key",
            "unshare",
        ] {
            assert!(
                !allowed.contains(&call),
                "{call} is allowed unconditionally"
            );
        }
        for call in ["read", "execve", "chroot", "mknod", "ptrace"] {
            assert!(allowed.contains(&call), "{call} is not allowed");
        }
        // clone and unshare only without namespace flags; clone3 says ENOSYS.
        let conditional: Vec<_> = groups(caps::default_set())
            .filter(|g| g.names.contains(&"unshare"))
            .collect();
        assert_eq!(conditional.len(), 1);
        assert_eq!(
            conditional[0].args,
            &[(
                0,
                Cmp::MaskedEq {
                    mask: NAMESPACE_FLAGS,
                    value: 0
                }
            )]
        );
        assert!(
            groups(caps::default_set())
                .any(|g| g.names == ["clone3"] && g.action == Action::Errno(38))
        );
    }

    #[test]
    fn sys_admin_unlocks_its_group() {
        let allowed = names(caps::default_set() | CapabilitySet::SYS_ADMIN);
        for call in ["mount", "unshare", "clone3", "setns"] {
            assert!(allowed.contains(&call), "{call}");
        }
        assert!(!allowed.contains(&"keyctl"));
    }

    #[test]
    fn compiles_for_this_host() {
        let f = Filter::compile(caps::default_set()).unwrap();
        assert!(f.program.len() > 8 * 100, "{} bytes", f.program.len());
    }

    #[test]
    fn oci_profile_matches_the_table() {
        let p = oci_profile(caps::default_set()).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        let calls = v["syscalls"].as_array().unwrap();
        let unshare = calls
            .iter()
            .find(|c| {
                c["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n == "unshare")
            })
            .unwrap();
        assert_eq!(unshare["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(unshare["args"][0]["value"], NAMESPACE_FLAGS);
        assert_eq!(unshare["args"][0]["valueTwo"], 0);
    }
}
