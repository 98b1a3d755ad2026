//! Accepting connections for the network faces: TCP_NODELAY and keepalive on every socket, a
//! cap on open connections (with slots kept for probes, and a cap per peer address), a
//! deadline for a peer's first bytes, idle connections and stalled sends closed, and a backoff
//! instead of a busy loop when the process runs out of file descriptors; and TLS, when
//! configured, with each handshake in its own task so a slow peer holds up no other.
//!
//! A connection knows how many requests it carries (counted by [`TrackLayer`] from a request's
//! arrival to the end of its response body), so that "idle" means "no request open", whatever
//! the protocol sends meanwhile (HTTP/2 pings, a half-sent header). The response body that ends
//! a request, [`HeldBody`], also carries the answer's budget share (`faces/budget`), so one
//! wrapper holds both until the last frame is sent.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{ready, Context, Poll, Waker},
    time::{Duration, Instant},
};

use http_body::{Body, Frame, SizeHint};
use socket2::{SockRef, TcpKeepalive};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Sleep,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;
use tower::{Layer, Service};

use super::{
    budget::Share,
    tls::{Alpn, Certificates},
};

/// How connections are accepted.
#[derive(Clone, Copy, Debug)]
pub struct Accepting {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections beyond `max_connections` that serve probes only, so that a client holding
    /// every slot does not take the kubelet's probes down with it.
    pub probe_connections: usize,
    /// Connections open at once from one peer address.
    pub max_connections_per_peer: usize,
    /// How long a new connection may take to send its first bytes (the HTTP/2 preface), and an
    /// HTTP/1.1 request its headers.
    pub handshake_timeout: Duration,
    /// How long a connection may carry no request before it is closed.
    pub idle_timeout: Duration,
    /// How long a send may wait on a peer that reads nothing before the connection is closed.
    pub send_timeout: Duration,
}

/// TCP keepalive: idle time before the first probe, time between probes, and unanswered probes
/// before the kernel drops the connection. A peer that vanished without closing (a lost node,
/// a partition), even one holding a watch stream that sends nothing, is found within a minute,
/// and NAT and load balancer mappings of quiet connections stay alive.
const TCP_KEEPALIVE: TcpKeepalive = TcpKeepalive::new()
    .with_time(Duration::from_secs(30))
    .with_interval(Duration::from_secs(10))
    .with_retries(3);

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
    probe_slots: Arc<Semaphore>,
    per_peer: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Cancelled when the faces drain: connections with no request open close at once.
    draining: CancellationToken,
    backoff: Duration,
    pause: Option<Pin<Box<Sleep>>>,
    log: RateLimitedLog,
    tls: Option<(Certificates, Alpn)>,
    handshakes: JoinSet<Option<TlsStream<Connection>>>,
}

impl Incoming {
    pub fn new(listener: TcpListener, settings: Accepting, draining: CancellationToken) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            probe_slots: Arc::new(Semaphore::new(settings.probe_connections)),
            per_peer: Arc::default(),
            draining,
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
        let peer = connection.peer.addr;
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

    /// A slot for a connection from `peer`: a general one, else one kept for probes; `None`
    /// when the peer has its share or every slot is taken.
    fn slots(&self, peer: IpAddr) -> Option<Slots> {
        let peer = PeerSlot::take(&self.per_peer, peer, self.settings.max_connections_per_peer)?;
        let (slot, probes_only) = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => (slot, false),
            Err(_) => (self.probe_slots.clone().try_acquire_owned().ok()?, true),
        };
        Some(Slots {
            _slot: slot,
            probes_only,
            _peer: peer,
        })
    }

    fn configure(&self, stream: &TcpStream) {
        // Without TCP_NODELAY a small response waits for the peer's delayed ACK (about 40 ms).
        let configured = stream
            .set_nodelay(true)
            .and_then(|()| SockRef::from(stream).set_tcp_keepalive(&TCP_KEEPALIVE));
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
                    let Some(slots) = self.slots(peer.ip()) else {
                        let max = self.settings.max_connections;
                        let per_peer = self.settings.max_connections_per_peer;
                        self.log.warn(|suppressed| {
                            tracing::warn!(%peer, max, per_peer, suppressed, "connection limit reached (server.max_connections, server.probe_connections or server.max_connections_per_peer): closing new connections");
                        });
                        continue;
                    };
                    self.configure(&stream);
                    let connection =
                        Connection::new(stream, peer, slots, &self.settings, self.draining.clone());
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

/// A connection's slots: one of `max_connections` or of those kept for probes (and then it
/// serves probes only), and its place in its peer address's count.
struct Slots {
    _slot: OwnedSemaphorePermit,
    probes_only: bool,
    _peer: PeerSlot,
}

/// A connection's place in its peer address's count, given back when the connection closes.
struct PeerSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl PeerSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, peer: IpAddr, max: usize) -> Option<Self> {
        let mut map = counts
            .lock()
            .expect("the per-peer counts are never poisoned");
        let count = map.entry(peer).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            counts: counts.clone(),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .lock()
            .expect("the per-peer counts are never poisoned");
        if let Some(count) = map.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// What the listener knows of a connection, shared with the requests it carries (it is the
/// connection's `ConnectInfo`, in every request's extensions).
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    activity: Arc<Activity>,
}

