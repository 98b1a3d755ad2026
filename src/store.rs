//! The snapshot store: every source's latest entities (and the snapshot before, for counter
//! windows), TTLs, sequences, and the host sampler's entities.
//!
//! Owned by the engine task alone; it never reads the clock (callers pass `now`).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    proto::{FieldError, Push},
    scoring::{
        score::Staleness,
        snapshot::{
            CacheSnapshot, DatasourceSnapshot, ExecutorSnapshot, HostSnapshot, PerformanceSnapshot,
            RuntimeSnapshot, SchedulerSnapshot, WatcherSnapshot, WebServerSnapshot,
        },
        subsystem_report, HealthReport, Observed, Policy, Snapshot, Subsystem,
    },
};

/// Bounds on what pushes may carry. Durations are whole seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most entities one ReportMetrics request may carry.
    pub max_entities_per_request: usize,
    /// Most sources known at once; a push from a new source beyond it is rejected.
    pub max_sources: usize,
    /// Longest source or entity name, in bytes.
    pub max_name_bytes: usize,
    /// TTL of a push that sets none.
    pub default_ttl_secs: u64,
    /// Shortest TTL a push may set.
    pub min_ttl_secs: u64,
    /// Longest TTL a push may set.
    pub max_ttl_secs: u64,
    /// How long a stale source stays visible (as SOURCE_STALE) before it is dropped.
    pub forget_after_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entities_per_request: 10_000,
            max_sources: 1_000,
            max_name_bytes: 256,
            default_ttl_secs: 30,
            min_ttl_secs: 1,
            max_ttl_secs: 3_600,
            forget_after_secs: 600,
        }
    }
}

impl Limits {
    /// Checks the limits against each other; the error names the config key.
    pub fn validate(&self) -> Result<(), FieldError> {
        let zero = |key: &str, value: u64| {
            (value == 0).then(|| FieldError::new(format!("limits.{key}"), "must be at least 1"))
        };
        for (key, value) in [
            (
                "max_entities_per_request",
                self.max_entities_per_request as u64,
            ),
            ("max_sources", self.max_sources as u64),
            ("max_name_bytes", self.max_name_bytes as u64),
            ("min_ttl_secs", self.min_ttl_secs),
        ] {
            if let Some(error) = zero(key, value) {
                return Err(error);
            }
        }
        // Deadlines are Instants plus these; a bound keeps that arithmetic from overflowing.
        for (key, value) in [
            ("max_ttl_secs", self.max_ttl_secs),
            ("forget_after_secs", self.forget_after_secs),
        ] {
            if value > MAX_DURATION_SECS {
                return Err(FieldError::new(
                    format!("limits.{key}"),
                    format!("{value} is above {MAX_DURATION_SECS} (one year)"),
                ));
            }
        }
        if self.min_ttl_secs > self.max_ttl_secs {
            return Err(FieldError::new(
                "limits.min_ttl_secs",
                format!(
                    "{} is above limits.max_ttl_secs ({})",
                    self.min_ttl_secs, self.max_ttl_secs
                ),
            ));
        }
        if !(self.min_ttl_secs..=self.max_ttl_secs).contains(&self.default_ttl_secs) {
            return Err(FieldError::new(
                "limits.default_ttl_secs",
                format!(
                    "{} is outside limits.min_ttl_secs..=limits.max_ttl_secs ({}..={})",
                    self.default_ttl_secs, self.min_ttl_secs, self.max_ttl_secs
                ),
            ));
        }
        Ok(())
    }
}

/// The longest TTL or forget delay a config may set, in seconds: one year.
pub const MAX_DURATION_SECS: u64 = 365 * 24 * 3600;

/// An entity's latest snapshot and the one before it.
#[derive(Clone, Debug)]
struct Entity<S> {
    current: S,
    previous: Option<S>,
}

/// One source's entities of one subsystem, sorted by name.
#[derive(Clone, Debug)]
struct Entities<S>(Vec<Entity<S>>);

