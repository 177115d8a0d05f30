//! Starting the program again inside a user namespace of its own.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

use super::IdPlan;

/// Why kiln could not enter its user namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootlessError {
    /// The kernel refused to create a user namespace.
    #[error("cannot create a user namespace for rootless mode")]
    Refused {
        /// The refusal.
        #[source]
        source: std::io::Error,
    },
    /// `newuidmap` or `newgidmap` failed.
    #[error("{} {pid} {args} failed: {message}", program.display())]
    MapFailed {
        /// The helper.
        program: PathBuf,
        /// The namespace's first process.
        pid: i32,
        /// The map it was asked to write.
        args: String,
        /// What it printed, or its exit status.
        message: String,
    },
    /// The program could not be started or waited for.
    #[error("cannot {what} {}", program.display())]
    Start {
        /// What failed.
        what: &'static str,
        /// The program.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RootlessError {
    /// What the person running kiln can do about it.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            RootlessError::Refused { .. } => Some(
                "kiln needs a user namespace when it is not run as root. Options: run it as root; \
                 allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and on \
                 some kernels kernel.unprivileged_userns_clone=1 or \
                 kernel.apparmor_restrict_unprivileged_userns=0); in a container, relax its seccomp \
                 and AppArmor profiles (docker run --security-opt seccomp=unconfined --security-opt \
                 apparmor=unconfined) or run it privileged",
            ),
            RootlessError::MapFailed { .. } => Some(
                "check the user's lines in /etc/subuid and /etc/subgid, and that newuidmap and \
                 newgidmap are setuid root (or have cap_setuid/cap_setgid); KILN_USERNS=single \
                 maps only the user's own id",
            ),
            RootlessError::Start { .. } => None,
        }
    }
}

/// When the process is not root, runs this same program with the same arguments in a new user
/// namespace mapped by `plan` (see [`super::plan`]), as its root, waits for it and returns its
/// exit code (128 + the signal when it was killed). Returns `None` when the process is root
/// already (of the machine, or of a namespace this function made): the caller then carries on.
///
/// Call it first in `main`, before any thread starts (threads would not be copied, and the
/// mapping needs a single-threaded child). The child ends with SIGTERM when this process dies.
pub fn reexec(plan: &IdPlan) -> Result<Option<i32>, RootlessError> {
    if rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("kiln"));
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(arg0).args(args);
    run_in_namespace(cmd, plan).map(Some)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RootlessError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| RootlessError::Start {
        what: "create a pipe for",
        program: PathBuf::from("the user namespace"),
        source: e.into(),
    })
}

fn run_in_namespace(mut cmd: Command, plan: &IdPlan) -> Result<i32, RootlessError> {
    let program = PathBuf::from(cmd.get_program());
    let (report_r, report_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let single = matches!(plan, IdPlan::Single { .. });
    // Made before the fork: the child must not allocate.
    let line = |args: Vec<u32>| {
        let mut s = args
            .chunks(3)
            .map(|c| format!("{} {} {}", c[0], c[1], c[2]))
            .collect::<Vec<_>>()
            .join("\n");
        s.push('\n');
        s.into_bytes()
    };
    let uid_line = line(plan.uid_args());
    let gid_line = line(plan.gid_args());
    let (report_fd, go_fd) = (report_w.as_raw_fd(), go_r.as_raw_fd());
    // The parent's ends, which the child must not hold: its read of `go` would never see the
    // end of the pipe when the parent gives up.
    let parent_ends = [report_r.as_raw_fd(), go_w.as_raw_fd()];
    // SAFETY: the closure runs in the forked child before exec and only makes system calls on
    // memory prepared above (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            for fd in parent_ends {
                libc::close(fd);
            }
            child_setup(report_fd, go_fd, single.then_some((&uid_line, &gid_line)))
        });
    }
    let plan2 = plan.clone();
    let mapper = std::thread::spawn(move || map_ids(report_r, go_w, &plan2));
    let spawned = cmd.spawn();
    drop(report_w);
    drop(go_r);
    let mapped = mapper.join().unwrap_or(Ok(false));
    let mut child = match (spawned, mapped) {
        (Ok(child), _) => child,
        (Err(_), Err(e)) => return Err(e),
        // The child never reported its pid: creating the namespace failed.
        (Err(source), Ok(false)) => return Err(RootlessError::Refused { source }),
        (Err(source), Ok(true)) => {
            return Err(RootlessError::Start {
                what: "start",
                program,
                source,
            });
        }
    };
    // Terminal signals reach the child directly (same process group); this process only waits.
    // SAFETY: setting a signal to ignored is always sound.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let status = child.wait().map_err(|source| RootlessError::Start {
        what: "wait for",
        program,
        source,
    })?;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// In the forked child: a new user namespace, mapped by the parent's helpers (or by the child
