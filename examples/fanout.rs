//! Fan-out: N WatchHealth streams on a running healthscore, one change pushed, the time until
//! every stream has received it (p50, p99, max), and the server's RSS before and after opening
//! them. The watchers are raw HTTP/2 streams (the `h2` crate) that count each gRPC message's
//! bytes as they arrive, without copying or decoding them: this process shares the server's
//! two cores, and with tonic's client it used 7.9 s of CPU to the server's 2.9 s over a
//! 50,000-stream run, so the figures were mostly its own.
//!
//!     fanout ADDR N SERVER_PID [compact] [closing]
//!
//! compact: omit_entities, as `healthscore watch`. Watchers keep watching after the change, as
//! a dashboard or `healthscore watch` does, until every one has it; closing: each closes its
//! stream as soon as it has the change, so the server tears streams down while it is still
//! sending (the way this benchmark measured before 2026-12-07).

use std::{
    error::Error,
    time::{Duration, Instant},
};

use healthscore::proto::v1::{
    health_reports_client::HealthReportsClient, DatasourceSnapshot, ReportMetricsRequest,
    ReportOptions, WatchHealthRequest,
};
use prost::{bytes::Bytes, Message};

/// Streams per HTTP/2 connection; servers commonly cap concurrent streams near 200.
const STREAMS_PER_CONNECTION: usize = 100;

/// An HTTP/2 connection to the server, driven by a task of its own, with flow-control windows
/// as gRPC clients open them (4 MiB a stream, 16 MiB a connection, as bench.sh's h2load; grpc-go
/// grows its windows to these by BDP estimation). With h2's default of 64 KiB a connection, the
/// 100 streams of a connection shared three 20 KB messages' worth of window, and the fan-out
/// waited on this client's WINDOW_UPDATEs: p99 1.9 s against 0.9-1.0 s at 50,000 streams.
async fn connect(addr: &str) -> Result<h2::client::SendRequest<Bytes>, Box<dyn Error>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(tcp)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A WatchHealth stream, read as the lengths of its gRPC messages: each DATA frame's bytes are
/// counted (a 5-byte prefix, then the message) and their flow-control capacity given back.
struct Watch {
    body: h2::RecvStream,
    chunk: Bytes,
    prefix: Vec<u8>,
    /// Bytes of the current message not yet received.
    left: usize,
    length: usize,
}

impl Watch {
    async fn open(
        client: h2::client::SendRequest<Bytes>,
        addr: &str,
        compact: bool,
    ) -> Result<Self, Box<dyn Error + Send + Sync>> {
        let mut client = client.ready().await?;
        let request = http::Request::post(format!(
            "http://{addr}/healthscore.v1.HealthReports/WatchHealth"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
        let (response, mut send) = client.send_request(request, false)?;
        let message = WatchHealthRequest {
            subsystems: Vec::new(),
            options: Some(ReportOptions {
                min_severity: 0,
                omit_entities: compact,
                ..Default::default()
            }),
        }
        .encode_to_vec();
        let mut framed = vec![0];
        framed.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
        framed.extend_from_slice(&message);
        send.send_data(framed.into(), true)?;
        let response = response.await?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("WatchHealth answered {}", response.status()).into());
        }
        Ok(Self {
            body: response.into_body(),
            chunk: Bytes::new(),
            prefix: Vec::with_capacity(5),
            left: 0,
            length: 0,
        })
    }

    /// The next message's length in bytes; `None` once the stream ends.
    async fn message(&mut self) -> Result<Option<usize>, h2::Error> {
        loop {
            if self.chunk.is_empty() {
                let Some(chunk) = self.body.data().await.transpose()? else {
                    return Ok(None);
                };
                self.body.flow_control().release_capacity(chunk.len())?;
                self.chunk = chunk;
                continue;
            }
            if self.left > 0 {
                let taken = self.left.min(self.chunk.len());
                self.chunk = self.chunk.slice(taken..);
                self.left -= taken;
                if self.left == 0 {
                    return Ok(Some(self.length));
                }
                continue;
            }
            let taken = (5 - self.prefix.len()).min(self.chunk.len());
            self.prefix.extend_from_slice(&self.chunk[..taken]);
            self.chunk = self.chunk.slice(taken..);
            if let [_, a, b, c, d] = self.prefix[..] {
                self.length = u32::from_be_bytes([a, b, c, d]) as usize;
                self.left = self.length;
                self.prefix.clear();
                if self.length == 0 {
                    return Ok(Some(0));
                }
            }
        }
    }
}

