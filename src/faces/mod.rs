//! Outputs: each turns the engine's published state into a protocol and maps the core's errors
//! to that protocol's. Faces read the state; they never write it (inputs go through sources).

pub mod admission;
pub mod arguments;
pub mod auth;
pub mod budget;
pub mod gate;
pub mod grpc;
pub mod http;
pub mod listener;
pub mod mcp;
pub mod probe_port;
pub mod reload;
pub mod tls;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::{OpenStream, Telemetry};

/// Watch streams that may be open at once (one set for WatchHealth and `/v1/watch`, another for
/// grpc.health.v1 Watch), each counted in telemetry while open.
#[derive(Clone, Debug)]
pub struct WatchSlots {
    slots: Arc<Semaphore>,
    /// The config key of the cap, for the refusal's message.
    key: &'static str,
    telemetry: Arc<Telemetry>,
}

/// One open watch stream's slot, held as long as the stream.
#[derive(Debug)]
pub struct WatchSlot {
    _permit: OwnedSemaphorePermit,
    _open: OpenStream,
}

/// Every watch slot is taken; the config key of the cap.
#[derive(Debug, thiserror::Error)]
#[error("too many watch streams are open ({0}); retry later")]
pub struct NoWatchSlot(&'static str);

impl WatchSlots {
    /// `max` slots, set by the config key `key`.
    pub fn new(max: usize, key: &'static str, telemetry: Arc<Telemetry>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            key,
            telemetry,
        }
    }

    pub fn open(&self) -> Result<WatchSlot, NoWatchSlot> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| NoWatchSlot(self.key))?;
        Ok(WatchSlot {
            _permit: permit,
            _open: self.telemetry.stream_opened(),
        })
    }
}
