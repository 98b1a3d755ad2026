//! What the faces let in before any work is done for it: requests at once (one budget over
//! every face, refused rather than queued when spent), and pushes, by the token's source grant
//! and by each source's rate.
//!
//! A push over its source's rate is answered RESOURCE_EXHAUSTED when the source's next slot
//! opens (at most a second later, and for at most `PACED` refusals at once; the rest at once):
//! a client that retries at once is paced to the rate instead of spinning, so a flooding
//! source costs the server little more than its allowed pushes.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::auth::Grant;
use crate::{
    core::ingest::{FieldError, Limits},
    sources::Admit,
};

/// Refusals held at once, over every source.
const PACED: usize = 64;
/// The longest a refusal is held.
const MAX_PACE: Duration = Duration::from_secs(1);

/// The requests and pushes the faces admit. Shared by every face.
pub struct Admission {
    /// Requests being handled at once, over every face; a streaming call counts until its
    /// stream starts.
    pub requests: Arc<Semaphore>,
    pushes: DefaultKeyedRateLimiter<String>,
    per_second: u32,
    /// Refusals being held until their source's next slot.
    paced: Semaphore,
    /// Sources whose rate is remembered before the idle ones are dropped.
    remembered: usize,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

impl Admission {
    pub fn new(max_concurrent_requests: usize, limits: &Limits) -> Self {
        let per_second = limits.max_pushes_per_source_per_sec;
        Self {
            requests: Arc::new(Semaphore::new(max_concurrent_requests)),
            pushes: RateLimiter::keyed(Quota::per_second(per_second)),
            per_second: per_second.get(),
            paced: Semaphore::new(PACED),
            remembered: limits.max_sources.saturating_mul(2),
        }
    }

    /// Whether a push from `source` may go on: the caller's `grant` (when tokens are on)
    /// must cover it, and the source must be within its rate (a refusal is paced, see above).
    pub async fn admit_push(&self, grant: Option<&Grant>, source: &str) -> Result<(), FieldError> {
        Self::admit_write(grant, source)?;
        if self.pushes.len() > self.remembered {
            self.pushes.retain_recent();
        }
        let Err(not_until) = self.pushes.check_key(&source.to_owned()) else {
            return Ok(());
        };
        if let Ok(_held) = self.paced.try_acquire() {
            let wait = not_until.wait_time_from(self.pushes.clock().now());
            tokio::time::sleep(wait.min(MAX_PACE)).await;
        }
        Err(FieldError::exhausted(
            "source",
            format!(
                "{source:?} pushes more than {} times a second (limits.max_pushes_per_source_per_sec); retry later",
                self.per_second
            ),
        ))
    }

    /// Whether the caller's `grant` lets it write or forget `source`.
    pub fn admit_write(grant: Option<&Grant>, source: &str) -> Result<(), FieldError> {
        match grant {
            Some(grant) if !grant.allows(source) => Err(FieldError::denied(
                "source",
                format!("this token may not write source {source:?} (see its auth.tokens sources)"),
            )),
            _ => Ok(()),
        }
    }
}

/// The pushes of one request: its caller's grant, against the shared admission.
pub struct PushesOf<'a> {
    pub admission: &'a Admission,
    pub grant: Option<&'a Grant>,
}

impl Admit for PushesOf<'_> {
    fn admit<'a>(
        &'a self,
        source: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), FieldError>> + Send + 'a>> {
        Box::pin(self.admission.admit_push(self.grant, source))
    }
}
