//! Helpers for scripts/bench.sh:
//!
//!     bench_client payloads DIR   pre-encoded gRPC request bodies for h2load
//!     bench_client seed ADDR      1,000 entities with about 100 issues
//!     bench_client verify ADDR    one real call of every benchmarked RPC must succeed

use std::{error::Error, path::Path};

use healthscore::proto::{
    health::{health_client::HealthClient, HealthCheckRequest},
    v1::{
        health_reports_client::HealthReportsClient, DatasourceSnapshot, GetSystemHealthRequest,
        ReportMetricsRequest, ReportOptions,
    },
};
use prost::Message;

fn pools(prefix: &str, count: usize, saturated_every: usize) -> Vec<DatasourceSnapshot> {
    (0..count)
        .map(|i| DatasourceSnapshot {
            name: format!("{prefix}-{i:04}"),
            started: None,
            active: if i % saturated_every == 0 { 31 } else { 8 },
            idle: 4,
            max: 32,
            threads_awaiting: 0,
        })
        .collect()
}

/// The 100-entity push the ReportMetrics benchmark repeats.
fn report_request() -> ReportMetricsRequest {
    ReportMetricsRequest {
        source: "bench-push".into(),
        datasources: pools("push", 100, 10),
        ..ReportMetricsRequest::default()
    }
}

/// A gRPC message frame: uncompressed flag, big-endian length, protobuf bytes.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(body.len() + 5);
    framed.push(0);
    framed.extend_from_slice(
        &u32::try_from(body.len())
            .expect("small message")
            .to_be_bytes(),
    );
    framed.extend_from_slice(&body);
    framed
}

fn payloads(dir: &Path) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("check.bin"),
        frame(&HealthCheckRequest {
            service: String::new(),
        }),
    )?;
    std::fs::write(
        dir.join("system.bin"),
        frame(&GetSystemHealthRequest::default()),
    )?;
    let compact = GetSystemHealthRequest {
        options: Some(ReportOptions {
            min_severity: 0,
            omit_entities: true,
        }),
    };
    std::fs::write(dir.join("system-compact.bin"), frame(&compact))?;
    std::fs::write(dir.join("report.bin"), frame(&report_request()))?;
    Ok(())
}

async fn seed(addr: &str) -> Result<(), Box<dyn Error>> {
    let mut client = HealthReportsClient::connect(format!("http://{addr}")).await?;
    for source in 0..10 {
        client
            .report_metrics(ReportMetricsRequest {
                source: format!("seed-{source}"),
                ttl: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                datasources: pools("db", 100, 10),
                ..ReportMetricsRequest::default()
            })
            .await?;
    }
    let report = client
        .get_system_health(GetSystemHealthRequest::default())
        .await?
        .into_inner()
        .report()
        .ok_or("no report")?;
    let entities: usize = report.subsystems.values().map(|r| r.entities.len()).sum();
    let bytes = report.encoded_len();
    println!(
        "seeded: {entities} entities, {} issues, system report {bytes} bytes",
        report.issues.len()
    );
    Ok(())
}

async fn verify(addr: &str) -> Result<(), Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status;
    let mut reports = HealthReportsClient::new(channel);
    reports
        .get_system_health(GetSystemHealthRequest::default())
        .await?;
    let pushed = reports.report_metrics(report_request()).await?.into_inner();
    println!(
        "verified {addr}: Check status {status}, GetSystemHealth ok, ReportMetrics applied={}",
        pushed.applied
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["payloads", dir] => payloads(Path::new(dir)),
        ["seed", addr] => seed(addr).await,
        ["verify", addr] => verify(addr).await,
        _ => Err("usage: bench_client payloads DIR | seed ADDR | verify ADDR".into()),
    }
}
