//! fuse-overlayfs: the overlay filesystem in user space, for rootless kernels whose overlayfs
//! cannot be mounted in a user namespace (before Linux 5.11).
//!
//! Each mount is one `fuse-overlayfs -f` process serving it. The process is started from one
//! thread that lives as long as kiln and asks the kernel to kill it (`PR_SET_PDEATHSIG`) when that
//! thread goes, so a killed build leaves no daemon behind: with the daemon gone, the mount dies
//! with kiln's mount namespace. Unmounting is `umount(2)` in that namespace (kiln is its root);
//! the daemon then ends by itself and is reaped.
//!
//! What fuse-overlayfs writes in the upper directory, besides the kernel's format (0/0 character
//! devices for whiteouts when `mknod` is allowed, which it is in a user namespace since Linux 5.8):
//! `.wh.NAME` empty files for whiteouts where `mknod` fails, an empty `.wh..wh..opq` file plus the
//! `user.fuseoverlayfs.opaque=y` xattr (`trusted.overlay.opaque` when it may set that) on an
//! opaque directory, sometimes a 0/0 device named `.wh..opq` beside them, and
//! `user.fuseoverlayfs.origin` on copied-up entries. [`super::diff`] reads all of these; lower
//! layers written by imports keep the kernel's format (`user.overlay.opaque`), which
//! fuse-overlayfs reads too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::store::is_mount_point;
use super::{SnapshotError, io_err};

/// The program's name, looked up on `PATH`.
pub(crate) const PROGRAM: &str = "fuse-overlayfs";

/// Prefix of the xattrs fuse-overlayfs keeps for itself.
pub(crate) const XATTR_PREFIX: &str = "user.fuseoverlayfs.";

/// The name prefix of fuse-overlayfs' whiteout files.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// The file that marks its directory opaque.
pub(crate) const OPAQUE_FILE: &str = ".wh..wh..opq";

/// How long a mount may take to appear.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the daemon may take to end after its mount is gone.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The fuse-overlayfs program on `PATH`.
pub(crate) fn program() -> Option<PathBuf> {
    crate::programs::on_path(PROGRAM)
}

/// The process serving one mount. Dropping it unmounts and ends the process (see [`Daemon::unmount`]).
#[derive(Debug)]
pub(crate) struct Daemon {
    target: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Unmounts and waits for the process to end (killing it when it does not). A mount still in
    /// use is detached instead, and its process reaped in the background once it ends.
    pub(crate) fn unmount(mut self) -> Result<(), SnapshotError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), SnapshotError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        use rustix::mount::UnmountFlags;
        if rustix::mount::unmount(&self.target, UnmountFlags::empty()).is_err() {
            // Still in use (a descriptor open under it): detached, the mount lives until the last
            // user lets go, and only then does its daemon end. It is reaped by a thread of its
            // own meanwhile; were kiln to end first, the daemon dies with it.
            let detached = rustix::mount::unmount(&self.target, UnmountFlags::DETACH);
            if detached.is_err() {
                let _ = child.kill();
            }
            let target = self.target.clone();
            let reaped = std::thread::Builder::new()
                .name("kiln-fuse-reap".to_owned())
                .spawn(move || {
                    let _ = child.wait();
                    tracing::debug!(target = %target.display(), "fuse-overlayfs of a detached mount ended");
                });
            if let Err(e) = reaped {
                tracing::debug!(error = %e, "cannot start a thread to reap fuse-overlayfs");
            }
            return detached.map_err(|e| io_err("unmount", &self.target)(e.into()));
        }
        // Unmounted: the daemon ends at once.
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if start.elapsed() < EXIT_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                _ => {
                    tracing::debug!(target = %self.target.display(), "fuse-overlayfs did not end after unmount; killed");
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(());
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "cannot unmount fuse-overlayfs");
        }
    }
}

