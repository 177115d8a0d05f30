//! The built-in namespace sandbox, host side: prepares the run, starts the helper process
//! ([`super::helper`]) with the control socket on fd 3, streams the output and collects the result.

use std::borrow::Cow;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::prepare::{Prepared, prepare};
use super::protocol::{CONTROL_FD, HelperSpec, Message, NETNS_FD, VERSION, read_messages};
use super::{
    ExecError, ExecFuture, Executor, HELPER_ENV, NetworkMode, OutputSink, RunResult, RunSpec,
    Security, Stdin, Stream,
};

/// How the built-in sandbox starts its helper.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The binary to start as the helper: a program that calls
    /// [`super::sandbox_main_if_requested`] first in `main()`. Default `/proc/self/exe`.
    pub helper: PathBuf,
    /// Where per-run temporary files go (e.g. `<store>/kiln/run`).
    pub state_dir: PathBuf,
}

impl SandboxConfig {
    /// Re-executes the current program as the helper.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            helper: PathBuf::from("/proc/self/exe"),
            state_dir: state_dir.into(),
        }
    }

    /// Uses another helper binary (e.g. `kiln-sandbox`).
    pub fn with_helper(mut self, helper: impl Into<PathBuf>) -> Self {
        self.helper = helper.into();
        self
    }
}

/// Runs commands in fresh namespaces with a helper process per run. See the module docs of
/// [`super`] and `docs/isolation.md`.
#[derive(Debug, Clone)]
pub struct SandboxExecutor {
    config: SandboxConfig,
}

impl SandboxExecutor {
    /// An executor with this configuration.
    pub fn new(config: SandboxConfig) -> Self {
        Self { config }
    }
}

impl Executor for SandboxExecutor {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn run(&self, spec: RunSpec, out: OutputSink) -> ExecFuture<'_> {
        Box::pin(self.run_spec(spec, out))
    }
}