fn rss_kib(pid: &str) -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

fn push(active: u32) -> ReportMetricsRequest {
    ReportMetricsRequest {
        source: "fanout".into(),
        datasources: vec![DatasourceSnapshot {
            name: "db".into(),
            started: None,
            active,
            idle: 0,
            max: 32,
            threads_awaiting: 0,
        }],
        ..ReportMetricsRequest::default()
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, n, pid, modes @ ..] = args.as_slice() else {
        return Err("usage: fanout ADDR N SERVER_PID [compact] [closing]".into());
    };
    if let Some(mode) = modes
        .iter()
        .find(|m| !["compact", "closing"].contains(&m.as_str()))
    {
        return Err(format!("unknown mode {mode:?}: expected compact or closing").into());
    }
    let compact = modes.iter().any(|m| m == "compact");
    let closing = modes.iter().any(|m| m == "closing");
    let n: usize = n.parse()?;
    let uri = format!("http://{addr}");
    let mut control = HealthReportsClient::connect(uri.clone()).await?;
    control.report_metrics(push(1)).await?;
    let before = rss_kib(pid)?;

    let mut channels = Vec::new();
    for _ in 0..n.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(connect(addr).await?);
    }
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<usize>(n);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Instant>(n);
    // Unless `closing`, each stream stays open until every one has the change.
    let (measured_tx, measured_rx) = tokio::sync::watch::channel(false);
    let opened = Instant::now();
    for i in 0..n {
        let channel = channels[i / STREAMS_PER_CONNECTION].clone();
        let (ready, done) = (ready_tx.clone(), done_tx.clone());
        let mut measured = measured_rx.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            let Ok(mut stream) = Watch::open(channel, &addr, compact).await else {
                return;
            };
            if let Ok(Some(bytes)) = stream.message().await {
                let _ = ready.send(bytes).await;
            }
            if matches!(stream.message().await, Ok(Some(_))) {
                let _ = done.send(Instant::now()).await;
            }
            if !closing {
                let _ = measured.wait_for(|measured| *measured).await;
            }
            drop(stream);
        });
    }
    drop((ready_tx, done_tx));
    let mut message_bytes = 0;
    for _ in 0..n {
        message_bytes = ready_rx.recv().await.ok_or("a stream failed to open")?;
    }
    let open_time = opened.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid)?;

    let pushed = Instant::now();
    control.report_metrics(push(31)).await?;
    let mut latencies = Vec::with_capacity(n);
    while let Some(at) = done_rx.recv().await {
        latencies.push(at.duration_since(pushed));
        if latencies.len() == n {
            break;
        }
    }
    measured_tx.send_replace(true);
    latencies.sort_unstable();
    let per_stream_kib = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "fan-out {n} streams ({} connections, {message_bytes}-byte messages{}, opened in {open_time:.2?}): \
         {} of {n} got the change; p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        channels.len(),
        match (compact, closing) {
            (false, false) => "",
            (true, false) => ", omit_entities",
            (false, true) => ", each closed on the change",
            (true, true) => ", omit_entities, each closed on the change",
        },
        latencies.len(),
        millis(percentile(&latencies, 0.5)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "  server RSS {:.1} MiB before, {:.1} MiB with the streams open: {per_stream_kib:.1} KiB per stream (target < 64 KiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
    );
    // Close every stream and connection, then see what the server gave back.
    drop(channels);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let closed = rss_kib(pid)?;
    println!(
        "  server RSS 10 s after the streams closed: {:.1} MiB ({:.2}x the RSS before; target <= 2x)",
        closed as f64 / 1024.0,
        closed as f64 / before.max(1) as f64,
    );
    Ok(())
}
