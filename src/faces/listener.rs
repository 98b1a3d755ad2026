//! Accepting connections for the network faces: TCP_NODELAY and keepalive on every socket, a
//! cap on open connections, a deadline for a peer's first bytes, and a backoff instead of a
//! busy loop when the process runs out of file descriptors; and TLS, when configured, with each
//! handshake in its own task so a slow peer holds up no other.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use socket2::{SockRef, TcpKeepalive};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Sleep,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::tls::{Alpn, Certificates};

/// How connections are accepted.
#[derive(Clone, Copy, Debug)]
pub struct Accepting {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a new connection may take to send its first bytes (the HTTP/2 preface).
    pub handshake_timeout: Duration,
}

/// Idle time before TCP keepalive probes start, so a peer that vanished without closing is
/// found.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The HTTP/2 client connection preface is 24 bytes; an HTTP/1 request line and Host header
/// are longer.
const FIRST_BYTES: usize = 24;
/// The longest pause between accept attempts when the process is out of descriptors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Refused connections and accept errors are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The accepted connections of `listener`, as a stream for `serve_with_incoming`.
pub struct Incoming {
    listener: TcpListener,
    settings: Accepting,
    slots: Arc<Semaphore>,
    backoff: Duration,
    pause: Option<Pin<Box<Sleep>>>,
    log: RateLimitedLog,
    tls: Option<(Certificates, Alpn)>,
    handshakes: JoinSet<Option<TlsStream<Connection>>>,
}

impl Incoming {
    pub fn new(listener: TcpListener, settings: Accepting) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            backoff: Duration::from_millis(10),
            pause: None,
            log: RateLimitedLog::default(),
            tls: None,
            handshakes: JoinSet::new(),
        }
    }

    /// Serves TLS with `certificates` (re-read on change) to every connection.
    pub fn with_tls(mut self, certificates: Option<Certificates>, alpn: Alpn) -> Self {
        self.tls = certificates.map(|certificates| (certificates, alpn));
        self
    }

    /// Starts the TLS handshake of `connection`; it joins the stream when it completes within
    /// the handshake deadline, and is closed otherwise.
    fn start_handshake(&mut self, connection: Connection, certificates: &Certificates, alpn: Alpn) {
        let acceptor = TlsAcceptor::from(certificates.server_config(alpn));
        let timeout = self.settings.handshake_timeout;
        let peer = connection.peer;
        self.handshakes.spawn(async move {
            match tokio::time::timeout(timeout, acceptor.accept(connection)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not done by server.handshake_timeout_secs");
                    None
                }
            }
        });
    }

    fn configure(&self, stream: &TcpStream) {
        // Without TCP_NODELAY a small response waits for the peer's delayed ACK (about 40 ms).
        let keepalive = TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        let configured = stream
            .set_nodelay(true)
            .and_then(|()| SockRef::from(stream).set_tcp_keepalive(&keepalive));
        if let Err(error) = configured {
            tracing::debug!(%error, "cannot set socket options on an accepted connection");
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Io>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            while let Poll::Ready(Some(done)) = self.handshakes.poll_join_next(cx) {
                if let Ok(Some(stream)) = done {
                    return Poll::Ready(Some(Ok(Io::Tls(Box::new(stream)))));
                }
            }
            if let Some(pause) = &mut self.pause {
                ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            match ready!(self.listener.poll_accept(cx)) {
                Ok((stream, peer)) => {
                    self.backoff = Duration::from_millis(10);
                    let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                        let max = self.settings.max_connections;
                        self.log.warn(|suppressed| {
                            tracing::warn!(%peer, max, suppressed, "connection limit reached (server.max_connections): closing new connections");
                        });
                        continue;
                    };
                    self.configure(&stream);
                    let connection =
                        Connection::new(stream, peer, slot, self.settings.handshake_timeout);
                    match self.tls.clone() {
                        Some((certificates, alpn)) => {
                            self.start_handshake(connection, &certificates, alpn)
                        }
                        None => return Poll::Ready(Some(Ok(Io::Plain(connection)))),
                    }
                }
                Err(error) if out_of_resources(&error) => {
                    let backoff = self.backoff;
                    self.log.warn(|suppressed| {
                        tracing::warn!(%error, ?backoff, suppressed, "cannot accept connections: out of descriptors or memory; retrying");
                    });
                    self.pause = Some(Box::pin(tokio::time::sleep(backoff)));
                    self.backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                // The peer gave up before the accept (ECONNABORTED and the like): next one.
                Err(_) => {}
            }
        }
    }
}

/// Errors that accepting again at once would only repeat.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A warning that repeats under load: logged at most every `LOG_EVERY`, with the number of
/// occurrences left out since.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        if self.last.is_some_and(|last| last.elapsed() < LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// An accepted connection. It holds its slot of `max_connections` until dropped, and fails
/// its reads if the peer has not sent its first bytes by the handshake deadline, so that a
/// socket that never speaks does not stay open (and keep shutdown from draining) forever.
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    /// Bytes still expected before the deadline, and the deadline; `None` once they arrived.
    handshake: Option<(usize, Pin<Box<Sleep>>)>,
}

impl Connection {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        timeout: Duration,
    ) -> Self {
        Self {
            stream,
            peer,
            _slot: slot,
            handshake: Some((FIRST_BYTES, Box::pin(tokio::time::sleep(timeout)))),
        }
    }
}

/// The HTTP face serves through axum, which takes a listener rather than a stream.
impl axum::serve::Listener for Incoming {
    type Io = Io;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Io, SocketAddr) {
        loop {
            // `Incoming` never ends and handles accept errors itself.
            if let Some(Ok(io)) = self.next().await {
                let peer = io.connection().peer;
                return (io, peer);
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some((expected, deadline)) = &mut this.handshake {
            let read = buf.filled().len() - before;
            if read >= *expected {
                this.handshake = None;
            } else {
                *expected -= read;
                if polled.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer sent no handshake in time (server.handshake_timeout_secs)",
                    )));
                }
            }
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// An accepted connection, after its TLS handshake when the listener serves TLS.
pub enum Io {
    Plain(Connection),
    Tls(Box<TlsStream<Connection>>),
}

impl Io {
    fn connection(&self) -> &Connection {
        match self {
            Io::Plain(connection) => connection,
            Io::Tls(stream) => stream.get_ref().0,
        }
    }
}

impl Connected for Io {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.connection().connect_info()
    }
}

/// Calls `$method` on whichever stream `$io` holds.
macro_rules! either {
    ($io:expr, $stream:ident => $call:expr) => {
        match $io.get_mut() {
            Io::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            Io::Tls($stream) => {
                let $stream = Pin::new($stream.as_mut());
                $call
            }
        }
    };
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        either!(self, stream => stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self, stream => stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self, stream => stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(connection) => connection.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, stream => stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, stream => stream.poll_shutdown(cx))
    }
}
