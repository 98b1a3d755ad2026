//! `healthscore push`: snapshots from JSON to ReportMetrics, for scripts and apps that cannot
//! link gRPC.

use std::{
    io::Read,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use serde::Deserialize;

use crate::{
    core::subsystem::for_each_subsystem,
    faces::grpc::convert,
    proto::v1::{self, health_reports_client::HealthReportsClient},
};

use super::connect::{parse_duration, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON file of snapshots, or - for stdin. Keys are the proto's JSON names:
    /// {"datasources": [{"name": "mainDB", "active": 31, "max": 32}], "webServers": [...]}.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Who is reporting (e.g. the pod name).
    #[arg(long, value_name = "NAME")]
    source: String,
    /// How long the values stay fresh (e.g. 30s); the server's default when left out.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// Optional increasing number; an older or repeated one is not applied.
    #[arg(long)]
    sequence: Option<u64>,
    /// When this incarnation of the source started, in seconds since the Unix epoch; a later
    /// one is a restart (its sequence and counters start afresh). Default: now, when
    /// --sequence is given, so that a script counting from 1 again is not locked out.
    #[arg(long, value_name = "UNIX_SECONDS")]
    started_at: Option<u64>,
    #[command(flatten)]
    target: Target,
}

macro_rules! snapshot_file {
    ($($snapshot:ident [$($list:ident $fields:tt)?];)+) => {
        /// The snapshot lists of a ReportMetricsRequest, as JSON.
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "camelCase", default, deny_unknown_fields)]
        pub struct Snapshots {
            $($($list: Vec<v1::$snapshot>,)?)+
        }

        impl Snapshots {
            /// `request` with these lists.
            pub fn into_request(self, request: v1::ReportMetricsRequest) -> v1::ReportMetricsRequest {
                v1::ReportMetricsRequest {
                    $($($list: self.$list,)?)+
                    ..request
                }
            }
        }
    };
}
for_each_subsystem!(snapshot_file: snapshot pushed);

/// Reads a snapshot file's text: the snapshot lists of a request, with the proto's JSON names.
pub fn snapshots(text: &str) -> serde_json::Result<Snapshots> {
    serde_json::from_str(text)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (origin, text) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        ("stdin".to_owned(), text)
    } else {
        let origin = args.file.display().to_string();
        let text =
            std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {origin}"))?;
        (origin, text)
    };
    let snapshots =
        snapshots(&text).with_context(|| format!("{origin} is not a valid snapshot file"))?;
    let started_at = match (args.started_at, args.sequence) {
        (Some(secs), _) => Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        (None, Some(_)) => Some(SystemTime::now()),
        (None, None) => None,
    };
    let request = snapshots.into_request(v1::ReportMetricsRequest {
        source: args.source.clone(),
        sequence: args.sequence.unwrap_or(0),
        ttl: args.ttl.map(|ttl| prost_types::Duration {
            seconds: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(ttl.subsec_nanos()).unwrap_or(0),
        }),
        started_at: started_at.map(prost_types::Timestamp::from),
        ..v1::ReportMetricsRequest::default()
    });
    let runtime = super::client_runtime()?;
    let response = runtime.block_on(async {
        let mut client = HealthReportsClient::new(args.target.connect().await?);
        client
            .report_metrics(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| anyhow::anyhow!("{} ({:?})", status.message(), status.code()))
    })?;
    let status = convert::status(response.system_status, "system_status")
        .map_or("unknown", crate::core::scoring::Status::as_str);
    if response.applied {
        println!(
            "applied {} entities from {}: system {status}, revision {}",
            response.entity_count, args.source, response.revision
        );
    } else {
        println!(
            "not applied: sequence {} is not newer than the last one from {} (system {status}, revision {})",
            args.sequence.unwrap_or(0),
            args.source,
            response.revision
        );
    }
    Ok(ExitCode::SUCCESS)
}
