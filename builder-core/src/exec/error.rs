//! Errors of the executors. Every variant names the command it was about.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a command could not be run or supervised. A command that ran and exited non-zero is not an
/// error (see [`super::RunResult`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The spec cannot be run as given.
    #[error("cannot run `{command}`: {reason}")]
    InvalidSpec {
        /// The command line.
        command: String,
        /// What is wrong with the spec.
        reason: String,
    },
    /// Preparing the run on the host side failed (temp files, mount points in the rootfs).
    #[error("cannot prepare `{command}`: {what} {path}")]
    Prepare {
        /// The command line.
        command: String,
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The helper or runtime binary could not be started.
    #[error("cannot start `{command}`: cannot spawn {program}")]
    Spawn {
        /// The command line.
        command: String,
        /// The helper or runtime binary.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Setting up the isolated environment inside the helper failed (a mount, the user switch, the
    /// working directory, finding the executable).
    #[error("cannot run `{command}`: {stage}: {message}")]
    Setup {
        /// The command line.
        command: String,
        /// The setup stage that failed, e.g. `mount /proc` or `chdir /app`.
        stage: String,
        /// The reason, usually the OS error.
        message: String,
        /// The OS error number, when there was one.
        errno: Option<i32>,
    },
    /// The OCI runtime failed before or around the command (its own error output is included).
    #[error("cannot run `{command}` with {runtime}: {reason}")]
    Runtime {
        /// The command line.
        command: String,
        /// The runtime binary.
        runtime: PathBuf,
        /// What the runtime said.
        reason: String,
    },
    /// Talking to the helper or reading the command's output failed.
    #[error("lost track of `{command}`: {what}")]
    Supervise {
        /// The command line.
        command: String,
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The command ran longer than the spec's timeout and was killed.
    #[error("`{command}` timed out after {after:?} and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout.
        after: Duration,
    },
}

impl ExecError {
    /// Whether the error says the sandbox is unsupported on this host (no namespaces, no
    /// permission), as opposed to a problem with the command or the rootfs.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            ExecError::Setup { errno: Some(e), stage, .. }
                if (*e == libc::EPERM || *e == libc::EINVAL || *e == libc::ENOSPC)
                    && stage.starts_with("unshare")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_means_namespaces_refused() {
        let setup = |stage: &str, errno| ExecError::Setup {
            command: "true".into(),
            stage: stage.into(),
            message: "denied".into(),
            errno: Some(errno),
        };
        assert!(setup("unshare namespaces", libc::EPERM).is_unsupported());
        assert!(setup("unshare user namespace", libc::ENOSPC).is_unsupported());
        assert!(!setup("mount proc on /proc", libc::EPERM).is_unsupported());
        let e = setup("working directory /app", libc::ENOENT);
        assert_eq!(
            e.to_string(),
            "cannot run `true`: working directory /app: denied"
        );
    }
}
