//! Fan-out: N WatchHealth streams on a running healthscore, one change pushed, the time until
//! every stream has received it (p50, p99, max), and the server's RSS before and after opening
//! them. The client counts each message's bytes instead of decoding it, so the figures are the
//! server's, not this process's protobuf decoding.
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
use prost::{bytes::Buf, Message};
use tonic::{
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::{Channel, Endpoint},
    Status,
};

/// Streams per HTTP/2 connection; servers commonly cap concurrent streams near 200.
const STREAMS_PER_CONNECTION: usize = 100;

/// Sends a WatchHealthRequest; receives each message as its length in bytes.
#[derive(Default)]
struct CountingCodec;

struct RequestEncoder;
struct LengthDecoder;

impl Codec for CountingCodec {
    type Encode = WatchHealthRequest;
    type Decode = usize;
    type Encoder = RequestEncoder;
    type Decoder = LengthDecoder;

    fn encoder(&mut self) -> RequestEncoder {
        RequestEncoder
    }

    fn decoder(&mut self) -> LengthDecoder {
        LengthDecoder
    }
}

impl Encoder for RequestEncoder {
    type Item = WatchHealthRequest;
    type Error = Status;

    fn encode(&mut self, item: WatchHealthRequest, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Decoder for LengthDecoder {
    type Item = usize;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<usize>, Status> {
        let length = src.remaining();
        src.advance(length);
        Ok(Some(length))
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

async fn watch(channel: Channel, compact: bool) -> Result<tonic::Streaming<usize>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let request = WatchHealthRequest {
        subsystems: Vec::new(),
        options: Some(ReportOptions {
            min_severity: 0,
            omit_entities: compact,
            ..Default::default()
        }),
    };
    let path = PathAndQuery::from_static("/healthscore.v1.HealthReports/WatchHealth");
    Ok(grpc
        .server_streaming(tonic::Request::new(request), path, CountingCodec)
        .await?
        .into_inner())
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

    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..n.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(Endpoint::from_shared(uri.clone())?.connect().await?);
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
        tokio::spawn(async move {
            let Ok(mut stream) = watch(channel, compact).await else {
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
