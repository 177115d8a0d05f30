//! The bearer-token flow against a real CNCF distribution registry started here with
//! `auth: token`, and a token server in this file that signs RS256 tokens with a key made by
//! `openssl`: the registry's challenge sends kiln to the token server, which checks basic
//! credentials and grants the scopes asked for; tokens are reused for the same scopes.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command as Std, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, context_with, kiln, tool, tool_answering};

const USER: &str = "token-user";
const PASSWORD: &str = "token-secret-pw";
const SERVICE: &str = "kiln-token-test";
const ISSUER: &str = "kiln-token-issuer";
const REFRESH_TOKEN: &str = "kiln-refresh-token";

/// Whether the report `stderr` says `needle`, however it was wrapped.
fn says(stderr: &str, needle: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×'))
            .collect()
    };
    squash(stderr).contains(&squash(needle))
}

fn b64(data: &[u8], url: bool) -> String {
    let table: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        if !url {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Signs `header.claims` with the key: RS256 is PKCS#1 v1.5 over sha256, what `openssl dgst`
/// produces.
fn jwt(dir: &Path, cert_der: &[u8], claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [b64(cert_der, false)]});
    let signing = format!(
        "{}.{}",
        b64(header.to_string().as_bytes(), true),
        b64(claims.to_string().as_bytes(), true)
    );
    let mut child = Std::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    format!("{signing}.{}", b64(&out.stdout, true))
}

fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| {
            v.replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",")
        })
        .collect()
}

