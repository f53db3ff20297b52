//! Loopback ports: free ones, closed ones, one that never answers, waiting for a listener.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port free a moment ago. Another process can take it before ours binds it, so
/// a caller that starts a server on it retries with a new one if the server fails to bind.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A loopback port nothing listens on (connections are refused at once).
pub fn closed_port() -> u16 {
    free_port()
}

/// A loopback endpoint that accepts connections and never answers (a hung service).
pub fn silent_endpoint() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a loopback listener");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Waits until something accepts connections on loopback `port`: true once it does, false
/// after `limit` or as soon as `gone()` says the process that should listen has ended.
pub fn wait_until_listening(port: u16, limit: Duration, mut gone: impl FnMut() -> bool) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if Instant::now() > deadline || gone() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
