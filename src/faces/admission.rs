//! What the faces let in before any work is done for it: requests at once (one budget over
//! every face, refused rather than queued when spent), and pushes, by the token's source grant
//! and by each source's rate.

use std::{num::NonZeroU32, sync::Arc};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::auth::Grant;
use crate::core::ingest::{FieldError, Limits};

/// The requests and pushes the faces admit. Shared by every face.
pub struct Admission {
    /// Requests being handled at once, over every face; a streaming call counts until its
    /// stream starts.
    pub requests: Arc<Semaphore>,
    pushes: DefaultKeyedRateLimiter<String>,
    per_second: u32,
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
        let per_second =
            NonZeroU32::new(limits.max_pushes_per_source_per_sec).unwrap_or(NonZeroU32::MIN);
        Self {
            requests: Arc::new(Semaphore::new(max_concurrent_requests)),
            pushes: RateLimiter::keyed(Quota::per_second(per_second)),
            per_second: per_second.get(),
            remembered: limits.max_sources.saturating_mul(2),
        }
    }

    /// Whether a push from `source` may go on: the caller's `grant` (when tokens are on)
    /// must cover it, and the source must be within its rate.
    pub fn admit_push(&self, grant: Option<&Grant>, source: &str) -> Result<(), FieldError> {
        Self::admit_write(grant, source)?;
        if self.pushes.len() > self.remembered {
            self.pushes.retain_recent();
        }
        self.pushes.check_key(&source.to_owned()).map_err(|_| {
            FieldError::exhausted(
                "source",
                format!(
                    "{source:?} pushes more than {} times a second (limits.max_pushes_per_source_per_sec); retry later",
                    self.per_second
                ),
            )
        })
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
