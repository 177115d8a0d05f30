//! `RUN --mount=type=ssh`: the step reaches an SSH agent given to the build through a relay
//! socket that kiln owns, never the agent's own socket.
//!
//! Binding the caller's `$SSH_AUTH_SOCK` into the container would hand the step a path it may
//! not be allowed to open (the agent's directory is usually 0700 and the step may run as another
//! user) and would let the mount's `uid`/`gid`/`mode` change nothing. Instead each mount gets a
//! fresh listening socket in the step's scratch directory, owned and moded as the mount asks;
//! every connection to it is spliced to a new connection to the agent. The relay stops accepting
//! when the step ends (its [`AgentRelay`] is dropped); the key material never passes through
//! kiln's storage or cache.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::WorkerError;

/// A listening socket relaying to an SSH agent, alive until dropped.
pub(super) struct AgentRelay {
    path: PathBuf,
    /// The listening socket, shared with the acceptor thread: shutting it down wakes a blocked
    /// `accept` whether or not the socket's file still exists.
    listener: Arc<UnixListener>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl AgentRelay {
    /// Listens on `path` (which must not exist), owned by `owner` with `mode`, and relays every
    /// connection to the agent socket `agent`.
    pub(super) fn start(
        path: &Path,
        agent: &Path,
        owner: (u32, u32),
        mode: u32,
    ) -> Result<Self, WorkerError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |what: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| {
                WorkerError::Io(crate::report::IoError {
                    op: what,
                    path: p,
                    source,
                })
            }
        };
        // Fail now, with the agent's path in the message, rather than on the step's first use.
        UnixStream::connect(agent).map_err(io("connect to the SSH agent at", agent))?;
        let listener = UnixListener::bind(path).map_err(io("listen on", path))?;
        std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).map_err(io("chown", path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", path))?;
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let (stop_flag, accepting) = (stop.clone(), listener.clone());
        let acceptor = std::thread::Builder::new()
            .name("kiln-ssh-relay".into())
            .spawn(move || accept_loop(&accepting, &agent, &stop_flag))
            .map_err(io("start the SSH relay for", path))?;
        Ok(AgentRelay {
            path: path.to_path_buf(),
            listener,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The socket to bind into the container.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept (Linux fails it with EINVAL); it sees the flag and returns.
        let _ = rustix::net::shutdown(&*self.listener, rustix::net::Shutdown::Both);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, agent: &Path, stop: &AtomicBool) {
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match conn {
            Ok((client, _)) => client,
            Err(e) => {
                tracing::warn!("SSH relay accept failed: {e}", e = crate::report::chain(&e));
                // Not a busy loop if the error repeats.
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        let upstream = match UnixStream::connect(agent) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(agent = %agent.display(), "SSH agent connection failed: {e}", e = crate::report::chain(&e));
                continue;
            }
        };
        // Detached: each pair ends when either side closes, which the step's end guarantees
        // (its processes are all killed, closing their sockets).
        let _ = std::thread::Builder::new()
            .name("kiln-ssh-conn".into())
            .spawn(move || splice(client, upstream));
    }
}

/// Copies bytes both ways until both directions reach end of stream.
fn splice(a: UnixStream, b: UnixStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let back = std::thread::Builder::new()
        .name("kiln-ssh-conn".into())
        .spawn(move || pump(b2, a2));
    pump(a, b);
    if let Ok(t) = back {
        let _ = t.join();
    }
}

fn pump(mut from: UnixStream, mut to: UnixStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relays_both_ways_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let agent_path = dir.path().join("agent.sock");
        let agent = UnixListener::bind(&agent_path).unwrap();
        let server = std::thread::spawn(move || {
            // The start-up probe, then one real client.
            let _probe = agent.accept().unwrap();
            let (mut c, _) = agent.accept().unwrap();
            let mut req = [0u8; 5];
            c.read_exact(&mut req).unwrap();
            c.write_all(b"pong:").unwrap();
            c.write_all(&req).unwrap();
        });
        let relay_path = dir.path().join("relay.sock");
        let me = (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        let relay = AgentRelay::start(&relay_path, &agent_path, me, 0o600).unwrap();
        let mode = std::fs::metadata(relay.path()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let mut c = UnixStream::connect(relay.path()).unwrap();
        c.write_all(b"ping!").unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "pong:ping!");
        server.join().unwrap();
        // The step's scratch directory may be gone before the relay: stopping must not need
        // the socket's file.
        std::fs::remove_file(&relay_path).unwrap();
        drop(relay);
        assert!(!relay_path.exists());
        assert!(UnixStream::connect(&relay_path).is_err());
    }

    #[test]
    fn a_dead_agent_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-agent.sock");
        let err = AgentRelay::start(&dir.path().join("r.sock"), &missing, (0, 0), 0o600)
            .err()
            .unwrap();
        assert!(err.to_string().contains("no-agent.sock"), "{err}");
    }
}
