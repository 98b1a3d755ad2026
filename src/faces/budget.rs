//! A budget of answer bytes in flight, shared by every reader of a face. An answer takes its
//! size from the budget when it is built and gives it back when its body has been sent or
//! dropped, so a burst of readers (or readers that stopped reading) hold at most the budget in
//! send buffers, whatever they ask for.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in KiB, so that one answer's share always fits a permit count.
const UNIT: usize = 1024;

/// Bytes that answers in flight may hold, and how long an answer waits for its share.
#[derive(Clone, Debug)]
pub struct Budget {
    units: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// An answer's share of the budget. Put in the response's extensions by the handler;
/// [`super::listener::hold_until_sent`] keeps it with the body until the body is gone.
#[derive(Clone, Debug)]
pub struct Share {
    _units: Arc<OwnedSemaphorePermit>,
}

impl Budget {
    pub fn new(bytes: usize, wait: Duration) -> Self {
        let total_units = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    /// A share for an answer of `bytes`, waiting for other answers to drain; `None` when none
    /// came in time. An answer larger than the whole budget takes all of it.
    pub async fn take(&self, bytes: usize) -> Option<Share> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_units);
        let permit = self.units.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, permit).await {
            Ok(Ok(permit)) => Some(Share {
                _units: Arc::new(permit),
            }),
            // The semaphore is never closed; a timeout means the budget stayed spent.
            _ => None,
        }
    }
}
