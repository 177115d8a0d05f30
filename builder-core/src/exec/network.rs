//! Outbound network for a step in a network namespace of its own: user-mode networking through
//! `slirp4netns`, as rootless BuildKit and podman do.
//!
//! Each step gets a fresh namespace ([`NetNs`]): made by a short-lived thread of this process
//! (`unshare(CLONE_NEWNET)` affects only the calling thread), held by a descriptor, with `lo` up
//! and a `slirp4netns` attached to it, which gives it `tap0` (10.0.2.100/24, gateway 10.0.2.2, a
//! DNS forwarder at 10.0.2.3) and carries its TCP and UDP traffic through ordinary sockets of the
//! host. `--disable-host-loopback` keeps the host's `127.0.0.1` services out of reach (10.0.2.2
//! does not lead to them). The namespace dies with the step: the descriptor is closed and
//! `slirp4netns` exits when its exit pipe closes, also when kiln is killed.
//!
//! Setting a namespace up takes a few tens of milliseconds (mostly `slirp4netns` starting), so a
//! namespace is reused: when a sandboxed step ends, its namespace goes back to a small pool for
//! the next step (as BuildKit pools its network namespaces). A step cannot change a namespace
//! for the next one: without `CAP_NET_ADMIN` it can alter no interface, address, route or
//! filter, and its sockets die with its processes. An insecure step (every capability) has its
//! namespace dropped instead ([`Lease::discard`]). When the pool is empty, the next namespace is
//! prepared while the current step runs ([`acquire`]).

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

/// The nameserver the step's `/etc/resolv.conf` names: slirp4netns's DNS forwarder, which asks
/// the host's resolvers (a resolver on the host's loopback included).
pub(crate) const DNS_FORWARDER: &str = "10.0.2.3";

/// A network namespace with outbound connectivity, for one step.
#[derive(Debug)]
pub(crate) struct NetNs {
    /// `nsfs` descriptor of the namespace; the helper or runtime joins it with `setns`.
    pub fd: OwnedFd,
    /// Keeps `slirp4netns` alive; it exits when this closes (and is killed on drop).
    _exit: OwnedFd,
    _slirp: std::process::Child,
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = self._slirp.kill();
        let _ = self._slirp.wait();
    }
}

/// `slirp4netns` on `PATH`, if any.
pub(crate) fn slirp4netns() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|d| d.join("slirp4netns"))
                .find(|p| p.is_file())
        })
        .clone()
}

/// Whether `slirp4netns` is on `PATH`.
pub fn slirp4netns_installed() -> bool {
    slirp4netns().is_some()
}

/// Whether steps can have a network namespace of their own with outbound network here: as root
/// (of the machine, or of kiln's rootless user namespace) with `slirp4netns` installed and
/// `/dev/net/tun` open to this process. Elsewhere the default is the host's network.
pub fn user_mode_available() -> bool {
    static TUN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    rustix::process::geteuid().is_root()
        && slirp4netns().is_some()
        && *TUN.get_or_init(|| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .is_ok()
        })
}

/// Namespaces returned by finished steps, ready for the next ones.
static POOL: Mutex<Vec<NetNs>> = Mutex::new(Vec::new());

/// At most this many idle namespaces are kept.
const POOL_SIZE: usize = 4;

/// A namespace lent to one step; it returns to the pool when dropped, unless discarded.
#[derive(Debug)]
pub(crate) struct Lease {
    ns: Option<NetNs>,
    reuse: bool,
}

impl Lease {
    /// The namespace's `nsfs` descriptor.
    pub(crate) fn fd(&self) -> Option<&OwnedFd> {
        self.ns.as_ref().map(|ns| &ns.fd)
    }

    /// Drops the namespace when the lease ends instead of returning it: the step may change it
    /// (it has `CAP_NET_ADMIN`).
    pub(crate) fn discard(&mut self) {
        self.reuse = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut ns) = self.ns.take() else {
            return;
        };
        if !self.reuse {
            return;
        }
        if !matches!(ns._slirp.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(mut pool) = POOL.lock()
            && pool.len() < POOL_SIZE
        {
            pool.push(ns);
        }
    }
}

/// The namespace being prepared for the next step.
static NEXT: Mutex<Option<std::thread::JoinHandle<io::Result<NetNs>>>> = Mutex::new(None);

fn prefetch() {
    if let Ok(mut next) = NEXT.lock()
        && next.is_none()
    {
        *next = std::thread::Builder::new()
            .name("kiln-netns".into())
            .spawn(create)
            .ok();
    }
}

/// A namespace for a step: an idle one from the pool, else the one prepared in the background,
/// else a new one (and then the next is prepared).
pub(crate) async fn acquire() -> io::Result<Lease> {
    loop {
        let pooled = POOL.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(mut ns) => {
                if matches!(ns._slirp.try_wait(), Ok(None)) {
                    return Ok(Lease {
                        ns: Some(ns),
                        reuse: true,
                    });
                }
            }
            None => break,
        }
    }
    fresh().await.map(|ns| Lease {
        ns: Some(ns),
        reuse: true,
    })
}

