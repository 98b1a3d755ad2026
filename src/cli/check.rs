//! `healthscore check`: a Nagios, Icinga and Sensu plugin. One status line with performance
//! data in the plugin guidelines' format, the issues one per line below it, and the plugin exit
//! codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the server cannot be reached or answers an
//! error; the arguments are wrong).

use std::{fmt::Write as _, process::ExitCode};

use crate::{
    core::scoring::{HealthReport, Issue, Status, Subsystem},
    proto::v1::{self, health_reports_client::HealthReportsClient},
};

use super::{
    connect::Target,
    get::{read, Read, MAX_ANSWER_BYTES},
};

/// The plugin guidelines' UNKNOWN, also for arguments that cannot be used.
pub const UNKNOWN: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A subsystem key (datasources, webServer, host, ...); the whole system when left out.
    #[arg(value_parser = |s: &str| s.parse::<Subsystem>())]
    subsystem: Option<Subsystem>,
    #[command(flatten)]
    target: Target,
}

pub fn run(args: Args) -> ExitCode {
    let (code, text) = match super::client_runtime() {
        Ok(runtime) => runtime.block_on(check(&args)),
        Err(error) => unknown(&error),
    };
    print!("{text}");
    ExitCode::from(code)
}

fn unknown(error: &anyhow::Error) -> (u8, String) {
    // One line: the plugin's first line is all most monitoring shows.
    let message = format!("{error:#}").replace('\n', " ");
    (UNKNOWN, format!("HEALTHSCORE UNKNOWN - {message}\n"))
}

async fn check(args: &Args) -> (u8, String) {
    let report = async {
        let mut client = HealthReportsClient::new(args.target.connect().await?)
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        let options = Some(v1::ReportOptions {
            omit_entities: true,
            ..v1::ReportOptions::default()
        });
        read(&mut client, args.subsystem, options).await
    };
    match report.await {
        Ok(read) => plugin_output(&read),
        Err(error) => unknown(&error),
    }
}

/// The exit code and the text of `read`.
fn plugin_output(read: &Read) -> (u8, String) {
    let (status, name, score, scores, issues): (
        Status,
        &str,
        u32,
        Vec<&HealthReport>,
        Vec<&Issue>,
    ) = match read {
        Read::System(report, _) => (
            report.status,
            "system",
            report.score,
            report.subsystems.values().map(AsRef::as_ref).collect(),
            report.issues().collect(),
        ),
        Read::Subsystem(report, _) => (
            report.status,
            report.subsystem.key(),
            report.score,
            vec![report],
            report.issues.iter().collect(),
        ),
    };
    let (code, word) = match status {
        Status::Healthy => (0, "OK"),
        Status::Warning => (1, "WARNING"),
        Status::Critical => (2, "CRITICAL"),
    };
    let count = match issues.len() {
        0 => "no issues".to_owned(),
        1 => "1 issue".to_owned(),
        n => format!("{n} issues"),
    };
    let mut out = format!(
        "HEALTHSCORE {word} - {name} {} score {score}, {count} | score={score};;;0;100",
        status.as_str()
    );
    for report in scores.iter().filter(|r| r.available) {
        let _ = write!(out, " {}={};;;0;100", report.subsystem.key(), report.score);
    }
    out.push('\n');
    for issue in issues {
        let _ = writeln!(
            out,
            "{} {}:{} {} ({}): {}",
            issue.severity.as_str().to_ascii_uppercase(),
            issue.subsystem,
            issue.code,
            issue.entity,
            issue.source,
            issue.message
        );
    }
    (code, out)
}
