//! The bound on gRPC calls that wait on the engine.

use std::{future::Future, time::Duration};

/// The longest a call may wait on a saturated engine before it fails with DEADLINE_EXCEEDED.
const ENGINE_WAIT: Duration = Duration::from_secs(10);

/// `call`, failed with DEADLINE_EXCEEDED unless it ends within [`ENGINE_WAIT`]. Only the calls
/// that wait on the engine (pushes, forgets, OTLP exports) carry this timer: a server-wide
/// `timeout` armed and cancelled one for every probe and read too, which never wait. Clients'
/// own `grpc-timeout` still bounds every call: tonic applies it.
pub async fn waiting_on_engine<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(ENGINE_WAIT, call)
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(format!(
                "the engine did not answer within {} s (it is saturated); retry later",
                ENGINE_WAIT.as_secs()
            )))
        })
}
