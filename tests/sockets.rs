//! Socket options of accepted connections, seen from the server's side of a real connection.

mod common;

use std::{
    os::fd::RawFd,
    time::{Duration, Instant},
};

use common::TestServer;
use healthscore::proto::v1;

/// The local port of socket `fd`, and whether it is listening; `None` if it is not a TCP socket.
fn tcp_socket(fd: RawFd) -> Option<(u16, bool)> {
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr and len describe a buffer of the size passed.
    let named = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) };
    if named != 0 || i32::from(addr.sin_family) != libc::AF_INET {
        return None;
    }
    let listening = option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 0;
    Some((u16::from_be(addr.sin_port), listening))
}

fn option(fd: RawFd, level: i32, name: i32) -> Option<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: value and len describe an i32, the type of these options.
    let got = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    (got == 0).then_some(value)
}

/// Every connection this process accepted on `port`.
fn accepted_on(port: u16) -> Vec<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| tcp_socket(fd) == Some((port, false)))
        .collect()
}

#[tokio::test]
async fn accepted_connections_have_nodelay_and_keepalive() {
    let server = TestServer::start().await;
    // After one call the server holds its end of the test's client connection.
    server
        .reports()
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("GetSystemHealth");
    let sockets = accepted_on(server.addr.port());
    assert!(!sockets.is_empty(), "no accepted connection found");
    for fd in sockets {
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), Some(1));
        assert_eq!(option(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), Some(1));
        // A vanished peer is found in 30 s + 3 x 10 s, in place of HTTP/2 pings.
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), Some(30));
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), Some(10));
        assert_eq!(option(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), Some(3));
    }
}

/// A raw TCP connection to `addr` that sends nothing.
fn idle_connection(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

/// Whether the server closed `stream` (a read sees the end, or a reset).
fn closed_by_server(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut byte = [0u8; 64];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            // The server may write its HTTP/2 SETTINGS before closing.
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_sends_its_preface_is_closed_after_the_handshake_timeout() {
    let mut config = healthscore::service::Config::default();
    config.host.enabled = false;
    config.server.handshake_timeout_secs = 1;
    let server = TestServer::start_with(config).await;
    let addr = server.addr;
    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || closed_by_server(&mut idle_connection(addr)))
        .await
        .expect("join");
    assert!(closed, "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_and_the_others_keep_working() {
    let mut config = healthscore::service::Config::default();
    config.host.enabled = false;
    config.server.max_connections = 3;
    config.server.probe_connections = 0;
    let server = TestServer::start_with(config).await;
    let addr = server.addr;
    // The test client's connection is one; two idle ones fill the cap.
    let held: Vec<_> = (0..2).map(|_| idle_connection(addr)).collect();
    // The cap is reached once the server holds all three.
    common::eventually(
        Duration::from_secs(5),
        "the server accepted its three connections",
        move || async move { (accepted_on(addr.port()).len() >= 3).then_some(()) },
    )
    .await;
    let refused = tokio::task::spawn_blocking(move || closed_by_server(&mut idle_connection(addr)))
        .await
        .expect("join");
    assert!(refused, "a connection beyond the cap stayed open");
    server
        .reports()
        .get_system_health(v1::GetSystemHealthRequest::default())
        .await
        .expect("the connection within the cap still works");
    drop(held);
}