/// Serves `GET /token` on a free port; counts the tokens handed out.
fn token_server(dir: &Path, requests: Arc<AtomicUsize>, seen: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dir = dir.to_path_buf();
    let der = std::fs::read(dir.join("cert.der")).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut auth = None;
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        auth = Some(v.trim().to_string());
                    } else if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let form = String::from_utf8_lossy(&body).into_owned();
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            // GET with basic credentials, or POST with an OAuth2 refresh token.
            let post = line.starts_with("POST");
            let query = if post {
                form.as_str()
            } else {
                target.split_once('?').map_or("", |(_, q)| q)
            };
            let user = if post {
                query_values(query, "refresh_token").first().map(|t| {
                    if t == REFRESH_TOKEN {
                        format!("{USER}:{PASSWORD}")
                    } else {
                        "bad".to_string()
                    }
                })
            } else {
                auth.as_deref()
                    .and_then(|a| a.strip_prefix("Basic "))
                    .map(|b| String::from_utf8_lossy(&unb64(b)).into_owned())
            };
            let (status, body) = match user.as_deref() {
                Some(u) if u != format!("{USER}:{PASSWORD}") => (
                    "401 Unauthorized",
                    r#"{"details":"bad credentials"}"#.to_string(),
                ),
                _ => {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let scopes = query_values(query, "scope");
                    seen.lock().unwrap().push(scopes.join(" "));
                    // Anonymous callers get a token that grants nothing.
                    let access: Vec<serde_json::Value> = if user.is_some() {
                        scopes
                            .iter()
                            .filter_map(|s| {
                                let mut p = s.splitn(3, ':');
                                let (t, n, a) = (p.next()?, p.next()?, p.next()?);
                                Some(serde_json::json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let claims = serde_json::json!({
                        "iss": ISSUER, "sub": user.as_deref().unwrap_or(""), "aud": SERVICE,
                        "exp": now + 300, "nbf": now - 10, "iat": now,
                        "jti": format!("{now}-{}", requests.load(Ordering::SeqCst)),
                        "access": access,
                    });
                    let token = jwt(&dir, &der, &claims);
                    (
                        "200 OK",
                        serde_json::json!({"token": token, "expires_in": 300}).to_string(),
                    )
                }
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn registry_status(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.lines().next().map(str::to_string)
}

#[test]
fn bearer_tokens_from_the_challenge_are_scoped_and_cached() {
    if !tool_answering("openssl", "version") || !tool("docker-registry") {
        eprintln!("skipping: openssl or docker-registry missing");
        return;
    }
    if !require_privileged("token-auth registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = Std::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=kiln-token-test", "-keyout"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Std::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(d.join("cert.pem"))
        .arg("-out")
        .arg(d.join("cert.der"))
        .status()
        .unwrap();
    assert!(ok.success());

    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let token_addr = token_server(d, requests.clone(), seen.clone());
    let addr = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nauth:\n  token:\n    realm: http://{token_addr}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        d.join("data").display(),
        d.join("cert.pem").display()
    );
    std::fs::write(d.join("config.yml"), config).unwrap();
    let _registry = Registry(
        Std::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("registry.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..100 {
        if registry_status(&addr).is_some_and(|l| l.contains("401")) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        up,
        "registry did not start: {}",
        std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
    );

    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\n")]);
    let image = format!("{addr}/team/app:1");
    build(root.path(), ctx.path(), &["-t", &image]);

    // Anonymous: the token grants nothing, the registry refuses.
    let empty = tempfile::tempdir().unwrap();
    let out = kiln(root.path())
        .env("DOCKER_CONFIG", empty.path())
        .args(["push", &image])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        says(&stderr, "unauthorized") && says(&stderr, "kiln login"),
        "{stderr}"
    );

    // Wrong password: the token server refuses.
    let login = kiln(root.path())
        .env("DOCKER_CONFIG", empty.path())
        .args(["login", "-u", USER, "--password-stdin", &addr])
        .write_stdin("wrong\n")
        .output()
        .unwrap();
    assert!(!login.status.success());
    let stderr = String::from_utf8_lossy(&login.stderr);
    assert!(says(&stderr, "rejected the credentials"), "{stderr}");

    let creds = tempfile::tempdir().unwrap();
    let login = kiln(root.path())
        .env("DOCKER_CONFIG", creds.path())
        .args(["login", "-u", USER, "--password-stdin", &addr])
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );

    // A push asks for one token (pull+push on the repository) and uses it for every request.
    let before = requests.load(Ordering::SeqCst);
    let out = kiln(root.path())
        .env("DOCKER_CONFIG", creds.path())
        .args(["push", &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(requests.load(Ordering::SeqCst) - before, 1);
    assert_eq!(
        seen.lock().unwrap().last().map(String::as_str),
        Some("repository:team/app:pull,push")
    );

    // A pull into a fresh store: one pull-scoped token for the manifest and both blobs.
    let before = requests.load(Ordering::SeqCst);
    let fresh = tempfile::tempdir().unwrap();
    let out = kiln(fresh.path())
        .env("DOCKER_CONFIG", creds.path())
        .args(["pull", &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    assert_eq!(requests.load(Ordering::SeqCst) - before, 1);
    assert_eq!(
        seen.lock().unwrap().last().map(String::as_str),
        Some("repository:team/app:pull")
    );

    // An OAuth2 refresh token (`identitytoken`) is exchanged at the token server.
    let oauth = tempfile::tempdir().unwrap();
    std::fs::write(
        oauth.path().join("config.json"),
        serde_json::json!({"auths": {addr.clone(): {"identitytoken": REFRESH_TOKEN}}}).to_string(),
    )
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let out = kiln(other.path())
        .env("DOCKER_CONFIG", oauth.path())
        .args(["pull", &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {:?} {}",
        String::from_utf8_lossy(&out.stderr),
        seen.lock().unwrap(),
        std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
    );
    std::fs::write(
        oauth.path().join("config.json"),
        serde_json::json!({"auths": {addr.clone(): {"identitytoken": "expired"}}}).to_string(),
    )
    .unwrap();
    let out = kiln(root.path())
        .env("DOCKER_CONFIG", oauth.path())
        .args(["push", &image])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        says(&stderr, "rejected the credentials") && !stderr.contains("expired"),
        "{stderr}"
    );
}
