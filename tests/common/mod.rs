//! Starts a real healthscore server on 127.0.0.1:0 and connects real tonic clients to it.
#![allow(dead_code)] // each test binary uses a different part of this helper

use std::{net::SocketAddr, time::Duration};

use healthscore::{
    app,
    config::Config,
    proto::v1::{
        health_reports_client::HealthReportsClient, DatasourceSnapshot, ReportMetricsRequest,
    },
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

pub struct TestServer {
    pub addr: SocketAddr,
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        let mut config = Config::default();
        config.host.enabled = false;
        config.server.shutdown_grace_secs = 0;
        Self::start_with(config).await
    }

    pub async fn start_with(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.await;
            };
            if let Err(error) = app::run(listener, &config, stopped).await {
                panic!("test server failed: {error}");
            }
        });
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("valid URI")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect to the test server");
        Self {
            addr,
            channel,
            shutdown: Some(shutdown),
        }
    }

    pub fn reports(&self) -> HealthReportsClient<Channel> {
        HealthReportsClient::new(self.channel.clone())
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn pool(name: &str, active: u32, max: u32) -> DatasourceSnapshot {
    DatasourceSnapshot {
        name: name.into(),
        started: None,
        active,
        idle: max - active,
        max,
        threads_awaiting: 0,
    }
}

pub fn push_pools(source: &str, pools: Vec<DatasourceSnapshot>) -> ReportMetricsRequest {
    ReportMetricsRequest {
        source: source.into(),
        datasources: pools,
        ..ReportMetricsRequest::default()
    }
}

/// Waits for the next stream message, failing the test after `secs` seconds.
pub async fn next<T>(stream: &mut tonic::Streaming<T>, secs: u64) -> T {
    tokio::time::timeout(Duration::from_secs(secs), stream.message())
        .await
        .expect("a stream message in time")
        .expect("the stream is healthy")
        .expect("the stream is still open")
}
