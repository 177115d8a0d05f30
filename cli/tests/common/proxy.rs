//! A TCP proxy for tests that need a registry connection to break or to corrupt bytes.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the proxy does to the bytes it forwards.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Close both sides after this many client-to-server bytes on a connection.
    DropUploadAfter(usize),
    /// Flip one byte at this offset of every server-to-client stream long enough to have it.
    CorruptDownloadAt(usize),
}

/// A TCP proxy on 127.0.0.1 to `target` that applies `fault`; stops when dropped.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, limit: Option<usize>, corrupt: Option<usize>) {
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
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if limit.is_some_and(|l| total >= l) {
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
            let (up, down) = match fault {
                Fault::DropUploadAfter(n) => ((Some(n), None), (None, None)),
                Fault::CorruptDownloadAt(n) => ((None, None), (None, Some(n))),
            };
            std::thread::spawn(move || pump(client, server, up.0, up.1));
            std::thread::spawn(move || pump(s2, c2, down.0, down.1));
        }
    });
    Proxy { addr, stop }
}
