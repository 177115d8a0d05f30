//! A TCP proxy for tests that need a registry connection to break or to corrupt bytes.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What the proxy does to the bytes it forwards.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Close both sides after this many client-to-server bytes on a connection.
    DropUploadAfter(usize),
    /// Flip one byte at this offset of every server-to-client stream long enough to have it.
    CorruptDownloadAt(usize),
    /// Close the first connection whose server-to-client stream reaches this many bytes, there;
    /// later connections pass untouched.
    DropDownloadOnceAfter(usize),
}

/// A TCP proxy on 127.0.0.1 to `target` that applies `fault`; stops when dropped.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Bytes forwarded from the server to clients so far.
    pub down: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// The limit of one direction: a byte count, and whether it applies only once per proxy.
type Limit = Option<(usize, Option<Arc<AtomicBool>>)>;

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Limit,
    corrupt: Option<usize>,
    count: Option<Arc<AtomicUsize>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(at) = corrupt
            && total <= at
            && at < total + n
        {
            buf[at - total] ^= 0xff;
        }
        total += n;
        if let Some(c) = &count {
            c.fetch_add(n, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some((l, once)) = &limit
            && total >= *l
            && once
                .as_ref()
                .is_none_or(|fired| !fired.swap(true, Ordering::SeqCst))
        {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

pub fn proxy(target: &str, fault: Fault) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let (target, stop2) = (target.to_string(), stop.clone());
    let fired = Arc::new(AtomicBool::new(false));
    let down = Arc::new(AtomicUsize::new(0));
    let down2 = down.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = conn else { continue };
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (up, down): ((Limit, _), (Limit, _)) = match fault {
                Fault::DropUploadAfter(n) => ((Some((n, None)), None), (None, None)),
                Fault::CorruptDownloadAt(n) => ((None, None), (None, Some(n))),
                Fault::DropDownloadOnceAfter(n) => {
                    ((None, None), (Some((n, Some(fired.clone()))), None))
                }
            };
            let count = down2.clone();
            std::thread::spawn(move || pump(client, server, up.0, up.1, None));
            std::thread::spawn(move || pump(s2, c2, down.0, down.1, Some(count)));
        }
    });
    Proxy { addr, down, stop }
}
