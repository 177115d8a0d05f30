//! `ADD <url>`: files downloaded over HTTP(S) into the build, never extracted.
//!
//! Docker's rules: the file is named after the last segment of the URL's path (or is the
//! destination itself when that does not end in `/`), has mode 0600 unless `--chmod` says
//! otherwise, is owned by root unless `--chown` says otherwise, and its modification time is the
//! response's `Last-Modified` (kiln uses the Unix epoch when there is none, so that the same bytes
//! give the same layer). `--checksum=sha256:...` is verified on every download.
//!
//! Downloads happen only when the build needs them: with `--checksum`, the step's cache key is
//! the checksum itself and a cache hit never touches the network; without it the file must be
//! fetched to know its digest. Each URL is fetched at most once per build, into a scratch
//! directory that lives as long as the worker and is removed with it; nothing downloaded goes
//! into the store except through the layer the step writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::WorkerError;

/// Why a download failed; every variant names the URL.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The request could not be made or the connection failed.
    #[error("ADD {url}: {message}")]
    Request {
        /// The URL.
        url: String,
        /// What went wrong (the HTTP client's error, without credentials).
        message: String,
    },
    /// The server answered with an error status.
    #[error("ADD {url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: String,
    },
    /// The downloaded bytes do not match `--checksum`.
    #[error("ADD {url}: checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        /// The URL.
        url: String,
        /// What `--checksum` asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// `--checksum` is not a `sha256:` digest.
    #[error("ADD {url}: --checksum={checksum} is not a sha256:<64 hex digits> digest")]
    BadChecksum {
        /// The URL.
        url: String,
        /// The value given.
        checksum: String,
    },
    /// The URL has no file name and the destination is a directory.
    #[error(
        "ADD {url}: cannot tell a file name from the URL; give a destination file name \
         (without a trailing /)"
    )]
    NoFileName {
        /// The URL.
        url: String,
    },
    /// Several sources, one of them a URL, and a destination without a trailing `/`.
    #[error(
        "ADD with more than one source, one of them a URL, needs a directory destination ending \
         in / (got {dest})"
    )]
    DestNotDir {
        /// The destination as written.
        dest: String,
    },
    /// Writing the downloaded file failed.
    #[error("ADD {url}: cannot write {path}")]
    Io {
        /// The URL.
        url: String,
        /// The file being written.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A downloaded file.
#[derive(Debug)]
pub(super) struct Downloaded {
    /// Its directory (holding only it), to copy from.
    pub dir: PathBuf,
    /// The file name inside `dir`.
    pub name: String,
    /// `sha256:<hex>` of its bytes.
    pub digest: String,
    /// Its modification time (seconds since the epoch).
    pub mtime: i64,
}

impl Downloaded {
    /// What the step's cache key records about this source: everything that ends up in the
    /// layer (bytes, name, time).
    pub fn key_part(&self) -> String {
        format!("url:{}:{}:{}", self.digest, self.name, self.mtime)
    }
}

/// The downloads of one build.
pub(super) struct Downloads {
    state_dir: PathBuf,
    dir: tokio::sync::OnceCell<crate::scratch::ScratchDir>,
    done: tokio::sync::Mutex<HashMap<String, Arc<Downloaded>>>,
    client: std::sync::OnceLock<reqwest::Client>,
}

impl Downloads {
    /// Downloads that keep their files in a scratch directory under `state_dir`.
    pub fn new(state_dir: PathBuf) -> Self {
        Downloads {
            state_dir,
            dir: tokio::sync::OnceCell::new(),
            done: tokio::sync::Mutex::new(HashMap::new()),
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default()
        })
    }

    /// The file at `url` (downloaded now unless this build already has it), checked against
    /// `checksum` when given.
    pub async fn fetch(
        &self,
        url: &str,
        checksum: Option<&str>,
    ) -> Result<Arc<Downloaded>, WorkerError> {
        if let Some(c) = checksum {
            parse_checksum(url, c)?;
        }
        // One download per URL at a time; a second step adding the same URL waits for it.
        let mut done = self.done.lock().await;
        let file = match done.get(url) {
            Some(f) => f.clone(),
            None => {
                let dir = self
                    .dir
                    .get_or_try_init(|| async {
                        std::fs::create_dir_all(&self.state_dir).map_err(|source| {
                            WorkerError::Io(crate::report::IoError {
                                op: "create",
                                path: self.state_dir.clone(),
                                source,
                            })
                        })?;
                        crate::scratch::ScratchDir::new_in(&self.state_dir, "run-download-")
                            .map_err(|source| {
                                WorkerError::Io(crate::report::IoError {
                                    op: "create a directory in",
                                    path: self.state_dir.clone(),
                                    source,
                                })
                            })
                    })
                    .await?;
                let sub = dir.path().join(done.len().to_string());
                let f = Arc::new(download(self.client(), url, &sub).await?);
                done.insert(url.to_string(), f.clone());
                f
            }
        };
        drop(done);
        if let Some(expected) = checksum
            && !file.digest.eq_ignore_ascii_case(expected)
        {
            return Err(DownloadError::Checksum {
                url: crate::secret::redact_userinfo(url).into_owned(),
                expected: expected.to_string(),
                actual: file.digest.clone(),
            }
            .into());
        }
        Ok(file)
    }
}

