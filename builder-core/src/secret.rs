//! Values that must never be printed: build secrets (`--secret`) and the userinfo of URLs in
//! build args (`HTTP_PROXY=http://user:pass@proxy`). Their `Debug` shows at most a length, so a
//! `{:?}` of a request, a `tracing` field or a progress event cannot carry them.

use std::borrow::Cow;
use std::fmt;

/// Secret bytes: `Debug` prints `[redacted N bytes]`; [`Secret::expose`] is the one way in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(value.into())
    }

    /// The value, for the places that hand it to a build step.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted {} bytes]", self.0.len())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&str> for Secret {
    fn from(v: &str) -> Self {
        Self(v.as_bytes().to_vec())
    }
}

/// A `--secret` or `--ssh` value that cannot be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret's file cannot be read.
    #[error("cannot read secret file {}", path.display())]
    #[diagnostic(code(kiln::secret::file))]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The secret's environment variable is not set.
    #[error("--secret id={id}: environment variable {var} is not set")]
    #[diagnostic(code(kiln::secret::env))]
    Env {
        /// The secret's id.
        id: String,
        /// The variable.
        var: String,
    },
    /// `--ssh ID` without a socket, and `$SSH_AUTH_SOCK` unset.
    #[error("--ssh {id} names no socket and $SSH_AUTH_SOCK is not set")]
    #[diagnostic(code(kiln::secret::ssh_unset))]
    NoAgent {
        /// The id.
        id: String,
    },
    /// The SSH agent socket cannot be looked at.
    #[error("--ssh {id}: cannot use {}", path.display())]
    #[diagnostic(code(kiln::secret::ssh_io))]
    Agent {
        /// The id.
        id: String,
        /// The socket.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A private key file of `--ssh ID=KEYFILE` cannot be used.
    #[error("--ssh {id}: cannot use the private key {}: {reason}", path.display())]
    #[diagnostic(code(kiln::secret::ssh_key))]
    SshKey {
        /// The id.
        id: String,
        /// The key file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The SSH agent path is not a socket.
    #[error("--ssh {id}: {} is not an SSH agent socket", path.display())]
    #[diagnostic(code(kiln::secret::ssh_not_socket))]
    NotASocket {
        /// The id.
        id: String,
        /// The path.
        path: std::path::PathBuf,
    },
}

/// Reads a secret from a file.
pub fn secret_from_file(path: &std::path::Path) -> Result<Secret, SecretError> {
    std::fs::read(path)
        .map(Secret::new)
        .map_err(|source| SecretError::File {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads the secret `id` from the environment variable `var`.
pub fn secret_from_env(id: &str, var: &str) -> Result<Secret, SecretError> {
    std::env::var_os(var)
        .map(|v| Secret::new(std::os::unix::ffi::OsStringExt::into_vec(v)))
        .ok_or_else(|| SecretError::Env {
            id: id.to_string(),
            var: var.to_string(),
        })
}

/// The agent socket of `--ssh ID[=SOCKET]` (`$SSH_AUTH_SOCK` without one), which must be a socket.
pub fn ssh_agent_socket(
    id: &str,
    socket: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, SecretError> {
    use std::os::unix::fs::FileTypeExt;
    let path = match socket {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from)
            .ok_or_else(|| SecretError::NoAgent { id: id.to_string() })?,
    };
    let meta = std::fs::metadata(&path).map_err(|source| SecretError::Agent {
        id: id.to_string(),
        path: path.clone(),
        source,
    })?;
    if !meta.file_type().is_socket() {
        return Err(SecretError::NotASocket {
            id: id.to_string(),
            path,
        });
    }
    Ok(path)
}

/// `value` with the password (or, without one, the user name) of every `scheme://user:pass@host`
/// in it replaced by `[redacted]`; borrowed unchanged when there is none.
pub fn redact_userinfo(value: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut rest = value;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":[redacted]");
                    }
                    None => out.push_str("[redacted]"),
                }
                out.push_str(&authority[at..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    if !changed {
        return Cow::Borrowed(value);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// A string map printed by `Debug` with the userinfo of URLs in its values redacted (build args:
/// the proxy ones carry credentials).
pub struct RedactedMap<'a>(pub &'a std::collections::BTreeMap<String, String>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, redact_userinfo(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_only_their_length() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted 7 bytes]");
        assert_eq!(s.expose(), b"hunter2");
    }

    #[test]
    fn build_requests_print_no_secret() {
        let mut req = crate::BuildRequest::default();
        req.secrets
            .insert("token".into(), Secret::from("s3cr3t-value"));
        req.plan.build_args.insert(
            "HTTPS_PROXY".into(),
            "http://proxyuser:pr0xy-pass@proxy:3128".into(),
        );
        let dbg = format!("{req:?} {req:#?}");
        assert!(!dbg.contains("s3cr3t-value"), "{dbg}");
        assert!(!dbg.contains("pr0xy-pass"), "{dbg}");
        assert!(
            dbg.contains("token") && dbg.contains("[redacted 12 bytes]"),
            "{dbg}"
        );
        assert!(dbg.contains("proxyuser:[redacted]@proxy:3128"), "{dbg}");
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("http://u:pw@proxy:3128/x"),
            "http://u:[redacted]@proxy:3128/x"
        );
        assert_eq!(
            redact_userinfo("a https://tok@h b http://h2"),
            "a https://[redacted]@h b http://h2"
        );
        assert!(matches!(redact_userinfo("http://h/x@y"), Cow::Borrowed(_)));
        assert!(matches!(redact_userinfo("plain"), Cow::Borrowed(_)));
    }
}
