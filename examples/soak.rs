//! Mixed load for scripts/soak.sh: 100 sources pushing twice a second, 100 WatchHealth streams
//! reading every change, and Check in a loop, for a number of seconds. Prints what it did and
//! exits non-zero on any error.
//!
//!     soak ADDR SECONDS

use std::{
    error::Error,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use healthscore::proto::{
    health::{health_client::HealthClient, HealthCheckRequest},
    v1::{health_reports_client::HealthReportsClient, DatasourceSnapshot, ReportMetricsRequest},
};
use tonic::transport::{Channel, Endpoint};

#[derive(Default)]
struct Counts {
    pushes: AtomicU64,
    checks: AtomicU64,
    messages: AtomicU64,
}

fn push(source: usize, round: u64) -> ReportMetricsRequest {
    // Every 20th round a pool crosses into saturation and back, so watchers see changes.
    let active = if round % 20 == 0 && source % 10 == 0 {
        31
    } else {
        8 + (round % 4) as u32
    };
    ReportMetricsRequest {
        source: format!("soak-{source:03}"),
        sequence: round + 1,
        ttl: Some(prost_types::Duration {
            seconds: 5,
            nanos: 0,
        }),
        datasources: (0..10)
            .map(|pool| DatasourceSnapshot {
                name: format!("pool-{pool}"),
                started: None,
                active,
                idle: 2,
                max: 32,
                threads_awaiting: 0,
            })
            .collect(),
        ..ReportMetricsRequest::default()
    }
}

async fn pusher(
    channel: Channel,
    source: usize,
    until: Instant,
    counts: Arc<Counts>,
) -> Result<(), tonic::Status> {
    let mut client = HealthReportsClient::new(channel);
    let mut round = 0;
    while Instant::now() < until {
        client.report_metrics(push(source, round)).await?;
        counts.pushes.fetch_add(1, Ordering::Relaxed);
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Leave on purpose, as an app shutting down would.
    client
        .forget_source(healthscore::proto::v1::ForgetSourceRequest {
            source: format!("soak-{source:03}"),
        })
        .await?;
    Ok(())
}

async fn watcher(
    channel: Channel,
    until: Instant,
    counts: Arc<Counts>,
) -> Result<(), tonic::Status> {
    let mut stream = HealthReportsClient::new(channel)
        .watch_health(healthscore::proto::v1::WatchHealthRequest::default())
        .await?
        .into_inner();
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
            Ok(Ok(Some(_))) => {
                counts.messages.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(None)) => return Err(tonic::Status::unavailable("the watch stream ended")),
            Ok(Err(status)) => return Err(status),
            Err(_) => {}
        }
    }
    Ok(())
}

async fn checker(
    channel: Channel,
    until: Instant,
    counts: Arc<Counts>,
) -> Result<(), tonic::Status> {
    let mut client = HealthClient::new(channel);
    while Instant::now() < until {
        client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        counts.checks.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, seconds] = args.as_slice() else {
        return Err("usage: soak ADDR SECONDS".into());
    };
    let until = Instant::now() + Duration::from_secs(seconds.parse()?);
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    // Ten connections, as ten app processes would open.
    let mut channels = Vec::new();
    for _ in 0..10 {
        channels.push(endpoint.connect().await?);
    }
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let channel = channels[i % channels.len()].clone();
        tasks.push(tokio::spawn(pusher(
            channel.clone(),
            i,
            until,
            counts.clone(),
        )));
        tasks.push(tokio::spawn(watcher(channel, until, counts.clone())));
    }
    for channel in &channels[..4] {
        tasks.push(tokio::spawn(checker(
            channel.clone(),
            until,
            counts.clone(),
        )));
    }
    let mut errors = 0;
    for task in tasks {
        if let Err(status) = task.await? {
            eprintln!("error: {status}");
            errors += 1;
        }
    }
    println!(
        "soak: {} pushes, {} checks, {} watch messages, {errors} errors",
        counts.pushes.load(Ordering::Relaxed),
        counts.checks.load(Ordering::Relaxed),
        counts.messages.load(Ordering::Relaxed)
    );
    if errors > 0 {
        return Err(format!("{errors} tasks failed").into());
    }
    Ok(())
}
