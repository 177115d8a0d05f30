//! The sandbox helper: the process [`super::SandboxExecutor`] starts for every run.
//!
//! Three processes, all single-threaded, so `fork()` followed by ordinary Rust is sound:
//!
//! 1. the helper (started by the executor, in the host's PID namespace) enters a user namespace when
//!    not root, unshares the mount, UTS, IPC, PID and (unless `--network=host`) network namespaces and
//!    forks;
//! 2. the init process (PID 1 of the new PID namespace) dies with the helper (`PR_SET_PDEATHSIG`),
//!    sets the host name, brings `lo` up, carries out the mount plan, pivots into the rootfs, forks
//!    the command and reaps every orphan until the command exits, then reports its status and exits,
//!    which makes the kernel kill whatever the command left running;
//! 3. the command process drops capabilities to Docker's default set, switches user, changes
//!    directory, marks every inherited descriptor close-on-exec and executes the command.
//!
//! Errors and the exit status travel back as [`Message`]s on the control socket (fd 3).
//!
//! This module must not start threads or touch the async runtime: it runs before either exists.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::thread::UnshareFlags;

use super::command::exec_command;
use super::plan::mount_plan_sized;
use super::protocol::{CONTROL_FD, HelperSpec, Message, NETNS_FD, VERSION};
use super::sys::{RealSys, StepError, apply};
use super::{ExitStatus, HELPER_ENV, NetworkMode, network};

/// Runs the sandbox helper and exits if this process was started as one; returns at once
/// otherwise.
///
/// Call it first thing in `main()`, before creating any thread or async runtime (so not from a
/// `#[tokio::main]` function): the helper needs a single-threaded process and checks that it has
/// one.
pub fn sandbox_main_if_requested() {
    let Some(version) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let code = if version == VERSION {
        helper_main()
    } else {
        eprintln!(
            "kiln sandbox helper: protocol version {version:?} does not match this binary's {VERSION}"
        );
        125
    };
    std::process::exit(code)
}

pub(super) fn err(stage: impl Into<String>) -> impl FnOnce(io::Error) -> StepError {
    let stage = stage.into();
    move |source| StepError { stage, source }
}

pub(super) fn errno(stage: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> StepError {
    let f = err(stage);
    move |e| f(e.into())
}

fn helper_main() -> i32 {
    // SAFETY: only asks whether the descriptor is open, before anything takes ownership of it.
    if unsafe { libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        eprintln!("kiln sandbox helper: no control socket on fd {CONTROL_FD}");
        return 125;
    }
    // SAFETY: the descriptor is open (checked above) and the executor placed the control socket
    // there; nothing else in this process owns it.
    let ctl = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
    let ctl = UnixStream::from(ctl);
    let mut buf = Vec::new();
    let spec: HelperSpec<'static> = match (&ctl)
        .read_to_end(&mut buf)
        .and_then(|_| serde_json::from_slice(&buf).map_err(io::Error::other))
    {
        Ok(spec) => spec,
        Err(e) => {
            let _ = Message::error("read spec", &e).send(&ctl);
            return 125;
        }
    };
    match supervise(&spec, &ctl) {
        Ok(code) => code,
        Err(e) => {
            let _ = Message::error(e.stage, &e.source).send(&ctl);
            125
        }
    }
}

pub(crate) fn single_threaded() -> io::Result<bool> {
    Ok(std::fs::read_dir("/proc/self/task")?.count() == 1)
}

fn supervise(spec: &HelperSpec<'_>, ctl: &UnixStream) -> Result<i32, StepError> {
    if !single_threaded().map_err(err("check threads"))? {
        return Err(StepError {
            stage: "start helper".into(),
            source: io::Error::other(
                "the sandbox helper is multi-threaded: call sandbox_main_if_requested() first in main()",
            ),
        });
    }
    // Without the host's root and without subordinate ids, only root exists in the step.
    let not_root = !rustix::process::geteuid().is_root();
    let rootless = not_root || crate::rootless::current().single_id();
    if rootless {
        only_root_mapped(spec)?;
    }
    if not_root {
        enter_user_namespace()?;
    }
    let mut flags =
        UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC | UnshareFlags::NEWPID;
    match spec.run.network {
        NetworkMode::None => flags |= UnshareFlags::NEWNET,
        NetworkMode::Private => {
            network::join(NETNS_FD).map_err(err("join the step's network namespace"))?;
            // SAFETY: the executor placed the namespace there for this call only.
            drop(unsafe { OwnedFd::from_raw_fd(NETNS_FD) });
        }
        NetworkMode::Host => {}
    }
    // SAFETY: no CLONE_FILES, and the process is single-threaded (checked above).
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(errno("unshare namespaces"))?;

    let (alive_r, alive_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(errno("create pipe"))?;
    // SAFETY: the process is single-threaded, so the child may run any code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork init")(io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(alive_w);
        let code = init_main(spec, ctl, &alive_r, rootless);
        // SAFETY: ends this process without running the parent's exit handlers twice.
        unsafe { libc::_exit(code) }
    }
    drop(alive_r);
    watch_executor(pid, ctl);
    let status = wait_for(pid).map_err(errno("wait for init"))?;
    drop(alive_w);
    if !spec.run.init {
        // The command was PID 1 itself; its status is init's. A setup error it reported before
        // this takes precedence with the executor.
        let _ = Message::Exit(status).send(ctl);
    }
    Ok(match status {
        ExitStatus::Code(c) => c,
        ExitStatus::Signal(s) => 128 + s,
    })
}

/// Returns when init exits, or kills it (and with it the whole PID namespace) when the executor's
/// end of the control socket closes: kiln died, and nobody would collect the result. The executor
/// keeps its end open until the helper has exited, so a hang-up means exactly that.
fn watch_executor(pid: i32, ctl: &UnixStream) {
    // SAFETY: plain syscall; the returned descriptor is owned right after.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return; // Pre-5.3 kernel: fall back to a plain wait.
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let mut fds = [
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            // Only POLLHUP matters, which poll always reports.
            fd: ctl.as_raw_fd(),
            events: 0,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            return;
        }
        if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // SAFETY: plain syscall on our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return;
        }
    }
}

