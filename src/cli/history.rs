//! `healthscore history`: the status transitions, newest first, and the uptime shares.

use std::{fmt::Write as _, process::ExitCode};

use anyhow::Context;

use crate::{
    core::scoring::{Status, Subsystem},
    history::{self, rfc3339, Answer, Query},
    proto::v1::health_reports_client::HealthReportsClient,
};

use super::{connect::Target, get::Output, style::Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A subsystem key, or `system`; every name when left out.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    name: Option<Name>,
    #[command(flatten)]
    target: Target,
    /// Only transitions since this RFC 3339 time, or this long ago (30m, 90s).
    #[arg(long, value_name = "WHEN", value_parser = |s: &str| history::parse_since(s)
        .ok_or_else(|| format!("{s:?} is neither an RFC 3339 time nor a duration like 30m")))]
    since: Option<std::time::SystemTime>,
    /// Most transitions listed (the newest).
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: u32,
    /// table for people, json (as GET /v1/history) for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// The system (`None`) or a subsystem.
#[derive(Clone, Copy, Debug)]
struct Name(Option<Subsystem>);

fn parse_name(text: &str) -> Result<Name, String> {
    match text {
        "system" => Ok(Name(None)),
        key => key.parse::<Subsystem>().map(|s| Name(Some(s))),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = super::client_runtime()?;
    let answer = runtime.block_on(async {
        let mut client = HealthReportsClient::new(args.target.connect().await?);
        let query = Query {
            name: args.name.map(|Name(name)| name),
            since: args.since,
            limit: usize::try_from(args.limit).unwrap_or(usize::MAX),
        };
        let wire = client
            .get_history(super::mcp::history_request(&query))
            .await
            .context("GetHistory failed")?
            .into_inner();
        Answer::try_from(wire).context("the server sent a history this CLI cannot read")
    })?;
    match args.output {
        Output::Json => println!("{:#}", answer.json()),
        Output::Table => print!("{}", table(&answer, Style::detect())),
    }
    Ok(ExitCode::SUCCESS)
}

fn table(answer: &Answer, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:>7} {:>8} {:>8} {:>9}",
        "NAME", "WINDOW", "HEALTHY", "WARNING", "CRITICAL"
    );
    for (name, uptime) in &answer.uptime {
        let percent = |status| format!("{:.1}%", 100.0 * uptime.share(status));
        let window = if uptime.window.as_secs() >= 86_400 {
            "24h"
        } else {
            "1h"
        };
        let _ = writeln!(
            out,
            "{:<13} {:>7} {:>8} {:>8} {:>9}",
            name.map_or("system", Subsystem::key),
            window,
            percent(Status::Healthy),
            percent(Status::Warning),
            percent(Status::Critical),
        );
    }
    if answer.transitions.is_empty() {
        let _ = writeln!(out, "\nNo transitions.");
        return out;
    }
    let _ = writeln!(out, "\nTRANSITIONS (newest first)");
    for t in &answer.transitions {
        let codes: Vec<String> = t
            .added()
            .iter()
            .map(|c| format!("+{}", c.as_str()))
            .chain(t.removed().iter().map(|c| format!("-{}", c.as_str())))
            .collect();
        let _ = writeln!(
            out,
            "{}  {:<13} {} -> {}  score {:>3}  {}",
            rfc3339(t.at),
            t.key(),
            style.status(t.from),
            style.status(t.to),
            t.score,
            codes.join(" ")
        );
    }
    if answer.omitted > 0 {
        let _ = writeln!(
            out,
            "... and {} older (--limit N lists more)",
            answer.omitted
        );
    }
    out
}