impl<S> Default for Entities<S> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<S: Snapshot + Clone> Entities<S> {
    /// Replaces the entities, keeping each surviving entity's last snapshot as its previous.
    fn replace(&mut self, snapshots: Vec<S>) {
        let mut old: BTreeMap<Arc<str>, Entity<S>> = std::mem::take(&mut self.0)
            .into_iter()
            .map(|e| (e.current.name().clone(), e))
            .collect();
        let mut entities: Vec<Entity<S>> = snapshots
            .into_iter()
            .map(|current| Entity {
                previous: old.remove(current.name()).map(|e| e.current),
                current,
            })
            .collect();
        entities.sort_by(|a, b| a.current.name().cmp(b.current.name()));
        self.0 = entities;
    }
}

#[derive(Debug)]
struct Source {
    last_seen: Instant,
    ttl: Duration,
    sequence: Option<u64>,
    datasources: Entities<DatasourceSnapshot>,
    caches: Entities<CacheSnapshot>,
    watchers: Entities<WatcherSnapshot>,
    schedulers: Entities<SchedulerSnapshot>,
    executors: Entities<ExecutorSnapshot>,
    web_servers: Entities<WebServerSnapshot>,
    runtimes: Entities<RuntimeSnapshot>,
    performance: Entities<PerformanceSnapshot>,
}

impl Source {
    fn new(now: Instant, ttl: Duration) -> Self {
        Self {
            last_seen: now,
            ttl,
            sequence: None,
            datasources: Entities::default(),
            caches: Entities::default(),
            watchers: Entities::default(),
            schedulers: Entities::default(),
            executors: Entities::default(),
            web_servers: Entities::default(),
            runtimes: Entities::default(),
            performance: Entities::default(),
        }
    }

    /// The subsystems this source has entities in.
    fn subsystems(&self) -> Vec<Subsystem> {
        let has = [
            (Subsystem::Datasources, !self.datasources.0.is_empty()),
            (Subsystem::Caches, !self.caches.0.is_empty()),
            (Subsystem::Watchers, !self.watchers.0.is_empty()),
            (Subsystem::Schedulers, !self.schedulers.0.is_empty()),
            (Subsystem::Executors, !self.executors.0.is_empty()),
            (Subsystem::WebServer, !self.web_servers.0.is_empty()),
            (Subsystem::Runtime, !self.runtimes.0.is_empty()),
            (Subsystem::Performance, !self.performance.0.is_empty()),
        ];
        has.into_iter()
            .filter(|(_, has)| *has)
            .map(|(s, _)| s)
            .collect()
    }

    fn staleness(&self, now: Instant) -> Option<Staleness> {
        let silent = now.saturating_duration_since(self.last_seen);
        (silent > self.ttl).then_some(Staleness {
            silent_secs: silent.as_secs_f64(),
            ttl_secs: self.ttl.as_secs_f64(),
        })
    }
}

/// What applying a push did.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// The push replaced entities in these subsystems.
    Changed(Vec<Subsystem>),
    /// The push's sequence was not above the source's last accepted one; nothing changed.
    OldSequence,
}

#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    sources: BTreeMap<Arc<str>, Source>,
    host: Vec<HostSnapshot>,
}