/// Checks the form of `--checksum`; returns it.
pub(super) fn parse_checksum<'a>(url: &str, checksum: &'a str) -> Result<&'a str, WorkerError> {
    let ok = checksum
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(checksum)
    } else {
        Err(DownloadError::BadChecksum {
            url: crate::secret::redact_userinfo(url).into_owned(),
            checksum: checksum.to_string(),
        }
        .into())
    }
}

/// The file name Docker gives a URL's download: the last segment of its path.
pub(super) fn file_name(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.next_back()?;
    let name = percent_encoding::percent_decode_str(last)
        .decode_utf8_lossy()
        .into_owned();
    (!name.is_empty() && name != "." && name != ".." && !name.contains('/')).then_some(name)
}

async fn download(
    client: &reqwest::Client,
    url: &str,
    dir: &Path,
) -> Result<Downloaded, WorkerError> {
    let request_err = |e: reqwest::Error| DownloadError::Request {
        url: crate::secret::redact_userinfo(url).into_owned(),
        // Without the URL (already in the message) and its credentials, if any.
        message: crate::report::chain(&e.without_url()),
    };
    let name = file_name(url).unwrap_or_else(|| "download".to_string());
    let path = dir.join(&name);
    let io_err = |source| DownloadError::Io {
        url: crate::secret::redact_userinfo(url).into_owned(),
        path: path.clone(),
        source,
    };
    let mut response = client.get(url).send().await.map_err(request_err)?;
    if !response.status().is_success() {
        return Err(DownloadError::Status {
            url: crate::secret::redact_userinfo(url).into_owned(),
            status: response.status().to_string(),
        }
        .into());
    }
    let mtime = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .unwrap_or(0);
    tokio::fs::create_dir_all(dir).await.map_err(io_err)?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await
        .map_err(io_err)?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = response.chunk().await.map_err(request_err)? {
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io_err)?;
    }
    file.flush().await.map_err(io_err)?;
    let file = file.into_std().await;
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime.max(0) as u64);
    file.set_modified(when).map_err(io_err)?;
    Ok(Downloaded {
        dir: dir.to_path_buf(),
        name,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        mtime,
    })
}

/// Seconds since the epoch of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, the only form
/// servers are allowed to send).
pub(super) fn parse_http_date(s: &str) -> Option<i64> {
    let mut parts = s.split_whitespace();
    let _weekday = parts.next()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i32 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let (h, m, sec): (u32, u32, u32) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if parts.next()? != "GMT" || day == 0 || day > 31 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let text = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}Z");
    crate::image::parse_rfc3339(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(
            file_name("https://h/a/b/tool.tar.gz").as_deref(),
            Some("tool.tar.gz")
        );
        assert_eq!(file_name("http://h/x%20y?q=1#f").as_deref(), Some("x y"));
        assert_eq!(file_name("http://h/"), None);
        assert_eq!(file_name("http://h/a/%2F"), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert!(parse_checksum("u", &format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(parse_checksum("u", "sha256:abc").is_err());
        assert!(parse_checksum("u", &format!("md5:{}", "a".repeat(64))).is_err());
    }
}
