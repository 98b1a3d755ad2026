//! `healthscore watch`: follows WatchHealth, one line per change.

use std::{collections::BTreeSet, process::ExitCode};

use anyhow::Context;

use crate::{
    faces::grpc::convert,
    proto::v1::{self, health_reports_client::HealthReportsClient},
};

use super::{connect::Target, get::Level, style::Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Subsystem keys to follow; the whole system when none are given.
    subsystems: Vec<String>,
    #[command(flatten)]
    target: Target,
    /// Ignore issues below this severity.
    #[arg(long, value_enum, value_name = "LEVEL")]
    min_severity: Option<Level>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = super::client_runtime()?;
    runtime.block_on(async {
        tokio::select! {
            result = follow(&args) => result,
            _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
        }
    })
}

async fn follow(args: &Args) -> anyhow::Result<ExitCode> {
    let mut client = HealthReportsClient::new(args.target.connect().await?)
        .max_decoding_message_size(super::get::MAX_ANSWER_BYTES);
    let mut stream = client
        .watch_health(v1::WatchHealthRequest {
            subsystems: args.subsystems.clone(),
            options: Some(v1::ReportOptions {
                min_severity: Level::wire(args.min_severity),
                omit_entities: true,
                // Issues are what this command compares between messages: list them all.
                max_issues: u32::MAX,
                max_entities: 0,
            }),
        })
        .await
        .context("WatchHealth failed")?
        .into_inner();
    let style = Style::detect();
    let mut previous: Option<BTreeSet<String>> = None;
    while let Some(message) = stream.message().await.context("the watch stream failed")? {
        let Some(report) = message.report() else {
            continue;
        };
        let issues: BTreeSet<String> = report
            .issues
            .iter()
            .map(|i| format!("{}({})", i.code, i.entity))
            .collect();
        let changes = match &previous {
            None => format!("{} issues", issues.len()),
            Some(before) => {
                let added = issues.difference(before).map(|i| format!("+{i}"));
                let resolved = before.difference(&issues).map(|i| format!("-{i}"));
                let all: Vec<String> = added.chain(resolved).collect();
                if all.is_empty() {
                    "score or status only".into()
                } else {
                    all.join(" ")
                }
            }
        };
        let status = convert::status(report.status, "status")
            .map_or_else(|_| "unknown".into(), |s| style.status(s));
        let at = report
            .generated_at
            .map(|t| t.to_string())
            .unwrap_or_default();
        println!(
            "{at}  rev {}  {status}  score {}  {changes}",
            report.revision, report.score
        );
        previous = Some(issues);
    }
    eprintln!("the server ended the stream (it is shutting down)");
    Ok(ExitCode::from(1))
}
