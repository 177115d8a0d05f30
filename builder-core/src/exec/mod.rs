//! Isolated execution of RUN steps.
//!
//! This module owns the [`Executor`] trait, the description of one command to run ([`RunSpec`]) and
//! two implementations:
//!
//! - [`SandboxExecutor`], the built-in namespace sandbox. Every run starts a fresh helper process
//!   (by default `/proc/self/exe`, re-executed with a marker in its environment) that is
//!   single-threaded from its first instruction, because `unshare(CLONE_NEWUSER)` and `fork()` followed
//!   by ordinary Rust are only sound in a single-threaded process. The embedding program must call
//!   [`sandbox_main_if_requested`] first thing in `main()`, before any thread (a tokio runtime
//!   included) exists; programs that cannot, point [`SandboxConfig::helper`] at the `kiln-sandbox`
//!   binary shipped with this crate.
//! - [`RuncExecutor`], which writes an OCI bundle (`config.json` from `oci-spec`) and calls
//!   `runc run`.
//!
//! Both create the mount points a run needs inside the rootfs before it starts and remove the ones
//! they created afterwards, so `/etc/hosts`, `/proc` or a secret's target never end up in a layer.
//!
//! This module must not know about snapshots, layers or the build graph: it is given a prepared
//! rootfs directory and runs one command in it. Isolation details are in `docs/isolation.md`.
//!
//! ```no_run
//! // First thing in `main()`: returns at once unless this process was started as the helper.
//! kiln_builder_core::exec::sandbox_main_if_requested();
//! // ... then build the tokio runtime and run the program.
//! ```

mod caps;
mod command;
mod error;
mod helper;
mod mountns;
mod network;
mod plan;
mod prepare;
mod protocol;
mod runc;
mod sandbox;
mod seccomp;
mod settings;
mod stubs;
mod sys;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

pub use error::ExecError;
pub use helper::sandbox_main_if_requested;
pub use mountns::isolate_mounts;
pub use network::{slirp4netns_installed, user_mode_available};
pub use runc::{RuncConfig, RuncExecutor};
pub use sandbox::{SandboxConfig, SandboxExecutor};
pub use seccomp::SeccompError;
pub use settings::{StepSettings, Ulimit};

/// The environment variable that marks a process as the sandbox helper. Its value is the protocol
/// version.
pub const HELPER_ENV: &str = "KILN_SANDBOX_HELPER";

/// The numeric user a command runs as, already resolved from the rootfs's `/etc/passwd` and
/// `/etc/group` by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
}

/// The network a command sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetworkMode {
    /// Its own network namespace with only the loopback interface up.
    #[default]
    None,
    /// The host's network namespace (`--network=host`).
    Host,
    /// Its own network namespace with outbound network through user-mode networking
    /// (`slirp4netns`): DNS and connections to the outside world work, the host's loopback
    /// services do not. Needs [`user_mode_available`].
    Private,
}

/// How much of the sandbox's protection a command keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Security {
    /// Docker's default capabilities and seccomp profile.
    #[default]
    Sandbox,
    /// Every capability and no system-call filter (`RUN --security=insecure`, granted with
    /// `--allow security.insecure`). Namespaces, mounts and devices stay as in `Sandbox`.
    Insecure,
}

/// A mount added to the command's filesystem besides the standard ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mount {
    /// Binds a host file or directory (`RUN --mount=type=bind`, a stage's rootfs, a cache dir).
    Bind {
        /// Host path of the file or directory.
        #[serde(with = "protocol::path_text")]
        source: PathBuf,
        /// Absolute path inside the rootfs.
        #[serde(with = "protocol::path_text")]
        target: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs (`RUN --mount=type=tmpfs`).
    Tmpfs {
        /// Absolute path inside the rootfs.
        #[serde(with = "protocol::path_text")]
        target: PathBuf,
        /// Size limit in bytes; the kernel's default (half of RAM) when unset.
        size: Option<u64>,
    },
    /// A secret: a host file bound read-only at `target`. The caller writes the secret into a
    /// private file with the mode and owner it must have inside; the target's mount point is removed
    /// after the run, so the secret never reaches a layer.
    Secret {
        /// Host path of the file holding the secret.
        #[serde(with = "protocol::path_text")]
        source: PathBuf,
        /// Absolute path inside the rootfs, e.g. `/run/secrets/id`.
        #[serde(with = "protocol::path_text")]
        target: PathBuf,
    },
}