#[derive(Debug)]
struct Activity {
    /// Requests open on the connection.
    open: AtomicUsize,
    /// When the last request ended (or the connection opened).
    last_end: Mutex<tokio::time::Instant>,
    /// The connection holds a slot kept for probes: it may carry nothing else.
    probes_only: bool,
}

impl Peer {
    /// Whether the connection may carry probes only (it was accepted when every general slot
    /// was taken).
    pub fn probes_only(&self) -> bool {
        self.activity.probes_only
    }

    /// Counts a request as open on this connection until the returned guard is dropped.
    fn open_request(&self) -> OpenRequest {
        self.activity.open.fetch_add(1, Ordering::Relaxed);
        OpenRequest(self.activity.clone())
    }
}

/// A request open on its connection; kept by its response body until the body ends.
#[derive(Debug)]
pub struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        *self.0.last_end.lock().expect("never poisoned") = tokio::time::Instant::now();
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Moves a response's [`Share`] from its extensions (dropped once the headers are sent) into its
/// body (dropped once the last byte is handed to the connection, or the call ends). Used as a
/// `tower::util::MapResponseLayer` on every server, so every response but a gRPC probe's (see
/// [`hold_nothing`]) passes through it without a future of its own; [`TrackLayer`], outside it,
/// adds the request's place among its connection's open requests.
pub fn hold_until_sent<B>(mut response: http::Response<B>) -> http::Response<HeldBody<B>> {
    let share = response.extensions_mut().remove::<Share>();
    response.map(|body| HeldBody {
        body,
        share,
        open: None,
    })
}

/// A response that took no share of the budget: its body will hold only its request's place.
/// The gRPC probes' route uses it rather than [`hold_until_sent`], whose look into the
/// response's extensions cost a Check about 100 instructions under callgrind.
pub fn hold_nothing<B>(response: http::Response<B>) -> http::Response<HeldBody<B>> {
    response.map(|body| HeldBody {
        body,
        share: None,
        open: None,
    })
}

/// A response body, the budget share it holds, and its request's place on its connection.
pub struct HeldBody<B> {
    body: B,
    share: Option<Share>,
    open: Option<OpenRequest>,
}

impl<B> HeldBody<B> {
    /// Keeps `open` until the body is gone.
    pub fn hold_request(&mut self, open: OpenRequest) {
        self.open = Some(open);
    }
}

impl<B: Body + Unpin> Body for HeldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.share = None;
            self.open = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Counts every request as open on its connection (see [`Peer`]) from its arrival until its
/// response body is gone: outside [`hold_until_sent`], it hands the guard
/// straight to the [`HeldBody`] (no extension to allocate and look up on every call).
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Track<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for Track<S>
where
    S: Service<http::Request<B>, Response = http::Response<HeldBody<R>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let open = request.extensions().get::<Peer>().map(Peer::open_request);
        Tracked {
            inner: self.inner.call(request),
            open,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's future, holding its place among its connection's open requests.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        open: Option<OpenRequest>,
    }
}

impl<F, R, E> Future for Tracked<F>
where
    F: Future<Output = Result<http::Response<HeldBody<R>>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut polled = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(open)) = (&mut polled, this.open.take()) {
            response.body_mut().hold_request(open);
        }
        Poll::Ready(polled)
    }
}