fn wait_for(pid: i32) -> rustix::io::Result<ExitStatus> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(rustix::io::Errno::SRCH)?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, st))) => return Ok(status_of(st)),
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn status_of(st: rustix::process::WaitStatus) -> ExitStatus {
    match (st.exit_status(), st.terminating_signal()) {
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(s),
        (None, None) => ExitStatus::Code(255),
    }
}

/// Refuses a step user other than root where no other id exists.
fn only_root_mapped(spec: &HelperSpec<'_>) -> Result<(), StepError> {
    if spec.run.user.uid != 0 || spec.run.user.gid != 0 || !spec.run.user.additional_gids.is_empty()
    {
        return Err(StepError {
            stage: "user namespace".into(),
            source: io::Error::other(format!(
                "the step runs as uid {} gid {}, but this rootless user namespace maps only \
                 root: give the user ranges in /etc/subuid and /etc/subgid (and install newuidmap)",
                spec.run.user.uid, spec.run.user.gid
            )),
        });
    }
    Ok(())
}

/// Maps root in a new user namespace to the calling user (a library caller that did not enter
/// kiln's own user namespace first: see [`crate::rootless::reexec`]).
fn enter_user_namespace() -> Result<(), StepError> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // SAFETY: no CLONE_FILES, and the process is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
        .map_err(errno("unshare user namespace"))?;
    std::fs::write("/proc/self/setgroups", "deny").map_err(err("write setgroups"))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).map_err(err("write uid_map"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")).map_err(err("write gid_map"))?;
    Ok(())
}

fn init_main(spec: &HelperSpec<'_>, ctl: &UnixStream, alive: &OwnedFd, rootless: bool) -> i32 {
    match init_setup(spec, alive, rootless) {
        Ok(()) => {}
        Err(e) => {
            let _ = Message::error(e.stage, &e.source).send(ctl);
            return 125;
        }
    }
    if !spec.run.init {
        // The command becomes PID 1 (`docker run` without `--init`); the parent-death signal
        // survives the exec, so it still dies with the helper.
        let e = exec_command(spec, rootless);
        let _ = Message::error(e.stage, &e.source).send(ctl);
        return 127;
    }
    // SAFETY: the process is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let _ = Message::error("fork command", &io::Error::last_os_error()).send(ctl);
        return 125;
    }
    if pid == 0 {
        let e = exec_command(spec, rootless);
        let _ = Message::error(e.stage, &e.source).send(ctl);
        // SAFETY: ends the failed command process.
        unsafe { libc::_exit(127) }
    }
    // Reap everything (orphans are re-parented to us) until the command itself exits; returning
    // then ends the PID namespace and the kernel kills what is left.
    let status = loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, st))) if p.as_raw_nonzero().get() == pid => break status_of(st),
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                let _ = Message::error("wait for command", &e.into()).send(ctl);
                return 125;
            }
        }
    };
    let _ = Message::Exit(status).send(ctl);
    0
}

fn init_setup(spec: &HelperSpec<'_>, alive: &OwnedFd, rootless: bool) -> Result<(), StepError> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(errno("set parent death signal"))?;
    // The helper may have died before the line above: its end of the pipe is then closed.
    let mut pfd = libc::pollfd {
        fd: alive.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    if unsafe { libc::poll(&mut pfd, 1, 0) } != 0 {
        return Err(err("start init")(io::Error::other("the helper exited")));
    }
    rustix::system::sethostname(spec.run.hostname.as_bytes())
        .map_err(errno(format!("set host name {:?}", spec.run.hostname)))?;
    if spec.run.network == NetworkMode::None {
        loopback_up().map_err(err("bring up lo"))?;
    }
    apply(
        &mut RealSys,
        &spec.run.rootfs,
        &mount_plan_sized(&spec.mounts, rootless, spec.run.settings.shm_size),
    )
}

/// `ip link set lo up` in the new network namespace.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket call; the descriptor is owned right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
