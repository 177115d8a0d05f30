//! `--ssh ID=KEYFILE[,KEYFILE...]`: an SSH agent that kiln serves itself with the keys of private
//! key files, as BuildKit does for `docker build --ssh default=$HOME/.ssh/id_ed25519`.
//!
//! The keys are read once (OpenSSH format, Ed25519; an encrypted key is refused with its file's
//! name: kiln cannot ask for a passphrase) and held in memory only. [`KeyAgent`] listens on a
//! socket in a private directory (0700) and answers the two requests an SSH client makes of an
//! agent (draft-miller-ssh-agent): list the identities, and sign data with one of them. Every
//! other request (adding, removing, locking keys) gets `SSH_AGENT_FAILURE`. Steps never see this
//! socket: `RUN --mount=type=ssh` reaches it through the per-step relay, as it reaches a
//! forwarded agent.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use signature::Signer as _;
use ssh_key::{Algorithm, PrivateKey};

use crate::secret::SecretError;

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;

/// The largest request read (OpenSSH's agent allows 256 KiB).
const MAX_MESSAGE: usize = 256 * 1024;

/// One key the agent holds: its public blob (wire form), comment and private half.
struct Identity {
    blob: Vec<u8>,
    comment: String,
    key: PrivateKey,
}

/// Reads the private keys of `--ssh id=files`.
fn load(id: &str, files: &[PathBuf]) -> Result<Vec<Identity>, SecretError> {
    let bad = |path: &Path, reason: String| SecretError::SshKey {
        id: id.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read(path).map_err(|source| SecretError::Agent {
            id: id.to_string(),
            path: path.clone(),
            source,
        })?;
        let key = PrivateKey::from_openssh(&text).map_err(|e| {
            bad(
                path,
                format!("not an OpenSSH private key ({e}); convert it with `ssh-keygen -p -f`"),
            )
        })?;
        if key.is_encrypted() {
            return Err(bad(
                path,
                "the key is encrypted (passphrase-protected) and kiln cannot ask for the \
                 passphrase: add it to an ssh-agent (`ssh-add`) and pass the agent's socket \
                 (`--ssh default`)"
                    .into(),
            ));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(bad(
                path,
                format!(
                    "{} keys are not supported from files (Ed25519 only): add it to an \
                     ssh-agent and pass the agent's socket",
                    key.algorithm()
                ),
            ));
        }
        let blob = key
            .public_key()
            .to_bytes()
            .map_err(|e| bad(path, e.to_string()))?;
        out.push(Identity {
            blob,
            comment: key.comment().to_string(),
            key,
        });
    }
    Ok(out)
}

/// An agent serving keys from files, alive until dropped.
pub struct KeyAgent {
    dir: tempfile::TempDir,
    listener: Arc<UnixListener>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for KeyAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAgent")
            .field("socket", &self.socket())
            .finish_non_exhaustive()
    }
}

impl KeyAgent {
    /// Reads the keys of `--ssh id=files` and starts serving them on a socket in a new private
    /// directory under `parent` (the system's temporary directory when `None`).
    pub fn start(id: &str, files: &[PathBuf], parent: Option<&Path>) -> Result<Self, SecretError> {
        let keys = Arc::new(load(id, files)?);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SecretError::Agent {
                id: id.to_string(),
                path,
                source,
            }
        };
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        // tempfile makes the directory 0700: only this user reaches the socket.
        let dir = tempfile::Builder::new()
            .prefix("kiln-ssh-")
            .tempdir_in(&parent)
            .map_err(io(&parent))?;
        let path = dir.path().join("agent.sock");
        let listener = Arc::new(UnixListener::bind(&path).map_err(io(&path))?);
        let stop = Arc::new(AtomicBool::new(false));
        let (accepting, stop_flag) = (listener.clone(), stop.clone());
        let acceptor = std::thread::Builder::new()
            .name("kiln-ssh-agent".into())
            .spawn(move || accept_loop(&accepting, &keys, &stop_flag))
            .map_err(io(&path))?;
        Ok(KeyAgent {
            dir,
            listener,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The agent's socket, to pass to a build as an `--ssh` agent.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept, which sees the flag and returns.
        let _ = rustix::net::shutdown(&*self.listener, rustix::net::Shutdown::Both);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &UnixListener, keys: &Arc<Vec<Identity>>, stop: &AtomicBool) {
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok((client, _)) => {
                let keys = keys.clone();
                let _ = std::thread::Builder::new()
                    .name("kiln-ssh-agent-conn".into())
                    .spawn(move || serve(client, &keys));
            }
            Err(e) => {
                tracing::warn!("SSH agent accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// Answers requests on one connection until the client closes it or sends garbage.
fn serve(mut conn: UnixStream, keys: &[Identity]) {
    loop {
        let mut len = [0u8; 4];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return;
        }
        let mut msg = vec![0u8; len];
        if conn.read_exact(&mut msg).is_err() {
            return;
        }
        let reply = answer(&msg, keys);
        let mut framed = Vec::with_capacity(reply.len() + 4);
        framed.extend_from_slice(&u32::try_from(reply.len()).unwrap_or(0).to_be_bytes());
        framed.extend_from_slice(&reply);
        if conn.write_all(&framed).is_err() {
            return;
        }
    }
}

/// The reply to one request (its type byte and payload, without the length).
fn answer(msg: &[u8], keys: &[Identity]) -> Vec<u8> {
    match msg.split_first() {
        Some((&REQUEST_IDENTITIES, _)) => {
            let mut out = vec![IDENTITIES_ANSWER];
            put_u32(&mut out, keys.len());
            for k in keys {
                put_string(&mut out, &k.blob);
                put_string(&mut out, k.comment.as_bytes());
            }
            out
        }
        Some((&SIGN_REQUEST, rest)) => sign(rest, keys).unwrap_or_else(|| vec![FAILURE]),
        _ => vec![FAILURE],
    }
}

/// `string key_blob, string data, uint32 flags` → `SSH_AGENT_SIGN_RESPONSE`. Ed25519 has one
/// signature algorithm, so the flags (RSA hash choices) change nothing.
fn sign(mut rest: &[u8], keys: &[Identity]) -> Option<Vec<u8>> {
    let blob = take_string(&mut rest)?;
    let data = take_string(&mut rest)?;
    let key = keys.iter().find(|k| k.blob == blob)?;
    let sig: ssh_key::Signature = key.key.try_sign(data).ok()?;
    let mut sig_blob = Vec::new();
    put_string(&mut sig_blob, sig.algorithm().as_str().as_bytes());
    put_string(&mut sig_blob, sig.as_bytes());
    let mut out = vec![SIGN_RESPONSE];
    put_string(&mut out, &sig_blob);
    Some(out)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len());
    out.extend_from_slice(s);
}

fn take_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if tail.len() < len {
        return None;
    }
    let (s, tail) = tail.split_at(len);
    *rest = tail;
    Some(s)
}

#[cfg(test)]
mod tests;
