//! `healthscore get`: one report, as a table for people or the seeds' JSON for scripts.

use std::{fmt::Write as _, process::ExitCode, sync::Arc};

use anyhow::Context;

use crate::{
    core::{
        published::View,
        scoring::{CodeForm, HealthReport, Issue, Subsystem, SystemHealthReport},
        subsystem::for_each_subsystem,
    },
    proto::v1::{self, health_reports_client::HealthReportsClient},
};

use super::{connect::Target, style::Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    Info,
    Warning,
    Critical,
}

impl Level {
    pub fn wire(level: Option<Level>) -> i32 {
        let severity = match level {
            None => v1::Severity::Unspecified,
            Some(Level::Info) => v1::Severity::Info,
            Some(Level::Warning) => v1::Severity::Warning,
            Some(Level::Critical) => v1::Severity::Critical,
        };
        severity.into()
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A subsystem key (datasources, webServer, host, ...; a wrong one lists them all); the
    /// system report when left out.
    #[arg(value_parser = |s: &str| s.parse::<Subsystem>())]
    subsystem: Option<Subsystem>,
    #[command(flatten)]
    target: Target,
    /// table for people, json (the reference's shape) for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
    /// Leave out issues below this severity (the score still counts them).
    #[arg(long, value_enum, value_name = "LEVEL")]
    min_severity: Option<Level>,
    /// Most entities listed per report [default: the server's, 100].
    #[arg(long, value_name = "N")]
    max_entities: Option<u32>,
    /// Most issues listed per report [default: the server's, 100].
    #[arg(long, value_name = "N")]
    max_issues: Option<u32>,
}

/// The largest answer this CLI reads: a reader that asks for long lists gets them.
pub const MAX_ANSWER_BYTES: usize = 256 << 20;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = super::client_runtime()?;
    let text = runtime.block_on(fetch(&args))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn fetch(args: &Args) -> anyhow::Result<String> {
    let mut client = HealthReportsClient::new(args.target.connect().await?)
        .max_decoding_message_size(MAX_ANSWER_BYTES);
    let options = Some(v1::ReportOptions {
        min_severity: Level::wire(args.min_severity),
        omit_entities: args.output == Output::Table && args.subsystem.is_none(),
        max_entities: args.max_entities.unwrap_or(0),
        max_issues: args.max_issues.unwrap_or(0),
    });
    let style = Style::detect();
    Ok(
        match (
            read(&mut client, args.subsystem, options).await?,
            args.output,
        ) {
            (Read::System(report, _), Output::Json) => {
                json(&crate::core::json::system(&report, View::everything()))?
            }
            (Read::System(report, revision), Output::Table) => {
                system_table(&report, revision, style)
            }
            (Read::Subsystem(report, _), Output::Json) => {
                json(&crate::core::json::report(&report, View::everything()))?
            }
            (Read::Subsystem(report, revision), Output::Table) => {
                subsystem_table(&report, revision, style)
            }
        },
    )
}

/// A report read back into the core's types, with its revision.
pub enum Read {
    System(SystemHealthReport, u64),
    Subsystem(HealthReport, u64),
}

/// Reads the report of `subsystem` (the system's when `None`) as `options` ask.
pub async fn read(
    client: &mut HealthReportsClient<super::connect::Connection>,
    subsystem: Option<Subsystem>,
    options: Option<v1::ReportOptions>,
) -> anyhow::Result<Read> {
    let unreadable = "the server sent a report this CLI cannot read";
    match subsystem {
        None => {
            let wire = client
                .get_system_health(v1::GetSystemHealthRequest { options })
                .await
                .context("GetSystemHealth failed")?
                .into_inner()
                .report()
                .context("the server sent no report")?;
            let revision = wire.revision;
            let report = SystemHealthReport::try_from(wire).context(unreadable)?;
            Ok(Read::System(report, revision))
        }
        Some(subsystem) => {
            let wire = subsystem_report(client, subsystem, options).await?;
            let revision = wire.revision;
            let report = HealthReport::try_from(wire).context(unreadable)?;
            Ok(Read::Subsystem(report, revision))
        }
    }
}

async fn subsystem_report(
    client: &mut HealthReportsClient<super::connect::Connection>,
    subsystem: Subsystem,
    options: Option<v1::ReportOptions>,
) -> anyhow::Result<v1::HealthReport> {
    macro_rules! call {
        ($($variant:ident [$method:ident $request:ident $response:ident];)+) => {
            match subsystem {
                $(Subsystem::$variant => client
                    .$method(v1::$request { options })
                    .await
                    .map(|r| r.into_inner().report),)+
            }
        };
    }
    let report = for_each_subsystem!(call: variant report);
    report
        .with_context(|| format!("reading the {subsystem} report failed"))?
        .context("the server sent no report")
}

fn json(value: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value).context("cannot render JSON")?;
    text.push('\n');
    Ok(text)
}

