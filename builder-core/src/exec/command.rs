//! The command process of the sandbox (the third process of [`super::helper`]): drops
//! capabilities and privileges, applies the step's limits, switches user and directory, and
//! executes the command. Runs after `fork()` in a single-threaded process: no threads, no
//! async runtime.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::thread::{CapabilitySet, CapabilitySets};

use super::helper::{err, errno};
use super::protocol::HelperSpec;
use super::sys::StepError;
use super::{DEFAULT_PATH, caps, seccomp};

/// Becomes the command; returns only on failure.
pub(super) fn exec_command(spec: &HelperSpec<'_>, rootless: bool) -> StepError {
    match try_exec(spec, rootless) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(spec: &HelperSpec<'_>, rootless: bool) -> Result<std::convert::Infallible, StepError> {
    rustix::process::setsid().map_err(errno("setsid"))?;
    for u in &spec.run.settings.ulimits {
        set_ulimit(u)?;
    }
    if !spec.insecure() {
        drop_bounding_set()?;
    }
    // Loaded while the process still has CAP_SYS_ADMIN (no no_new_privs needed, as in Docker);
    // every call below is one the profile allows.
    if let Some(program) = &spec.seccomp {
        use base64::Engine as _;
        let program = base64::engine::general_purpose::STANDARD
            .decode(program)
            .map_err(|e| err("decode seccomp filter")(io::Error::other(e)))?;
        seccomp::load(&program).map_err(err("load seccomp filter"))?;
    }
    let groups: Vec<_> = spec
        .run
        .user
        .additional_gids
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    let uid = rustix::process::Uid::from_raw(spec.run.user.uid);
    let gid = rustix::process::Gid::from_raw(spec.run.user.gid);
    // A single-id user namespace denies setgroups; its process has no supplementary groups.
    if !rootless {
        rustix::thread::set_thread_groups(&groups).map_err(errno("setgroups"))?;
    }
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(errno(format!("setgid {}", spec.run.user.gid)))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(errno(format!("setuid {}", spec.run.user.uid)))?;
    if spec.run.user.uid == 0 && !spec.insecure() {
        let set = caps::default_set();
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: set,
                permitted: set,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(errno("set capabilities"))?;
    }
    rustix::process::chdir(&spec.run.cwd).map_err(|e| StepError {
        stage: format!("working directory {}", spec.run.cwd.display()),
        source: e.into(),
    })?;
    // SAFETY: marks every descriptor above stderr close-on-exec; none is used as an owned Rust
    // object past exec.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(err("close inherited descriptors")(
            io::Error::last_os_error(),
        ));
    }
    reset_signals();
    // Strings are in the Dockerfile's lossless form: each byte that was not UTF-8 is its
    // reserved code point until here (`kiln_dockerfile_parser::bytes`).
    let cstr = |s: &str, what: &str| {
        CString::new(kiln_dockerfile_parser::bytes::to_bytes(s).into_owned()).map_err(|_| {
            StepError {
                stage: what.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{s:?} contains a NUL byte"),
                ),
            }
        })
    };
    let argv: Vec<CString> = spec
        .run
        .argv
        .iter()
        .map(|a| cstr(a, "argument"))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|e| cstr(e, "environment"))
        .collect::<Result<_, _>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_p.push(std::ptr::null());

    let path_var = spec
        .env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let prog = &spec.run.argv[0];
    let stage = format!("exec {prog:?}");
    let mut denied = None;
    for cand in candidates(prog, path_var) {
        let c = CString::new(cand.into_os_string().into_vec()).map_err(|_| StepError {
            stage: "executable path".to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"),
        })?;
        // SAFETY: argv and envp are NUL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(c.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) if !prog.contains('/') => continue,
            Some(libc::EACCES) if !prog.contains('/') => denied = Some(e),
            _ => return Err(err(stage)(e)),
        }
    }
    Err(match denied {
        Some(e) => err(stage)(e),
        None => StepError {
            stage,
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "executable file not found in $PATH",
            ),
        },
    })
}

/// `--ulimit`: sets one resource limit (raising a hard limit needs `CAP_SYS_RESOURCE`).
fn set_ulimit(u: &super::Ulimit) -> Result<(), StepError> {
    let stage = format!("set ulimit {}", u.name);
    let resource = u.resource().ok_or_else(|| StepError {
        stage: stage.clone(),
        source: io::Error::other("unknown resource"),
    })?;
    let lim = libc::rlimit {
        rlim_cur: if u.soft == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            u.soft
        },
        rlim_max: if u.hard == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            u.hard
        },
    };
    // SAFETY: a valid rlimit for this process.
    if unsafe {
        libc::prlimit(
            0,
            resource as libc::__rlimit_resource_t,
            &lim,
            std::ptr::null_mut(),
        )
    } < 0
    {
        return Err(err(stage)(io::Error::last_os_error()));
    }
    Ok(())
}

/// Gives the command Docker's signal state: every disposition the default and nothing blocked.
/// Handlers are reset by `execve` anyway, but ignored signals and the mask are inherited, and
/// kiln's runtime ignores `SIGPIPE`.
fn reset_signals() {
    // The kernel's `struct sigaction`: the C library's wrapper refuses the two real-time signals
    // it keeps for itself, which a parent may still have left ignored.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid struct for the kernel's rt_sigaction with an 8-byte mask; resetting to
        // the default disposition runs no handler.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    // SAFETY: an empty set, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Where to look for `prog`: itself when it has a `/`, else every `PATH` entry (an empty entry
/// meaning the working directory, as execvp does).
fn candidates(prog: &str, path: &str) -> Vec<PathBuf> {
    use kiln_dockerfile_parser::bytes::to_path;
    if prog.contains('/') {
        return vec![to_path(prog).into_owned()];
    }
    path.split(':')
        .map(|d| {
            if d.is_empty() {
                Path::new(".").join(to_path(prog))
            } else {
                to_path(d).join(to_path(prog))
            }
        })
        .collect()
}

/// Removes every capability outside Docker's default set from the bounding set, so not even a
/// setuid binary can get it back.
fn drop_bounding_set() -> Result<(), StepError> {
    let keep = caps::default_set();
    for bit in 0..64u32 {
        let cap = CapabilitySet::from_bits_retain(1u64 << bit);
        if keep.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            // Past the kernel's last capability.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(errno(format!("drop capability {bit}"))(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_candidates() {
        assert_eq!(candidates("/bin/sh", "/x"), vec![PathBuf::from("/bin/sh")]);
        assert_eq!(candidates("./run", "/x"), vec![PathBuf::from("./run")]);
        assert_eq!(
            candidates("ls", "/usr/bin::/bin"),
            vec![
                PathBuf::from("/usr/bin/ls"),
                PathBuf::from("./ls"),
                PathBuf::from("/bin/ls")
            ]
        );
    }
}
