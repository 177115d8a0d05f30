//! What the executor and its helper process say to each other over the control socket (fd 3 in the
//! helper): the executor writes one JSON [`HelperSpec`] and shuts its side down; the helper and its
//! children write newline-separated JSON [`Message`]s back until they exit.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use super::{ExitStatus, Mount, RunSpec, Security};

/// The protocol version, the value of [`super::HELPER_ENV`].
pub(crate) const VERSION: &str = "2";

/// The descriptor the control socket has in the helper.
pub(crate) const CONTROL_FD: i32 = 3;

/// The descriptor of the step's network namespace in the helper, for [`super::NetworkMode::Private`].
pub(crate) const NETNS_FD: i32 = 4;

/// Everything the helper needs, with host-side preparation done (generated files written, mount
/// points created): the [`RunSpec`] itself (its serialised part: the environment and mounts are
/// replaced by the prepared ones, standard input and the timeout stay with the executor) and what
/// preparation made of it. The executor borrows all of it; the helper reads an owned copy.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct HelperSpec<'a> {
    /// The command, its user, working directory, host name, network, security, rootfs, init and
    /// settings.
    pub run: Cow<'a, RunSpec>,
    /// The command's environment as `KEY=value`: the spec's, plus `HOME` when it has none.
    pub env: Cow<'a, [String]>,
    /// Standard mounts that depend on the host (`/etc/hosts`, `/etc/resolv.conf`) followed by the
    /// spec's extra mounts.
    pub mounts: Cow<'a, [Mount]>,
    /// The seccomp program (BPF, base64) the command loads before `execve`; none when insecure.
    pub seccomp: Option<String>,
}

impl HelperSpec<'_> {
    /// Whether the command runs with every capability and no system-call filter
    /// (`RUN --security=insecure`).
    pub(crate) fn insecure(&self) -> bool {
        self.run.security == Security::Insecure
    }
}

/// Paths through JSON without losing the bytes that are not UTF-8: written in the lossless form
/// of `kiln_dockerfile_parser::bytes`, read back into the same bytes.
pub(crate) mod path_text {
    use std::path::{Path, PathBuf};

    use kiln_dockerfile_parser::bytes::{from_os_str, to_path};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&from_os_str(p.as_os_str()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let text = String::deserialize(d)?;
        Ok(to_path(&text).into_owned())
    }
}

/// A report from the helper.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Message {
    /// Setup failed at `stage`.
    Error {
        stage: String,
        message: String,
        errno: Option<i32>,
    },
    /// The command ended.
    Exit(ExitStatus),
}

impl Message {
    pub(crate) fn error(stage: impl Into<String>, err: &io::Error) -> Self {
        Message::Error {
            stage: stage.into(),
            message: crate::report::chain(&err),
            errno: err.raw_os_error(),
        }
    }

    /// Writes the message as one line with a single `write` (messages are far below `PIPE_BUF`, so
    /// writers never interleave).
    pub(crate) fn send(&self, mut w: impl Write) -> io::Result<()> {
        let mut line = serde_json::to_vec(self).map_err(io::Error::other)?;
        line.push(b'\n');
        w.write_all(&line)
    }
}

/// Reads messages until end of file.
pub(crate) fn read_messages(mut r: impl Read) -> io::Result<Vec<Message>> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf)?;
    buf.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn paths_that_are_not_utf8_cross_intact() {
        use std::os::unix::ffi::OsStrExt;
        let mount = Mount::Bind {
            source: PathBuf::from(std::ffi::OsStr::from_bytes(b"/ctx/caf\xe9")),
            target: PathBuf::from("/t\u{10FFE9}"),
            readonly: true,
        };
        let json = serde_json::to_string(&mount).unwrap();
        assert_eq!(serde_json::from_str::<Mount>(&json).unwrap(), mount);
    }

    #[test]
    fn helper_spec_carries_the_run_spec_and_what_preparation_made() {
        use std::os::unix::ffi::OsStrExt;
        let mut run = RunSpec::new(
            PathBuf::from(std::ffi::OsStr::from_bytes(b"/snap/r\xe9")),
            vec!["sh".into(), "-c".into(), "true".into()],
        );
        run.cwd = PathBuf::from("/w\u{10FFE9}");
        run.security = Security::Insecure;
        run.init = false;
        run.settings.shm_size = Some(1 << 20);
        run.timeout = Some(std::time::Duration::from_secs(3));
        let env = vec!["PATH=/bin".to_owned(), "HOME=/root".to_owned()];
        let mounts = vec![Mount::Tmpfs {
            target: "/t".into(),
            size: None,
        }];
        let spec = HelperSpec {
            run: Cow::Borrowed(&run),
            env: Cow::Borrowed(&env),
            mounts: Cow::Borrowed(&mounts),
            seccomp: None,
        };
        let json = serde_json::to_vec(&spec).unwrap();
        let back: HelperSpec<'static> = serde_json::from_slice(&json).unwrap();
        assert!(back.insecure());
        assert_eq!(back.env, env);
        assert_eq!(back.mounts, mounts);
        // What the helper needs crosses intact; what stays with the executor does not cross.
        let mut expected = run.clone();
        expected.env.clear();
        expected.timeout = None;
        assert_eq!(*back.run, expected);
    }

    #[test]
    fn messages_round_trip() {
        let mut buf = Vec::new();
        Message::error("chdir /x", &io::Error::from_raw_os_error(libc::ENOENT))
            .send(&mut buf)
            .unwrap();
        Message::Exit(ExitStatus::Signal(9)).send(&mut buf).unwrap();
        let msgs = read_messages(&buf[..]).unwrap();
        assert_eq!(msgs.len(), 2);
        assert!(
            matches!(&msgs[0], Message::Error { errno: Some(2), stage, .. } if stage == "chdir /x")
        );
        assert_eq!(msgs[1], Message::Exit(ExitStatus::Signal(9)));
    }
}
