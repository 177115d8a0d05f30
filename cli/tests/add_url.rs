//! `ADD <url>` against a small HTTP server on 127.0.0.1 run by the test: downloaded with Docker's
//! file rules, never extracted, `--checksum` verified, and not fetched at all on a cache hit of a
//! pinned download.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{build, dockerfile_context, run_image, tool, try_build};
use kiln_builder_core::testing::require_privileged;

/// Serves fixed files; counts requests per path; stops when dropped (or after two minutes).
struct Server {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(files: HashMap<&'static str, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                let response = match files.get(path.as_str()) {
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\
                             Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                             Connection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = conn.write_all(&response);
            }
        });
        Server { port, hits, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn gzip_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "inner.txt", &b"abc"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn add_downloads_urls() {
    if !require_privileged("ADD <url> build") || !tool("umoci") || !tool("runc") {
        return;
    }
    let pinned = b"pinned content\n".to_vec();
    let server = Server::start(HashMap::from([
        ("/files/tool.txt", b"downloaded tool\n".to_vec()),
        ("/files/pinned.txt", pinned.clone()),
        ("/files/data.tar.gz", gzip_tar()),
    ]));
    let root = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         ADD {tool} /opt/\n\
         ADD --checksum={sum} --chmod=755 {pinned_url} /opt/renamed\n\
         ADD {archive} /opt/archive/\n\
         CMD [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox stat -c '%a %u %g %Y %n' /opt/tool.txt /opt/renamed /opt/archive/data.tar.gz; /bin/busybox cat /opt/tool.txt /opt/renamed\"]\n",
        tool = server.url("/files/tool.txt"),
        sum = sha256(&pinned),
        pinned_url = server.url("/files/pinned.txt"),
        archive = server.url("/files/data.tar.gz"),
    );
    let ctx = dockerfile_context(&dockerfile);
    build(root.path(), ctx.path(), &["-t", "url:1"]);
    let (stdout, _) = run_image(root.path(), "docker.io/library/url:1");
    assert_eq!(
        stdout,
        "600 0 0 784111777 /opt/tool.txt\n\
         755 0 0 784111777 /opt/renamed\n\
         600 0 0 784111777 /opt/archive/data.tar.gz\n\
         downloaded tool\npinned content\n"
    );
    assert_eq!(server.hits("/files/pinned.txt"), 1);

    // A rebuild: the unpinned URLs are fetched to learn their digest, the pinned one is not
    // fetched at all, and every step is a cache hit.
    let (_, stderr) = build(root.path(), ctx.path(), &["-t", "url:1"]);
    assert!(stderr.contains("4 of 4 steps cached"), "{stderr}");
    assert_eq!(server.hits("/files/pinned.txt"), 1);
    assert_eq!(server.hits("/files/tool.txt"), 2);

    // A wrong checksum and a missing file are errors naming the URL.
    let bad = dockerfile_context(&format!(
        "FROM scratch\nADD --checksum=sha256:{} {} /x\n",
        "0".repeat(64),
        server.url("/files/pinned.txt")
    ));
    let (ok, _, stderr) = try_build(root.path(), bad.path(), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("checksum mismatch") && stderr.contains("/files/pinned.txt"),
        "{stderr}"
    );
    let missing = dockerfile_context(&format!(
        "FROM scratch\nADD {} /x\n",
        server.url("/files/nope.txt")
    ));
    let (ok, _, stderr) = try_build(root.path(), missing.path(), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("404") && stderr.contains("/files/nope.txt"),
        "{stderr}"
    );
}
