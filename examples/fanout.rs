//! Fan-out: N WatchHealth streams on a running healthscore, one change pushed, the time until
//! every stream has it (p50, p99, max), and the server's RSS before and after opening them.
//!
//!     fanout ADDR N SERVER_PID

use std::{
    error::Error,
    time::{Duration, Instant},
};

use healthscore::proto::v1::{
    health_reports_client::HealthReportsClient, DatasourceSnapshot, ReportMetricsRequest,
    WatchHealthRequest,
};
use tonic::transport::{Channel, Endpoint};

/// Streams per HTTP/2 connection; servers commonly cap concurrent streams near 200.
const STREAMS_PER_CONNECTION: usize = 100;

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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, n, pid] = args.as_slice() else {
        return Err("usage: fanout ADDR N SERVER_PID".into());
    };
    let n: usize = n.parse()?;
    let uri = format!("http://{addr}");
    let mut control = HealthReportsClient::connect(uri.clone()).await?;
    control.report_metrics(push(1)).await?;
    let before = rss_kib(pid)?;

    let mut channels: Vec<Channel> = Vec::new();
    for _ in 0..n.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(Endpoint::from_shared(uri.clone())?.connect().await?);
    }
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Instant>(n);
    let opened = Instant::now();
    for i in 0..n {
        let channel = channels[i / STREAMS_PER_CONNECTION].clone();
        let (ready, done) = (ready_tx.clone(), done_tx.clone());
        tokio::spawn(async move {
            let mut client = HealthReportsClient::new(channel);
            let Ok(response) = client.watch_health(WatchHealthRequest::default()).await else {
                return;
            };
            let mut stream = response.into_inner();
            if matches!(stream.message().await, Ok(Some(_))) {
                let _ = ready.send(()).await;
            }
            if matches!(stream.message().await, Ok(Some(_))) {
                let _ = done.send(Instant::now()).await;
            }
        });
    }
    drop((ready_tx, done_tx));
    for _ in 0..n {
        ready_rx.recv().await.ok_or("a stream failed to open")?;
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
    latencies.sort_unstable();
    let per_stream = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "fan-out {n} streams ({} connections, opened in {open_time:.2?}): {} of {n} got the change; \
         p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        channels.len(),
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    println!(
        "server RSS {:.1} MiB before, {:.1} MiB with the streams open: {:.1} KiB per stream (target < 64 KiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per_stream / 1024.0
    );
    Ok(())
}
