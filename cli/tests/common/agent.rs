//! A stand-in SSH agent for `RUN --mount=type=ssh` tests: it records what reaches it.

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Accepts connections on `agent` and returns all bytes received, once they contain
/// `hello-agent` or after 20 s (bounded: it stops by itself).
pub fn stand_in(agent: UnixListener) -> JoinHandle<String> {
    agent.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains("hello-agent") {
            match agent.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let _ = c.read_to_end(&mut got);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    })
}