/// Puts each `(source, target)` descriptor at its target number, without close-on-exec. Sources
/// are first copied above every target, so no `dup2` overwrites a source still to be placed.
/// Runs between fork and exec: async-signal-safe calls only, no allocation.
pub(crate) fn place_fds(fds: &[(i32, i32)]) -> io::Result<()> {
    let mut moved = [0i32; 4];
    if fds.len() > moved.len() {
        return Err(io::Error::other("too many descriptors to place"));
    }
    for (i, (src, _)) in fds.iter().enumerate() {
        // SAFETY: fcntl on a descriptor open in this process.
        let m = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 10) };
        if m < 0 {
            return Err(io::Error::last_os_error());
        }
        moved[i] = m;
    }
    for (i, (_, target)) in fds.iter().enumerate() {
        // SAFETY: dup2 between descriptors open in this process; the copy is not close-on-exec.
        if unsafe { libc::dup2(moved[i], *target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How long to wait for the output pipes to close after killing a timed-out run.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(5);

impl SandboxExecutor {
    async fn run_spec(&self, spec: RunSpec, mut out: OutputSink) -> Result<RunResult, ExecError> {
        let start = Instant::now();
        let command = spec.command_line();
        let supervise = |what: &'static str| {
            let command = command.clone();
            move |source: io::Error| ExecError::Supervise {
                command,
                what,
                source,
            }
        };
        // Dropped last: the stubs are removed and the temporary directory deleted after the
        // helper is gone, also when this future is dropped.
        let prepared: Prepared = prepare(&spec, &self.config.state_dir)?;
        let helper_spec = HelperSpec {
            run: Cow::Borrowed(&spec),
            env: Cow::Borrowed(&prepared.env),
            mounts: Cow::Borrowed(&prepared.mounts),
            seccomp: match spec.security {
                Security::Sandbox => Some(
                    super::seccomp::default_program()
                        .map_err(|e| ExecError::InvalidSpec {
                            command: command.clone(),
                            reason: crate::report::chain(&e),
                        })?
                        .to_owned(),
                ),
                Security::Insecure => None,
            },
        };
        let json = serde_json::to_vec(&helper_spec)
            .map_err(|e| supervise("encode spec")(io::Error::other(e)))?;
        let (ours, theirs) = UnixStream::pair().map_err(supervise("create control socket"))?;

        let mut cmd = tokio::process::Command::new(&self.config.helper);
        cmd.env_clear()
            .env(HELPER_ENV, VERSION)
            .stdin(match spec.stdin {
                Stdin::Null => Stdio::null(),
                Stdin::Bytes(_) => Stdio::piped(),
                Stdin::Inherit => Stdio::inherit(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Kept until the helper is gone: the step's network namespace and its slirp4netns.
        let mut netns = match spec.network {
            NetworkMode::Private => Some(
                super::network::acquire()
                    .await
                    .map_err(supervise("set up the step's network"))?,
            ),
            NetworkMode::None | NetworkMode::Host => None,
        };
        if let Some(lease) = &mut netns
            && spec.security == Security::Insecure
        {
            lease.discard();
        }
        let mut fds = vec![(theirs.as_raw_fd(), CONTROL_FD)];
        if let Some(fd) = netns.as_ref().and_then(|l| l.fd()) {
            fds.push((fd.as_raw_fd(), NETNS_FD));
        }
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (fcntl, dup2) on descriptors that are open in the child.
        unsafe {
            cmd.pre_exec(move || place_fds(&fds));
        }
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            command: command.clone(),
            program: self.config.helper.clone(),
            source,
        })?;
        drop(theirs);

        let control = tokio::task::spawn_blocking(move || -> io::Result<Vec<Message>> {
            // A helper that dies early closes its end; the write error then is no news.
            let _ = (&ours).write_all(&json);
            let _ = ours.shutdown(std::net::Shutdown::Write);
            read_messages(&ours)
        });
        if let (Stdin::Bytes(bytes), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // The command may exit without reading everything.
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();

        let finished = {
            let pump = pump_output(&mut stdout, &mut stderr, &mut out);
            match spec.timeout {
                Some(t) => tokio::time::timeout(t, pump).await.is_ok(),
                None => {
                    pump.await;
                    true
                }
            }
        };
        if !finished {
            let _ = child.kill().await;
            // Everything in the PID namespace dies with the helper; the pipes close when it has.
            let _ = tokio::time::timeout(
                DRAIN_AFTER_KILL,
                pump_output(&mut stdout, &mut stderr, &mut OutputSink::discard()),
            )
            .await;
            prepared.finish();
            return Err(ExecError::Timeout {
                command,
                after: spec.timeout.unwrap_or_default(),
            });
        }
        let helper_status = child.wait().await.map_err(supervise("wait for helper"))?;
        let messages = control
            .await
            .map_err(|e| supervise("read helper reports")(io::Error::other(e)))?
            .map_err(supervise("read helper reports"))?;
        prepared.finish();
        result(command, helper_status, messages, start.elapsed())
    }
}

fn result(
    command: String,
    helper_status: std::process::ExitStatus,
    messages: Vec<Message>,
    duration: Duration,
) -> Result<RunResult, ExecError> {
    let mut status = None;
    for m in messages {
        match m {
            Message::Error {
                stage,
                message,
                errno,
            } => {
                return Err(ExecError::Setup {
                    command,
                    stage,
                    message,
                    errno,
                });
            }
            Message::Exit(s) => status = Some(s),
        }
    }
    match status {
        Some(status) => Ok(RunResult { status, duration }),
        None => Err(ExecError::Supervise {
            command,
            what: "wait for helper",
            source: io::Error::other(format!(
                "the sandbox helper ended ({helper_status}) without reporting the command's status"
            )),
        }),
    }
}

/// Copies both output streams to the sink until both are closed.
pub(crate) async fn pump_output<O, E>(
    stdout: &mut Option<O>,
    stderr: &mut Option<E>,
    out: &mut OutputSink,
) where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    // One read takes what a full pipe holds (64 KiB by default).
    let mut ob = vec![0u8; 64 * 1024];
    let mut eb = vec![0u8; 64 * 1024];
    while stdout.is_some() || stderr.is_some() {
        // Stdout first: what a command wrote there before its last words on stderr is read
        // before them, so that its error ends the failing step's tail.
        tokio::select! {
            biased;
            r = read_some(stdout, &mut ob) => match r {
                Ok(n) if n > 0 => out.emit(Stream::Stdout, &ob[..n]).await,
                _ => *stdout = None,
            },
            r = read_some(stderr, &mut eb) => match r {
                Ok(n) if n > 0 => out.emit(Stream::Stderr, &eb[..n]).await,
                _ => *stderr = None,
            },
        }
    }
}

/// Reads from a stream that is still open; never completes for a closed one.
async fn read_some<R: AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}
