//! The network of RUN steps: outbound by default (reaching a server in a network namespace the
//! test makes, with an address of its own), nothing with `--network none`, the host's loopback
//! services out of reach unless `--network host`, and `RUN --network=host` only with
//! `--allow network.host`. These need root; with `KILN_REQUIRE_PRIVILEGED=1` (CI) a missing
//! capability fails them.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic loudly

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_builder_core::testing::require_privileged;

mod common;
use common::{build_rootfs, dockerfile_context as context, try_build};

const BUSYBOX_BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// A network namespace with a veth pair to the host and an HTTP server in it; removed on drop.
struct RemoteHost {
    ns: String,
    host_if: String,
    addr: String,
    server: Child,
}

impl RemoteHost {
    fn new(dir: &std::path::Path) -> Self {
        let id = std::process::id() % 200;
        let ns = format!("kiln-t{}", std::process::id());
        let host_if = format!("kvh{}", std::process::id() % 100_000);
        let peer_if = format!("kvn{}", std::process::id() % 100_000);
        let (host_addr, addr) = (format!("10.213.{id}.1"), format!("10.213.{id}.2"));
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &ns]);
        ip(&["addr", "add", &format!("{host_addr}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            &peer_if,
        ]);
        ip(&["-n", &ns, "link", "set", &peer_if, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        std::fs::write(dir.join("hello"), "hello from the remote host\n").unwrap();
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-m", "http.server", "8080"])
            .args(["--bind", &addr])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let remote = RemoteHost {
            ns,
            host_if,
            addr,
            server,
        };
        // Bounded wait for the server to listen, checked from the host.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let target = format!("{}:8080", remote.addr);
            if std::net::TcpStream::connect_timeout(
                &target.parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                break;
            }
            assert!(Instant::now() < deadline, "the test server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        remote
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Serves one fixed answer to every connection on the host's loopback, counting them.
fn loopback_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 512];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nHOST-LOOPBACK-SECRET\n");
        }
    });
    (port, hits)
}

fn get(addr: &str, port: u16, path: &str) -> String {
    format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {addr} {port}")
}

#[test]
fn run_steps_reach_the_network_but_not_the_hosts_loopback() {
    if !require_privileged("run_steps_reach_the_network_but_not_the_hosts_loopback") {
        return;
    }
    let www = tempfile::tempdir().unwrap();
    let remote = RemoteHost::new(www.path());
    let (port, hits) = loopback_server();
    let dockerfile = format!(
        "{BUSYBOX_BASE}RUN mkdir /out; {remote_get} > /out/remote 2>&1; \
         {lo} > /out/lo 2>&1; {gw} > /out/gw 2>&1; cat /etc/resolv.conf > /out/resolv; \
         cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > /out/netdev\n\
         RUN {remote_get} > /out/remote-again 2>&1\n",
        remote_get = get(&remote.addr, 8080, "/hello"),
        lo = get("127.0.0.1", port, "/"),
        gw = get("10.0.2.2", port, "/"),
    );
    let root = tempfile::tempdir().unwrap();
    let ctx = context(&dockerfile);
    let (fs, _) = build_rootfs(root.path(), ctx.path(), &[]);
    let out = fs.path().join("rootfs/out");
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
    assert!(
        read("remote").contains("hello from the remote host"),
        "{}",
        read("remote")
    );
    // The second step reuses the first one's namespace from the pool: still a way out.
    assert!(
        read("remote-again").contains("hello from the remote host"),
        "{}",
        read("remote-again")
    );
    assert!(
        !read("lo").contains("HOST-LOOPBACK-SECRET"),
        "{}",
        read("lo")
    );
    assert!(
        !read("gw").contains("HOST-LOOPBACK-SECRET"),
        "{}",
        read("gw")
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(read("netdev"), "lo\ntap0\n");
    assert!(read("resolv").contains("nameserver "), "{}", read("resolv"));
    assert!(!read("resolv").contains("127.0.0."), "{}", read("resolv"));

    // --network host: the host's loopback services are there.
    let ctx = context(&format!(
        "{BUSYBOX_BASE}RUN {} > /lo 2>&1; true\n",
        get("127.0.0.1", port, "/")
    ));
    let (fs, _) = build_rootfs(root.path(), ctx.path(), &["--network", "host"]);
    let lo = std::fs::read_to_string(fs.path().join("rootfs/lo")).unwrap();
    assert!(lo.contains("HOST-LOOPBACK-SECRET"), "{lo}");

    // --network none: nothing, and a failing step says why it may have failed.
    let ctx = context(&format!(
        "{BUSYBOX_BASE}RUN {} | grep hello\n",
        get(&remote.addr, 8080, "/hello")
    ));
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &["--network", "none"]);
    assert!(!ok);
    assert!(
        stderr.contains("without network") && stderr.contains("--network none"),
        "{stderr}"
    );
    // The same Dockerfile with the default network builds.
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn host_network_from_the_dockerfile_needs_the_entitlement() {
    if !require_privileged("host_network_from_the_dockerfile_needs_the_entitlement") {
        return;
    }
    let ctx = context(&format!(
        "{BUSYBOX_BASE}RUN --network=host cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort > /netdev\nRUN --network=none cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' > /none\n"
    ));
    let root = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = try_build(root.path(), ctx.path(), &[]);
    assert!(!ok);
    assert!(stderr.contains("--allow network.host"), "{stderr}");
    assert!(stderr.contains("Dockerfile:4"), "{stderr}");
    let (fs, _) = build_rootfs(root.path(), ctx.path(), &["--allow", "network.host"]);
    let netdev = std::fs::read_to_string(fs.path().join("rootfs/netdev")).unwrap();
    let host: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    for name in &host {
        assert!(
            netdev.lines().any(|l| l == name),
            "{name} missing from {netdev}"
        );
    }
    let none = std::fs::read_to_string(fs.path().join("rootfs/none")).unwrap();
    assert_eq!(none, "lo\n");
}