/// An accepted connection. It holds its slots until dropped, and ends (its reads see the end of
/// the stream) when the peer has not sent its first bytes by the handshake deadline, when no
/// request has been open for the idle timeout, or, once draining starts, when no request is
/// open; its writes fail when the peer has read nothing for the send timeout. So a socket
/// that never speaks, idles or stops reading does not keep its slot, or shutdown, forever.
pub struct Connection {
    stream: TcpStream,
    peer: Peer,
    _slots: Slots,
    /// Bytes still expected before the deadline, and the deadline; `None` once they arrived.
    handshake: Option<(usize, Pin<Box<Sleep>>)>,
    idle_timeout: Duration,
    /// What wakes a reader that waits for the peer: in a box, so a connection stays small.
    wakeups: Box<Wakeups>,
    send_timeout: Duration,
    /// Set while a send waits on the peer.
    stalled: Option<Pin<Box<Sleep>>>,
}

/// The idle timer and the drain signal of a connection's reader.
struct Wakeups {
    idle: Pin<Box<Sleep>>,
    draining: CancellationToken,
    drain_signal: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker the idle timer and the drain signal hold, when they hold one: both keep the
    /// waker they were last polled with, and a connection is read by one task, so a pending
    /// read polls them only when that waker changed or the timer fired (callgrind: re-polling
    /// both on every pending read cost about 490 instructions of a Check's 57,000).
    registered: Option<Waker>,
}

impl Connection {
    fn new(
        stream: TcpStream,
        addr: SocketAddr,
        slots: Slots,
        settings: &Accepting,
        draining: CancellationToken,
    ) -> Self {
        let now = tokio::time::Instant::now();
        let probes_only = slots.probes_only;
        Self {
            stream,
            peer: Peer {
                addr,
                activity: Arc::new(Activity {
                    open: AtomicUsize::new(0),
                    last_end: Mutex::new(now),
                    probes_only,
                }),
            },
            _slots: slots,
            handshake: Some((
                FIRST_BYTES,
                Box::pin(tokio::time::sleep(settings.handshake_timeout)),
            )),
            idle_timeout: settings.idle_timeout,
            wakeups: Box::new(Wakeups {
                idle: Box::pin(tokio::time::sleep_until(now + settings.idle_timeout)),
                drain_signal: Box::pin(draining.clone().cancelled_owned()),
                draining,
                registered: None,
            }),
            send_timeout: settings.send_timeout,
            stalled: None,
        }
    }

    /// Whether the connection should end now that its peer has nothing more to read: it
    /// carries no request and has been idle too long or the faces are draining. Otherwise the
    /// idle timer is left to wake the reader when it is next worth asking.
    fn should_end(&mut self, cx: &mut Context<'_>) -> bool {
        let activity = &self.peer.activity;
        let idle = activity.open.load(Ordering::Relaxed) == 0;
        let wakeups = &mut *self.wakeups;
        // Only an idle connection ends on draining (a busy one's next read, after its answer
        // is written, asks again).
        if idle && wakeups.draining.is_cancelled() {
            return true;
        }
        // The timer is never set past the moment the connection could have been idle too long,
        // so it can only fire early, and is re-armed only once it has fired: a busy connection's
        // reads cost no clock read and no timer update.
        if wakeups.idle.is_elapsed() {
            let now = tokio::time::Instant::now();
            let deadline = if idle {
                *activity.last_end.lock().expect("never poisoned") + self.idle_timeout
            } else {
                // A request is open: look again in a while (its end wakes no one).
                now + self.idle_timeout
            };
            if idle && deadline <= now {
                return true;
            }
            wakeups.idle.as_mut().reset(deadline);
            // A timer that fired gave its waker up.
            wakeups.registered = None;
        }
        if !wakeups
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            // Both pending: this registers the wakeups.
            let _ = wakeups.idle.as_mut().poll(cx);
            let _ = wakeups.drain_signal.as_mut().poll(cx);
            wakeups.registered = Some(cx.waker().clone());
        }
        false
    }

    /// Fails a send that has waited on the peer for longer than the send timeout.
    fn check_send<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.send_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer read nothing for server.send_timeout_secs",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
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
        if polled.is_pending() && this.should_end(cx) {
            // The end of the stream: the protocol closes the connection as if the peer had.
            return Poll::Ready(Ok(()));
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
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.check_send(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.check_send(cx, polled)
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
    /// The peer, as the requests of this connection see it.
    pub fn peer(&self) -> &Peer {
        &self.connection().peer
    }

    fn connection(&self) -> &Connection {
        match self {
            Io::Plain(connection) => connection,
            Io::Tls(stream) => stream.get_ref().0,
        }
    }
}

impl Connected for Io {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
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
