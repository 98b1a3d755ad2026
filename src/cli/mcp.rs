//! `healthscore mcp`: the MCP face on stdin/stdout, so that a desktop agent can launch it,
//! bridged to a running server over gRPC (its reports, and WatchHealth for resource updates).

use std::process::ExitCode;

use anyhow::Context;
use rmcp::ServiceExt;
use serde_json::Value;
use tokio_stream::StreamExt;

use crate::{
    core::{json, published::View, scoring::Subsystem},
    faces::mcp::{Changes, HealthTools, Reports},
    history,
    proto::v1::{self, health_reports_client::HealthReportsClient},
};

use super::{
    connect::{Connection, Target},
    get::{self, Read},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = super::client_runtime()?;
    runtime.block_on(async {
        let client = HealthReportsClient::new(args.target.connect().await?)
            .max_decoding_message_size(get::MAX_ANSWER_BYTES);
        let session = HealthTools::new(Remote(client))
            .serve(rmcp::transport::stdio())
            .await
            .context("the MCP session did not start on stdin/stdout")?;
        session.waiting().await.context("the MCP session failed")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// [`Reports`] read from a server over gRPC.
#[derive(Clone)]
struct Remote(HealthReportsClient<Connection>);

impl Reports for Remote {
    async fn read(&self, subsystem: Option<Subsystem>, view: View) -> Result<Value, String> {
        let options = Some(v1::ReportOptions {
            min_severity: view
                .min_severity
                .map_or(0, |s| v1::Severity::from(s).into()),
            omit_entities: view.max_entities == 0,
            ..v1::ReportOptions::default()
        });
        let read = get::read(&mut self.0.clone(), subsystem, options)
            .await
            .map_err(|error| format!("{error:#}"))?;
        // The server cut the report to the view already.
        let value = match read {
            Read::System(report, _) => {
                serde_json::to_value(json::system(&report, View::everything()))
            }
            Read::Subsystem(report, _) => {
                serde_json::to_value(json::report(&report, View::everything()))
            }
        };
        value.map_err(|error| error.to_string())
    }

    async fn history(&self, query: history::Query) -> Result<Value, String> {
        let answer = self
            .0
            .clone()
            .get_history(history_request(&query))
            .await
            .map_err(|status| format!("GetHistory failed: {}", status.message()))?
            .into_inner();
        let answer = history::Answer::try_from(answer).map_err(|error| error.to_string())?;
        Ok(answer.json())
    }

    async fn changes(&self, subsystem: Option<Subsystem>) -> Changes {
        let request = v1::WatchHealthRequest {
            subsystems: subsystem.map(|s| s.key().to_owned()).into_iter().collect(),
            options: None,
        };
        match self.0.clone().watch_health(request).await {
            // The first message is the state as it is.
            Ok(stream) => Box::pin(stream.into_inner().map_while(|m| m.ok().map(drop)).skip(1)),
            Err(status) => {
                tracing::warn!(%status, "WatchHealth failed: no resource updates");
                Box::pin(tokio_stream::empty())
            }
        }
    }
}

/// The GetHistoryRequest for `query`.
pub fn history_request(query: &history::Query) -> v1::GetHistoryRequest {
    v1::GetHistoryRequest {
        subsystem: match query.name {
            None => String::new(),
            Some(name) => name.map_or("system", Subsystem::key).to_owned(),
        },
        since: query.since.map(prost_types::Timestamp::from),
        limit: u32::try_from(query.limit).unwrap_or(u32::MAX),
    }
}
