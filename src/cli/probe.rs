//! `healthscore probe`: grpc-health-probe's behaviour, exit codes and messages.

use std::{process::ExitCode, time::Duration};

use tonic::Code;

use crate::proto::health::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use super::connect::{error_chain, parse_duration, Target};

const BAD_ARGUMENTS: u8 = 1;
const CONNECTION_FAILURE: u8 = 2;
const RPC_FAILURE: u8 = 3;
const UNHEALTHY: u8 = 4;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// grpc.health.v1 service name: "" (the default) is the whole system, a subsystem key
    /// (e.g. datasources) one report, a [health.groups] name a group, and
    /// healthscore.v1.HealthReports the process itself. Repeat it to require every name.
    #[arg(long, value_name = "NAME", default_value = "")]
    service: Vec<String>,
    /// How long to wait for the connection (e.g. 500ms, 1s).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// How long to wait for the Check call.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    rpc_timeout: Duration,
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match super::client_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(RPC_FAILURE);
        }
    };
    let (code, message) = runtime.block_on(probe(&args));
    if code == 0 {
        println!("{message}");
    } else {
        eprintln!("{message}");
    }
    ExitCode::from(code)
}

async fn probe(args: &Args) -> (u8, String) {
    let addr = &args.target.addr;
    let endpoint = match args.target.endpoint() {
        Ok(endpoint) => endpoint.connect_timeout(args.connect_timeout),
        Err(error) => return (BAD_ARGUMENTS, format!("error: {error}")),
    };
    let channel = match tokio::time::timeout(args.connect_timeout, endpoint.connect()).await {
        Err(_) => {
            return (
                CONNECTION_FAILURE,
                format!(
                    "timeout: failed to connect service {addr:?} within {:?}",
                    args.connect_timeout
                ),
            )
        }
        Ok(Err(error)) => {
            return (
                CONNECTION_FAILURE,
                format!(
                    "error: failed to connect service at {addr:?}: {}",
                    error_chain(&error)
                ),
            )
        }
        Ok(Ok(channel)) => channel,
    };
    let mut client = HealthClient::new(channel);
    let mut unhealthy = Vec::new();
    for service in &args.service {
        match check(&mut client, service, args.rpc_timeout).await {
            Ok(ServingStatus::Serving) => {}
            Ok(status) => unhealthy.push((service, status)),
            Err(failure) => return failure,
        }
    }
    match (unhealthy.as_slice(), args.service.len()) {
        ([], 1) => (0, "status: SERVING".into()),
        ([], _) => (0, format!("status: SERVING ({:?})", args.service)),
        // grpc-health-probe's words for its one name.
        ([(_, status)], 1) => (
            UNHEALTHY,
            format!(
                "service unhealthy (responded with {:?})",
                status.as_str_name()
            ),
        ),
        (names, _) => {
            let names: Vec<String> = names
                .iter()
                .map(|(service, status)| {
                    format!("{service:?} responded with {:?}", status.as_str_name())
                })
                .collect();
            (
                UNHEALTHY,
                format!("service unhealthy: {}", names.join("; ")),
            )
        }
    }
}

/// One Check of `service`, or the exit code and message of its failure.
async fn check(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, (u8, String)> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(timeout);
    let timed_out = || {
        (
            RPC_FAILURE,
            format!("timeout: health rpc did not complete within {timeout:?}"),
        )
    };
    let response = match tokio::time::timeout(timeout, client.check(request)).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(status)) if status.code() == Code::Unimplemented => {
            return Err((
                RPC_FAILURE,
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health)".into(),
            ))
        }
        Ok(Err(status)) if status.code() == Code::DeadlineExceeded => return Err(timed_out()),
        Ok(Err(status)) => {
            return Err((
                RPC_FAILURE,
                format!(
                    "error: health rpc failed: rpc error: code = {:?} desc = {}",
                    status.code(),
                    status.message()
                ),
            ))
        }
        Ok(Ok(response)) => response.into_inner(),
    };
    Ok(ServingStatus::try_from(response.status).unwrap_or(ServingStatus::Unknown))
}
