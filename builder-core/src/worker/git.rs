//! `ADD <git repository>`: BuildKit's `URL#REF:SUBDIR` sources, fetched with the host's `git`.
//!
//! The ref is resolved to a commit once per build (`git ls-remote`), and the commit is what the
//! cache key holds, so a moved branch is a miss and an unchanged one a hit without fetching. On a
//! miss, the commit is fetched into a scratch directory (shallow where the server allows) and
//! checked out; every file gets the commit's time as its modification time (the same commit
//! gives the same layer), `.git` is removed unless `--keep-git-dir`, and the tree (or `SUBDIR`) is
//! copied in with the confined copy every COPY uses.
//!
//! The repository is hostile: git runs with no system or global configuration (no credential
//! helpers, hooks or aliases of the host's user), no terminal prompts, only the `https`, `http`,
//! `git` and `ssh` transports (never `file` or `ext`), and no submodules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::WorkerError;

/// Whether an `ADD` source names a git repository, as BuildKit recognises them: `git://`,
/// `git@host:path`, `ssh://`, or an `http(s)` URL whose path ends in `.git` (before any
/// `#fragment`).
pub(crate) fn is_git(source: &str) -> bool {
    let base = source.split('#').next().unwrap_or(source);
    source.starts_with("git://")
        || source.starts_with("git@")
        || (source.starts_with("ssh://") && base.ends_with(".git"))
        || ((source.starts_with("https://") || source.starts_with("http://"))
            && base.trim_end_matches('/').ends_with(".git"))
}

/// A parsed git source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitSource {
    /// The repository URL, without the fragment.
    pub url: String,
    /// Branch, tag or commit; the remote's `HEAD` when absent.
    pub reference: Option<String>,
    /// Directory of the repository to copy; the whole tree when absent.
    pub subdir: Option<String>,
}

impl GitSource {
    pub(crate) fn parse(source: &str) -> Result<Self, WorkerError> {
        let (url, fragment) = match source.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (source, None),
        };
        let (reference, subdir) = match fragment {
            None => (None, None),
            Some(f) => match f.split_once(':') {
                Some((r, s)) => (Some(r), Some(s)),
                None => (Some(f), None),
            },
        };
        let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        let reference = nonempty(reference);
        if let Some(r) = &reference
            && (r.starts_with('-') || r.contains("..") || r.bytes().any(|b| b <= b' '))
        {
            return Err(invalid(source, "an invalid ref"));
        }
        let subdir = nonempty(subdir);
        if let Some(s) = &subdir
            && Path::new(s)
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid(source, "a sub-directory outside the repository"));
        }
        if url.starts_with('-') {
            return Err(invalid(source, "an invalid URL"));
        }
        Ok(GitSource {
            url: url.to_owned(),
            reference,
            subdir,
        })
    }
}