impl Store {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Applies a validated push, or changes nothing and says which field broke a limit.
    pub fn apply(&mut self, push: Push, now: Instant) -> Result<Applied, FieldError> {
        let limits = &self.limits;
        let count = push.entity_count();
        if count > limits.max_entities_per_request {
            return Err(FieldError::new(
                "entities",
                format!(
                    "{count} entities in one request; the limit is {}",
                    limits.max_entities_per_request
                ),
            ));
        }
        let ttl = match push.ttl {
            None => Duration::from_secs(limits.default_ttl_secs),
            Some(ttl) => {
                let (min, max) = (
                    Duration::from_secs(limits.min_ttl_secs),
                    Duration::from_secs(limits.max_ttl_secs),
                );
                if ttl < min || ttl > max {
                    return Err(FieldError::new(
                        "ttl",
                        format!("{ttl:?} is outside the allowed {min:?} to {max:?}"),
                    ));
                }
                ttl
            }
        };
        if !self.sources.contains_key(&push.source) && self.sources.len() >= limits.max_sources {
            return Err(FieldError::new(
                "source",
                format!(
                    "{:?} would be source number {}; the limit is {}",
                    push.source,
                    self.sources.len() + 1,
                    limits.max_sources
                ),
            ));
        }
        let source = self
            .sources
            .entry(push.source.clone())
            .or_insert_with(|| Source::new(now, ttl));
        if let (Some(sequence), Some(last)) = (push.sequence, source.sequence) {
            if sequence <= last {
                return Ok(Applied::OldSequence);
            }
        }
        let was_stale = source.staleness(now).is_some();
        source.last_seen = now;
        source.ttl = ttl;
        source.sequence = push.sequence.or(source.sequence);
        let mut changed = Vec::new();
        macro_rules! replace {
            ($($field:ident => $subsystem:ident),+) => {$(
                if let Some(list) = push.$field {
                    source.$field.replace(list);
                    changed.push(Subsystem::$subsystem);
                }
            )+};
        }
        replace!(
            datasources => Datasources, caches => Caches, watchers => Watchers,
            schedulers => Schedulers, executors => Executors, web_servers => WebServer,
            runtimes => Runtime, performance => Performance
        );
        if was_stale {
            // Coming back clears SOURCE_STALE from subsystems this push did not touch too.
            changed.extend(source.subsystems());
        }
        changed.sort_unstable();
        changed.dedup();
        Ok(Applied::Changed(changed))
    }

    /// Drops a source; returns the subsystems it had entities in, or `None` if it was unknown.
    pub fn forget(&mut self, source: &str) -> Option<Vec<Subsystem>> {
        self.sources.remove(source).map(|s| s.subsystems())
    }

    /// Replaces the host sampler's entities.
    pub fn set_host(&mut self, entities: Vec<HostSnapshot>) {
        self.host = entities;
    }

    /// Drops sources silent for longer than their TTL plus `forget_after`; returns the
    /// subsystems they had entities in, and those of sources that went stale since `since`.
    pub fn expire(&mut self, since: Instant, now: Instant) -> Vec<Subsystem> {
        let forget_after = Duration::from_secs(self.limits.forget_after_secs);
        let mut changed = Vec::new();
        self.sources.retain(|_, source| {
            let deadline = source.last_seen + source.ttl;
            let keep = now <= deadline + forget_after;
            let went_stale = since <= deadline && deadline < now;
            if !keep || went_stale {
                changed.extend(source.subsystems());
            }
            keep
        });
        changed.sort_unstable();
        changed.dedup();
        changed
    }

    /// The next instant at which a source goes stale or is dropped.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let forget_after = Duration::from_secs(self.limits.forget_after_secs);
        self.sources
            .values()
            .map(|source| {
                let stale_at = source.last_seen + source.ttl;
                if stale_at >= now {
                    stale_at
                } else {
                    stale_at + forget_after
                }
            })
            .min()
    }

    /// Scores one subsystem as it stands at `now`.
    pub fn report(&self, subsystem: Subsystem, policy: &Policy, now: Instant) -> HealthReport {
        match subsystem {
            Subsystem::Datasources => self.pushed(|s| &s.datasources, policy, now),
            Subsystem::Caches => self.pushed(|s| &s.caches, policy, now),
            Subsystem::Watchers => self.pushed(|s| &s.watchers, policy, now),
            Subsystem::Schedulers => self.pushed(|s| &s.schedulers, policy, now),
            Subsystem::Executors => self.pushed(|s| &s.executors, policy, now),
            Subsystem::WebServer => self.pushed(|s| &s.web_servers, policy, now),
            Subsystem::Runtime => self.pushed(|s| &s.runtimes, policy, now),
            Subsystem::Performance => self.pushed(|s| &s.performance, policy, now),
            Subsystem::Host => {
                let source: Arc<str> = Arc::from(HOST_SOURCE);
                subsystem_report(
                    self.host.iter().map(|current| Observed {
                        source: &source,
                        current,
                        previous: None,
                        stale: None,
                    }),
                    policy,
                )
            }
        }
    }

    fn pushed<S: Snapshot + Clone>(
        &self,
        entities: impl Fn(&Source) -> &Entities<S>,
        policy: &Policy,
        now: Instant,
    ) -> HealthReport {
        subsystem_report(
            self.sources.iter().flat_map(|(name, source)| {
                let stale = source.staleness(now);
                entities(source).0.iter().map(move |e| Observed {
                    source: name,
                    current: &e.current,
                    previous: e.previous.as_ref(),
                    stale,
                })
            }),
            policy,
        )
    }
}

