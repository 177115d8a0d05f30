//! A registry over HTTPS with a certificate from a private CA (made here with `openssl`): kiln
//! reaches it only when `--registry-ca` names the CA file.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command as Std, Stdio};
use std::time::Duration;

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build, context_with, kiln, tool, tool_answering};

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Std::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn https_registry_with_a_private_ca() {
    if !tool_answering("openssl", "version") || !tool("docker-registry") {
        eprintln!("skipping: openssl or docker-registry missing");
        return;
    }
    if !require_privileged("TLS registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=kiln-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
        ],
    );
    std::fs::write(
        d.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext",
            "-out",
            "srv.pem",
        ],
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  tls:\n    certificate: {}\n    key: {}\n",
        d.join("data").display(),
        d.join("srv.pem").display(),
        d.join("srv.key").display()
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
        if TcpStream::connect(&addr).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        up,
        "{}",
        std::fs::read_to_string(d.join("registry.log")).unwrap_or_default()
    );

    let root = tempfile::tempdir().unwrap();
    let ctx = context_with(&[("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\n")]);
    let image = format!("{addr}/tls/app:1");
    build(root.path(), ctx.path(), &["-t", &image]);

    // Without the CA the certificate is not trusted (and plain HTTP is no way round it).
    let out = kiln(root.path())
        .env("DOCKER_CONFIG", d.join("none"))
        .args(["push", &image])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let flat: String = String::from_utf8_lossy(&out.stderr)
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×'))
        .collect();
    assert!(
        flat.contains("HTTPSfailed") && flat.to_lowercase().contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ca = d.join("ca.pem");
    let out = kiln(root.path())
        .env("DOCKER_CONFIG", d.join("none"))
        .args(["push", "--registry-ca", ca.to_str().unwrap(), &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let fresh = tempfile::tempdir().unwrap();
    let out = kiln(fresh.path())
        .env("DOCKER_CONFIG", d.join("none"))
        .args(["pull", "--registry-ca", ca.to_str().unwrap(), &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);

    // A file without certificates is a clear error.
    std::fs::write(d.join("empty.pem"), "not a certificate\n").unwrap();
    let out = kiln(fresh.path())
        .args([
            "pull",
            "--registry-ca",
            d.join("empty.pem").to_str().unwrap(),
            &image,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The report may wrap anywhere.
    let flat: String = stderr
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×'))
        .collect();
    assert!(
        flat.contains("CAfile") && flat.contains("empty.pem"),
        "{stderr}"
    );
}