/// itself with `single`), then root in it.
fn child_setup(report: i32, go: i32, single: Option<(&Vec<u8>, &Vec<u8>)>) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain system calls on this process and on descriptors it owns.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM))?;
        check(libc::unshare(libc::CLONE_NEWUSER))?;
        let pid = libc::getpid().to_ne_bytes();
        if libc::write(report, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
        if let Some((uid_line, gid_line)) = single {
            write_file(c"/proc/self/setgroups", b"deny")?;
            write_file(c"/proc/self/uid_map", uid_line)?;
            write_file(c"/proc/self/gid_map", gid_line)?;
        }
        let mut byte = 0u8;
        if libc::read(go, (&raw mut byte).cast(), 1) != 1 {
            return Err(std::io::Error::other("the id maps were not written"));
        }
        check(libc::setresgid(0, 0, 0))?;
        check(libc::setresuid(0, 0, 0))?;
    }
    Ok(())
}

/// # Safety
/// Async-signal-safe: only system calls.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path; the descriptor is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(e);
        }
    }
    Ok(())
}

/// Waits for the child's pid, writes its maps (unless it writes its own) and lets it go on.
/// Returns whether the child got as far as creating its namespace.
fn map_ids(report: OwnedFd, go: OwnedFd, plan: &IdPlan) -> Result<bool, RootlessError> {
    let mut pid = [0u8; 4];
    if std::fs::File::from(report).read_exact(&mut pid).is_err() {
        return Ok(false);
    }
    let pid = i32::from_ne_bytes(pid);
    if let IdPlan::Ranges {
        newuidmap,
        newgidmap,
        ..
    } = plan
    {
        // Both mappers at once: each is a setuid program's start-up, a few milliseconds that
        // every rootless command waits for.
        let (uid_args, gid_args) = (plan.uid_args(), plan.gid_args());
        let (uids, gids) = std::thread::scope(|s| {
            let uids = s.spawn(|| run_map(newuidmap, pid, &uid_args));
            let gids = run_map(newgidmap, pid, &gid_args);
            (uids.join(), gids)
        });
        uids.unwrap_or_else(|_| {
            Err(RootlessError::MapFailed {
                program: newuidmap.clone(),
                pid,
                args: String::new(),
                message: "the mapper's thread panicked".to_owned(),
            })
        })?;
        gids?;
    }
    // The child reports a missing byte itself.
    let _ = std::fs::File::from(go).write_all(b"1");
    Ok(true)
}

fn run_map(program: &PathBuf, pid: i32, args: &[u32]) -> Result<(), RootlessError> {
    let args_text = args
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let failed = |message: String| RootlessError::MapFailed {
        program: program.clone(),
        pid,
        args: args_text.clone(),
        message,
    };
    let out = Command::new(program)
        .arg(pid.to_string())
        .args(args.iter().map(u32::to_string))
        .output()
        .map_err(|e| failed(crate::report::chain(&e)))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(failed(if stderr.is_empty() {
        out.status.to_string()
    } else {
        stderr
    }))
}
