//! The benchmarks' peer: a bare tonic-health server with "" SERVING, nothing else. Built with
//! the same release profile as healthscore so a ratio between the two measures healthscore's
//! own cost.
//!
//!     cargo run --release --example bare_health -- 127.0.0.1:50052

use std::net::SocketAddr;

use tonic::transport::Server;
use tonic_health::ServingStatus;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50052".into())
        .parse()?;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    eprintln!("bare tonic-health listening on {addr}");
    Server::builder().add_service(service).serve(addr).await?;
    Ok(())
}