fn invalid(source: &str, what: &str) -> WorkerError {
    WorkerError::Git {
        url: redact(source),
        message: format!("the source has {what}"),
    }
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A `git` command with the host user's configuration and prompts kept out.
fn git(dir: Option<&Path>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .args([
            "-c",
            "protocol.allow=never",
            "-c",
            "protocol.https.allow=always",
            "-c",
            "protocol.http.allow=always",
            "-c",
            "protocol.git.allow=always",
            "-c",
            "protocol.ssh.allow=always",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "submodule.recurse=false",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run(
    src: &GitSource,
    mut cmd: tokio::process::Command,
    what: &str,
) -> Result<Vec<u8>, WorkerError> {
    let out = cmd.output().await.map_err(|e| WorkerError::Git {
        url: redact(&src.url),
        message: format!(
            "cannot run git ({e}); is git installed?",
            e = crate::report::chain(&e)
        ),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(WorkerError::Git {
            url: redact(&src.url),
            message: format!("{what} failed: {}", last.trim()),
        });
    }
    Ok(out.stdout)
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Resolves the source's ref to a commit, once per build.
#[derive(Debug, Default)]
pub(crate) struct Resolved(tokio::sync::Mutex<BTreeMap<(String, Option<String>), String>>);

impl Resolved {
    pub(crate) async fn commit(&self, src: &GitSource) -> Result<String, WorkerError> {
        let key = (src.url.clone(), src.reference.clone());
        let mut map = self.0.lock().await;
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let commit = match &src.reference {
            Some(r) if is_commit(r) => r.to_ascii_lowercase(),
            r => {
                let mut cmd = git(None);
                cmd.args(["ls-remote", "--", &src.url]);
                let want = r.clone().unwrap_or_else(|| "HEAD".to_owned());
                cmd.arg(&want);
                let out = run(src, cmd, "git ls-remote").await?;
                let text = String::from_utf8_lossy(&out);
                // An annotated tag lists its object and the commit (`^{}`): take the commit.
                let mut found = None;
                for line in text.lines() {
                    let Some((sha, name)) = line.split_once('\t') else {
                        continue;
                    };
                    let exact = name == want
                        || name == format!("refs/heads/{want}")
                        || name == format!("refs/tags/{want}");
                    let peeled = name == format!("refs/tags/{want}^{{}}");
                    if peeled {
                        found = Some(sha.to_owned());
                        break;
                    }
                    if exact && found.is_none() {
                        found = Some(sha.to_owned());
                    }
                }
                found
                    .filter(|s| is_commit(s))
                    .ok_or_else(|| WorkerError::Git {
                        url: redact(&src.url),
                        message: format!("no branch or tag {want:?} in the repository"),
                    })?
            }
        };
        map.insert(key, commit.clone());
        Ok(commit)
    }
}

/// The cache-key part of a source at `commit`.
pub(crate) fn key_part(src: &GitSource, commit: &str, keep_git_dir: bool) -> String {
    format!(
        "git:{}#{commit}:{} keep_git_dir={keep_git_dir}",
        src.url,
        src.subdir.as_deref().unwrap_or("")
    )
}

/// Fetches `commit` into a fresh `dir` and checks it out; returns the directory to copy from
/// (the sub-directory when the source names one).
pub(crate) async fn checkout(
    src: &GitSource,
    commit: &str,
    keep_git_dir: bool,
    dir: &Path,
) -> Result<PathBuf, WorkerError> {
    let mut cmd = git(Some(dir));
    cmd.args(["init", "-q"]);
    run(src, cmd, "git init").await?;
    let fetch = |depth: bool| {
        let mut cmd = git(Some(dir));
        cmd.args(["fetch", "-q", "--no-tags", "--no-recurse-submodules"]);
        if depth {
            cmd.arg("--depth=1");
        }
        cmd.args(["--", &src.url, commit]);
        cmd
    };
    // Dumb HTTP servers and old daemons cannot fetch shallow or by commit: fetch the ref then.
    if run(src, fetch(true), "git fetch").await.is_err() {
        let mut cmd = git(Some(dir));
        cmd.args([
            "fetch",
            "-q",
            "--no-tags",
            "--no-recurse-submodules",
            "--",
            &src.url,
        ]);
        if let Some(r) = &src.reference
            && !is_commit(r)
        {
            cmd.arg(r);
        }
        run(src, cmd, "git fetch").await?;
    }
    let mut cmd = git(Some(dir));
    cmd.args(["-c", "advice.detachedHead=false", "checkout", "-q", commit]);
    run(src, cmd, "git checkout").await?;
    let mut cmd = git(Some(dir));
    cmd.args(["log", "-1", "--format=%ct", commit]);
    let out = run(src, cmd, "git log").await?;
    let time: i64 = String::from_utf8_lossy(&out).trim().parse().unwrap_or(0);
    if !keep_git_dir {
        let dot_git = dir.join(".git");
        tokio::fs::remove_dir_all(&dot_git)
            .await
            .map_err(|source| {
                WorkerError::Io(crate::report::IoError {
                    op: "remove",
                    path: dot_git,
                    source,
                })
            })?;
    }
    let root = dir.to_path_buf();
    tokio::task::spawn_blocking(move || set_times(&root, time))
        .await
        .map_err(|e| WorkerError::Task(crate::report::chain(&e)))??;
    Ok(match &src.subdir {
        Some(s) => dir.join(s.trim_start_matches('/')),
        None => dir.to_path_buf(),
    })
}

/// Gives every entry of the checkout (symlinks themselves, not their targets) the commit's time.
fn set_times(root: &Path, secs: i64) -> Result<(), WorkerError> {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    };
    // Deepest first, so setting a file does not change its directory's time afterwards.
    for e in walkdir::WalkDir::new(root).contents_first(true) {
        let e = e.map_err(|e| {
            WorkerError::Io(crate::report::IoError {
                op: "walk",
                path: root.to_path_buf(),
                source: e.into(),
            })
        })?;
        rustix::fs::utimensat(
            rustix::fs::CWD,
            e.path(),
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|source| {
            WorkerError::Io(crate::report::IoError {
                op: "set the time of",
                path: e.path().to_path_buf(),
                source: source.into(),
            })
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_as_buildkit_reads_them() {
        assert!(is_git("https://example.com/app.git#v1:src"));
        assert!(is_git("git@github.com:me/app.git"));
        assert!(is_git("git://127.0.0.1:9418/app.git"));
        assert!(!is_git("https://example.com/app.tar.gz"));
        assert!(!is_git("https://example.com/app.git.tar"));
        let s = GitSource::parse("https://h/r.git#main:docs/site").unwrap();
        assert_eq!(s.url, "https://h/r.git");
        assert_eq!(s.reference.as_deref(), Some("main"));
        assert_eq!(s.subdir.as_deref(), Some("docs/site"));
        let s = GitSource::parse("https://h/r.git").unwrap();
        assert_eq!((s.reference, s.subdir), (None, None));
        assert!(GitSource::parse("https://h/r.git#--upload-pack=x").is_err());
        assert!(GitSource::parse("https://h/r.git#main:../../etc").is_err());
    }
}