type Job = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Starts `cmd` from the one long-lived spawning thread, with the parent-death signal set: the
/// signal follows the thread that forked, and the blocking threads a build runs on come and go.
fn spawn_tied(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);
    let (reply_tx, reply_rx) = mpsc::channel();
    {
        let mut guard = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("kiln-fuse-spawn".to_owned())
                .spawn(move || spawner(rx))?;
            *guard = Some(tx);
        }
        let Some(tx) = guard.as_ref() else {
            return Err(std::io::Error::other("no spawning thread"));
        };
        tx.send((cmd, reply_tx))
            .map_err(|_| std::io::Error::other("the spawning thread is gone"))?;
    }
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?
}

fn spawner(jobs: mpsc::Receiver<Job>) {
    use std::os::unix::process::CommandExt;
    let me = std::process::id();
    for (mut cmd, reply) in jobs {
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // kiln died between the fork and the line above: nobody would send the signal.
                if libc::getppid() as u32 != me {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let _ = reply.send(cmd.spawn());
    }
}

/// Mounts an overlay of `lowers` (topmost first) on `target` with fuse-overlayfs, writable with
/// `upper` (upper, work directories), read-only without; returns once the mount is there.
pub(crate) fn mount(
    program: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<Daemon, SnapshotError> {
    let failed = |msg: String| SnapshotError::Mount {
        target: target.to_path_buf(),
        layers: lowers.len(),
        source: std::io::Error::other(msg),
    };
    let mut paths: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    if let Some((u, w)) = upper {
        paths.extend([u, w]);
    }
    // The option syntax has no escapes for these.
    if let Some(p) = paths.iter().find(|p| {
        p.as_os_str()
            .as_encoded_bytes()
            .iter()
            .any(|b| b":,\\".contains(b))
    }) {
        return Err(failed(format!(
            "fuse-overlayfs cannot take the path {} (it has ':', ',' or '\\'); use a store path without them (--root)",
            p.display()
        )));
    }
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let mut opts = format!("lowerdir={}", lower.join(":"));
    if let Some((u, w)) = upper {
        // fsync=0: as the kernel overlay's `volatile` (see `Store::forget_after_reboot`).
        opts.push_str(&format!(
            ",upperdir={},workdir={},fsync=0",
            u.display(),
            w.display()
        ));
    }
    let log_dir = target.parent().unwrap_or(target);
    let log = tempfile::tempfile_in(log_dir).map_err(io_err("create log in", log_dir))?;
    let log2 = log.try_clone().map_err(io_err("create log in", log_dir))?;
    let mut cmd = Command::new(program);
    cmd.arg("-f")
        .arg("-o")
        .arg(&opts)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log2));
    let child =
        spawn_tied(cmd).map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
    let mut daemon = Daemon {
        target: target.to_path_buf(),
        child: Some(child),
    };
    let start = Instant::now();
    loop {
        if is_mount_point(target) {
            return Ok(daemon);
        }
        let exited = match daemon.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(status) = exited {
            daemon.child = None;
            return Err(failed(format!(
                "{} ended ({status}): {}",
                program.display(),
                log_text(log)
            )));
        }
        if start.elapsed() > MOUNT_TIMEOUT {
            drop(daemon);
            return Err(failed(format!(
                "{} did not mount within {}s: {}",
                program.display(),
                MOUNT_TIMEOUT.as_secs(),
                log_text(log)
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What the daemon printed, without libfuse's notice about an option it ignores.
fn log_text(mut log: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut s = String::new();
    let _ = log.seek(std::io::SeekFrom::Start(0));
    let _ = log.take(8192).read_to_string(&mut s);
    s.lines()
        .filter(|l| !l.starts_with("unknown argument ignored"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether fuse-overlayfs (`program`) mounts an overlay with a whiteout under `dir`.
pub(crate) fn probe(program: &Path, dir: &Path) -> Result<(), SnapshotError> {
    super::overlay::probe_with(
        dir,
        |lower, upper, work, merged| {
            mount(program, &[lower.to_path_buf()], Some((upper, work)), merged)
        },
        |daemon| daemon.unmount(),
    )
}