/// The source name of the host sampler's entities.
pub const HOST_SOURCE: &str = "host";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::{Code, Status};

    fn push(source: &str, sequence: Option<u64>, active: u32) -> Push {
        Push {
            source: source.into(),
            sequence,
            ttl: Some(Duration::from_secs(10)),
            datasources: Some(vec![DatasourceSnapshot {
                name: "db".into(),
                started: true,
                active,
                idle: 0,
                max: 100,
                threads_awaiting: 0,
            }]),
            ..Push::default()
        }
    }

    #[test]
    fn old_sequence_changes_nothing() {
        let mut store = Store::new(Limits::default());
        let now = Instant::now();
        let policy = Policy::default();
        store.apply(push("a", Some(5), 99), now).expect("valid");
        assert_eq!(
            store.apply(push("a", Some(5), 1), now),
            Ok(Applied::OldSequence)
        );
        assert_eq!(
            store.apply(push("a", Some(4), 1), now),
            Ok(Applied::OldSequence)
        );
        let report = store.report(Subsystem::Datasources, &policy, now);
        assert_eq!(report.status, Status::Critical);
    }

    #[test]
    fn source_goes_stale_after_ttl_and_is_dropped_after_forget_after() {
        let mut store = Store::new(Limits {
            forget_after_secs: 60,
            ..Limits::default()
        });
        let t0 = Instant::now();
        let policy = Policy::default();
        store.apply(push("a", None, 1), t0).expect("valid");
        assert_eq!(store.next_deadline(t0), Some(t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(store.expire(t0, t1), vec![Subsystem::Datasources]);
        let report = store.report(Subsystem::Datasources, &policy, t1);
        assert_eq!(report.issues[0].code, Code::SourceStale);
        assert_eq!(store.next_deadline(t1), Some(t0 + Duration::from_secs(70)));
        let t2 = t0 + Duration::from_secs(71);
        assert_eq!(store.expire(t1, t2), vec![Subsystem::Datasources]);
        assert!(!store.report(Subsystem::Datasources, &policy, t2).available);
    }

    #[test]
    fn limits_are_checked_before_anything_changes() {
        let mut store = Store::new(Limits {
            max_sources: 1,
            ..Limits::default()
        });
        let now = Instant::now();
        store.apply(push("a", None, 1), now).expect("valid");
        let error = store.apply(push("b", None, 1), now).unwrap_err();
        assert_eq!(error.field, "source");
        let mut long = push("a", None, 1);
        long.ttl = Some(Duration::from_secs(7200));
        assert_eq!(store.apply(long, now).unwrap_err().field, "ttl");
    }

    #[test]
    fn previous_snapshot_is_kept_for_counter_windows() {
        let mut store = Store::new(Limits::default());
        let now = Instant::now();
        let cache = |hits, misses| Push {
            source: "a".into(),
            caches: Some(vec![CacheSnapshot {
                name: "c".into(),
                enabled: true,
                hits,
                misses,
                evictions: 0,
                size: 10,
                max_size: 100,
            }]),
            ..Push::default()
        };
        store.apply(cache(10_000, 100), now).expect("valid");
        store.apply(cache(10_010, 200), now).expect("valid");
        let report = store.report(Subsystem::Caches, &Policy::default(), now);
        assert_eq!(report.issues[0].code, Code::CacheLowHitRate);
    }
}