fn issues_table<'a>(
    out: &mut String,
    issues: impl Iterator<Item = &'a Issue>,
    omitted: u32,
    form: CodeForm,
    style: Style,
) {
    let mut issues = issues.peekable();
    if issues.peek().is_none() && omitted == 0 {
        let _ = writeln!(out, "\nNo issues.");
        return;
    }
    let _ = writeln!(out, "\nISSUES (worst first)");
    for issue in issues {
        let code = issue.code_in(form);
        let severity = style.severity(issue.severity);
        // Pad the plain word so colour codes do not break the alignment.
        let pad = " ".repeat(8usize.saturating_sub(issue.severity.as_str().len()));
        let _ = writeln!(
            out,
            "{severity}{pad}  {code}  {} {}",
            issue.entity,
            style.dim(&format!("({})", issue.source))
        );
        let _ = writeln!(out, "          {}", issue.message);
        let _ = writeln!(out, "          -> {}", issue.suggested_action);
    }
    if omitted > 0 {
        let _ = writeln!(out, "... and {omitted} more (--max-issues N lists more)");
    }
}

fn system_table(report: &SystemHealthReport, revision: u64, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SYSTEM  {}  score {}  {}",
        style.status(report.status),
        report.score,
        style.dim(&format!("revision {revision}"))
    );
    let _ = writeln!(
        out,
        "\n{:<13} {:<9} {:>5}  ISSUES",
        "SUBSYSTEM", "STATUS", "SCORE"
    );
    for report in report.subsystems.values().map(Arc::as_ref) {
        let status = if report.available {
            style.status(report.status)
        } else {
            style.dim("n/a")
        };
        let pad = " ".repeat(9usize.saturating_sub(if report.available {
            report.status.as_str().len()
        } else {
            3
        }));
        let _ = writeln!(
            out,
            "{:<13} {status}{pad} {:>5}  {}",
            report.subsystem.key(),
            report.score,
            report.issues.len() + report.omitted.issues as usize
        );
    }
    issues_table(
        &mut out,
        report.issues(),
        report.issues_omitted,
        CodeForm::Qualified,
        style,
    );
    out
}

fn subsystem_table(report: &HealthReport, revision: u64, style: Style) -> String {
    let mut out = String::new();
    let availability = if report.available {
        ""
    } else {
        "  (nothing reports into it)"
    };
    let _ = writeln!(
        out,
        "{}  {}  score {}  {}{availability}",
        report.subsystem.key().to_ascii_uppercase(),
        style.status(report.status),
        report.score,
        style.dim(&format!("revision {revision}"))
    );
    issues_table(
        &mut out,
        report.issues.iter(),
        report.omitted.issues,
        CodeForm::Bare,
        style,
    );
    if !report.entities.is_empty() {
        let _ = writeln!(out, "\nENTITIES");
        for entity in &report.entities {
            let metrics: Vec<String> = entity
                .metrics
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let stale = if entity.stale { " STALE" } else { "" };
            let _ = writeln!(
                out,
                "{:<24} {:<9}{stale} {}  {}",
                entity.name.to_string(),
                entity.status.as_str(),
                style.dim(&format!("({})", entity.source)),
                metrics.join(" ")
            );
        }
    }
    if report.omitted.entities > 0 {
        let _ = writeln!(
            out,
            "... and {} more entities (--max-entities N lists more)",
            report.omitted.entities
        );
    }
    out
}