impl Mount {
    /// The absolute path inside the rootfs.
    pub fn target(&self) -> &std::path::Path {
        match self {
            Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Secret { target, .. } => target,
        }
    }
}

/// What the command reads on its standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stdin {
    /// `/dev/null`.
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// The calling process's own standard input, passed straight through (`kiln run -i`).
    Inherit,
}

/// One command to run in a prepared rootfs. Its `Debug` shows the environment's names only: values
/// carry secrets (`RUN --mount=type=secret,env=`) and proxy passwords.
///
/// Its serialised form is what the sandbox helper reads besides the prepared environment and
/// mounts: `env`, `mounts`, `stdin` and `timeout` are left out of it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSpec {
    /// The command and its arguments. A name without `/` is looked up in the `PATH` of `env`
    /// (or the default `PATH`) inside the rootfs.
    pub argv: Vec<String>,
    /// The exact environment, in order.
    #[serde(skip)]
    pub env: Vec<(String, String)>,
    /// Absolute working directory inside the rootfs; it must exist.
    #[serde(with = "protocol::path_text")]
    pub cwd: PathBuf,
    /// The user to run as.
    pub user: User,
    /// Host name inside the UTS namespace; also written to `/etc/hosts`.
    pub hostname: String,
    /// Network isolation.
    pub network: NetworkMode,
    /// Capabilities and system-call filter.
    pub security: Security,
    /// The prepared root filesystem (a snapshot's writable directory).
    #[serde(with = "protocol::path_text")]
    pub rootfs: PathBuf,
    /// Extra mounts, applied in order after the standard ones.
    #[serde(skip)]
    pub mounts: Vec<Mount>,
    /// Standard input.
    #[serde(skip)]
    pub stdin: Stdin,
    /// Kill the command and fail with [`ExecError::Timeout`] after this long.
    #[serde(skip)]
    pub timeout: Option<Duration>,
    /// Run kiln's reaper as PID 1 with the command as its child, which reaps orphaned zombies
    /// (RUN steps; `kiln run --init`); otherwise the command itself is PID 1, as under
    /// `docker run`. The built-in sandbox only: under runc the command is always PID 1.
    pub init: bool,
    /// Extra hosts, `/dev/shm` size and resource limits.
    pub settings: StepSettings,
}

impl fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}=[{} bytes]", v.len()))
            .collect();
        f.debug_struct("RunSpec")
            .field("argv", &self.argv)
            .field("env", &env)
            .field("cwd", &self.cwd)
            .field("user", &self.user)
            .field("hostname", &self.hostname)
            .field("network", &self.network)
            .field("security", &self.security)
            .field("rootfs", &self.rootfs)
            .field("mounts", &self.mounts)
            .field("stdin", &self.stdin)
            .field("timeout", &self.timeout)
            .field("init", &self.init)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The `PATH` used when the spec's environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl RunSpec {
    /// A spec running `argv` as root in `/` of `rootfs`, with `PATH` set to the default, host name
    /// `kiln`, no network, no extra mounts and no stdin.
    pub fn new(rootfs: impl Into<PathBuf>, argv: Vec<String>) -> Self {
        Self {
            argv,
            env: vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())],
            cwd: PathBuf::from("/"),
            user: User::default(),
            hostname: "kiln".to_owned(),
            network: NetworkMode::None,
            security: Security::Sandbox,
            rootfs: rootfs.into(),
            mounts: Vec::new(),
            stdin: Stdin::Null,
            timeout: None,
            init: true,
            settings: StepSettings::default(),
        }
    }

    /// The command as one line for messages, arguments quoted where needed.
    pub fn command_line(&self) -> String {
        command_line(&self.argv)
    }
}