async fn fresh() -> io::Result<NetNs> {
    let pending = NEXT.lock().ok().and_then(|mut n| n.take());
    let ns = tokio::task::spawn_blocking(move || match pending {
        Some(h) => h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("network setup thread panicked"))),
        None => create(),
    })
    .await
    .map_err(io::Error::other)?;
    prefetch();
    // A prepared namespace whose slirp4netns died (killed by someone) is useless: make another.
    if let Ok(mut ns) = ns
        && matches!(ns._slirp.try_wait(), Ok(None))
    {
        return Ok(ns);
    }
    tokio::task::spawn_blocking(create)
        .await
        .map_err(io::Error::other)?
}

/// How long `slirp4netns` may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

fn create() -> io::Result<NetNs> {
    let slirp = slirp4netns()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "slirp4netns is not installed"))?;
    let fd = new_namespace()?;
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let (exit_r, exit_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut cmd = std::process::Command::new(&slirp);
    cmd.args([
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--netns-type=path",
        "--ready-fd=3",
        "--exit-fd=4",
        "/proc/self/fd/5",
        "tap0",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let fds = [
        (ready_w.as_raw_fd(), 3),
        (exit_r.as_raw_fd(), 4),
        (fd.as_raw_fd(), 5),
    ];
    use std::os::unix::process::CommandExt;
    // SAFETY: `place_fds` makes only async-signal-safe calls on descriptors open in the child.
    unsafe {
        cmd.pre_exec(move || super::sandbox::place_fds(&fds));
    }
    let mut child = cmd.spawn()?;
    drop(ready_w);
    drop(exit_r);
    // Ready is one byte ("1"); EOF means it failed to set up.
    let mut ready = std::fs::File::from(ready_r);
    let mut pfd = libc::pollfd {
        fd: ready.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, READY_TIMEOUT.as_millis() as i32) };
    let mut byte = [0u8; 1];
    let ok = n > 0 && matches!(ready.read(&mut byte), Ok(1));
    if !ok {
        let _ = child.kill();
        let mut msg = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut msg);
        }
        let _ = child.wait();
        return Err(io::Error::other(format!(
            "slirp4netns did not start: {}",
            msg.lines().last().unwrap_or("no message")
        )));
    }
    // Its later messages are not read; don't let a full pipe block it.
    drop(child.stderr.take());
    Ok(NetNs {
        fd,
        _exit: exit_w,
        _slirp: child,
    })
}

/// A new network namespace with `lo` up, held by a descriptor. Runs on a thread of its own, which
/// is the only one to enter the namespace and ends right after.
fn new_namespace() -> io::Result<OwnedFd> {
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<OwnedFd> {
            // SAFETY: CLONE_NEWNET only changes this thread's namespace; no CLONE_FILES.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
            let fd = rustix::fs::open(
                "/proc/thread-self/ns/net",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            super::helper::loopback_up()?;
            Ok(fd)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("network namespace thread panicked")))
    })
}

/// Joins the network namespace behind `fd` (in the helper, before it forks init).
pub(crate) fn join(fd: i32) -> io::Result<()> {
    // SAFETY: the caller owns `fd`; setns does not take it over.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    rustix::thread::move_into_link_name_space(fd, Some(rustix::thread::LinkNameSpaceType::Network))
        .map_err(Into::into)
}

/// `/etc/resolv.conf` for a step with a namespace of its own: the host's, with every nameserver
/// on the host's loopback (systemd-resolved, dnsmasq) replaced by the forwarder, which reaches
/// them; when no nameserver is left, the forwarder alone (as Docker falls back to public ones).
pub(crate) fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    let mut forwarder = false;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            let loopback = addr
                .parse::<std::net::IpAddr>()
                .map(|a| a.is_loopback())
                .unwrap_or(false);
            if loopback || addr.starts_with("fe80:") {
                if !forwarder {
                    out.push_str(&format!("nameserver {DNS_FORWARDER}\n"));
                    forwarder = true;
                    servers += 1;
                }
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str(&format!("nameserver {DNS_FORWARDER}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_go_through_the_forwarder() {
        let host = "# generated\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        assert_eq!(
            resolv_conf(host),
            "# generated\nnameserver 10.0.2.3\noptions edns0 trust-ad\nsearch lan\n"
        );
        let host = "nameserver 10.255.255.53\nnameserver ::1\n";
        assert_eq!(
            resolv_conf(host),
            "nameserver 10.255.255.53\nnameserver 10.0.2.3\n"
        );
        assert_eq!(resolv_conf(""), "nameserver 10.0.2.3\n");
    }
}