pub(crate) fn command_line(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !arg.is_empty()
            && arg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
        if plain {
            out.push_str(arg);
        } else {
            out.push('\'');
            out.push_str(&arg.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// The result of a command that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// How it ended; a non-zero exit is a result, not an [`ExecError`].
    pub status: ExitStatus,
    /// Wall time from start to end.
    pub duration: Duration,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives the command's output as it comes, chunk by chunk (not split at lines).
pub struct OutputSink(SinkKind);

type ChunkFn = dyn FnMut(Stream, &[u8]) + Send;

enum SinkKind {
    Call(Box<ChunkFn>),
    Channel(tokio::sync::mpsc::Sender<(Stream, Vec<u8>)>),
}

impl OutputSink {
    /// A sink calling `f` for every chunk. The command's output is not read while `f` runs.
    pub fn new(f: impl FnMut(Stream, &[u8]) + Send + 'static) -> Self {
        Self(SinkKind::Call(Box::new(f)))
    }

    /// A sink dropping everything.
    pub fn discard() -> Self {
        Self::new(|_, _| {})
    }

    /// A sink sending owned chunks to a bounded channel (e.g. to turn them into progress events).
    /// While the channel is full the output is not read, so a command that writes faster than the
    /// receiver takes its output is slowed down by its full pipe, never buffered without bound. A
    /// closed receiver is ignored: the output is read and discarded, the command keeps running.
    pub fn channel(tx: tokio::sync::mpsc::Sender<(Stream, Vec<u8>)>) -> Self {
        Self(SinkKind::Channel(tx))
    }

    pub(crate) async fn emit(&mut self, stream: Stream, data: &[u8]) {
        match &mut self.0 {
            SinkKind::Call(f) => f(stream, data),
            SinkKind::Channel(tx) => {
                if !tx.is_closed() {
                    let _ = tx.send((stream, data.to_vec())).await;
                }
            }
        }
    }
}

impl fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OutputSink")
    }
}

/// The future an [`Executor`] returns. Dropping it cancels the run: every process of the command is
/// killed and temporary files are removed.
pub type ExecFuture<'a> = Pin<Box<dyn Future<Output = Result<RunResult, ExecError>> + Send + 'a>>;

/// Runs a [`RunSpec`] isolated from the host.
///
/// The API is async because the solver schedules steps on tokio and a run is mostly waiting: on
/// the child and on its output, which is streamed to the [`OutputSink`] as it comes. The trait is
/// object-safe so the solver can hold an `Arc<dyn Executor>` chosen at startup.
pub trait Executor: Send + Sync {
    /// A short name for messages (`sandbox`, `runc`).
    fn name(&self) -> &'static str;

    /// Runs the command and returns how it ended. A command that exits non-zero is `Ok`; an error
    /// means it could not be started or supervised.
    fn run(&self, spec: RunSpec, out: OutputSink) -> ExecFuture<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_what_needs_it() {
        let argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo 'hi' there".to_owned(),
            String::new(),
        ];
        assert_eq!(
            command_line(&argv),
            r#"/bin/sh -c 'echo '\''hi'\'' there' ''"#
        );
    }

    #[test]
    fn executor_is_object_safe() {
        fn take(_: Option<std::sync::Arc<dyn Executor>>) {}
        take(None);
    }

    #[test]
    fn debug_shows_no_environment_values() {
        let mut spec = RunSpec::new("/r", vec!["true".into()]);
        spec.env.push(("TOKEN".into(), "s3cr3t-value".into()));
        let shown = format!("{spec:?}");
        assert!(shown.contains("TOKEN=[12 bytes]"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn exit_status_display() {
        assert!(ExitStatus::Code(0).success());
        assert!(!ExitStatus::Signal(9).success());
        assert_eq!(ExitStatus::Code(3).to_string(), "exit code 3");
    }
}
