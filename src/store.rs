//! The snapshot store: every source's latest entities (and the snapshot before, for counter
//! windows), what the rules made of them, TTLs, incarnations and sequences.
//!
//! A source's entities are evaluated once, when it pushes; a report is assembled from the
//! sources' evaluations, so a push costs what it carries, not what the whole state holds.
//! Owned by the engine task alone; it never reads the clock (callers pass `now`).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use crate::core::{
    ingest::{FieldError, Limits, Push},
    scoring::{
        assemble, evaluate, snapshot, stale, Evaluated, HealthReport, Policy, Snapshot,
        SourceLabels, Staleness, Subsystem,
    },
    subsystem::for_each_subsystem,
};

/// An entity's latest snapshot and the one before it.
#[derive(Debug)]
struct Entity<S> {
    current: S,
    previous: Option<S>,
}

/// One source's entities of one subsystem, sorted by name, and what the rules made of them.
#[derive(Debug)]
struct Slot<S> {
    entities: Vec<Entity<S>>,
    /// The incarnation the entities came from; a later one starts new counter windows.
    started_at: Option<SystemTime>,
    fresh: Evaluated,
    /// `fresh` as shown while the source is stale, made when it went stale.
    stale: Option<Evaluated>,
}

impl<S: Snapshot> Slot<S> {
    /// The slot after a push of `snapshots`: each entity keeps its last snapshot (from `old`)
    /// as its previous, unless the push comes from a new incarnation of the source.
    fn new(
        (source, labels): (&Arc<str>, &SourceLabels),
        snapshots: Vec<S>,
        started_at: Option<SystemTime>,
        old: Option<Self>,
        policy: &Policy,
    ) -> Self {
        let mut old: BTreeMap<Arc<str>, Entity<S>> = old
            .filter(|old| started_at.is_none() || old.started_at == started_at)
            .map(|old| old.entities)
            .unwrap_or_default()
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
        let fresh = evaluate(
            source,
            labels,
            entities.iter().map(|e| (&e.current, e.previous.as_ref())),
            policy,
        );
        Self {
            entities,
            started_at,
            fresh,
            stale: None,
        }
    }

    /// The same entities shown with the source's new `labels`.
    fn relabel(&mut self, source: &Arc<str>, labels: &SourceLabels, policy: &Policy) {
        self.fresh = evaluate(
            source,
            labels,
            self.entities
                .iter()
                .map(|e| (&e.current, e.previous.as_ref())),
            policy,
        );
    }

    fn shown(&self) -> &Evaluated {
        self.stale.as_ref().unwrap_or(&self.fresh)
    }
}

macro_rules! slots {
    ($($variant:ident $field:ident $snapshot:ident;)+) => {
        /// A source's slot of every subsystem; `None` where it reported nothing.
        #[derive(Debug, Default)]
        struct Slots {
            $($field: Option<Slot<snapshot::$snapshot>>,)+
        }

        impl Slots {
            /// Replaces the subsystems `push` carries a list for; returns them. With `relabel`
            /// (the source's labels changed), the other subsystems are shown with the new
            /// labels too, and returned.
            fn replace(
                &mut self,
                push: Push,
                source: (&Arc<str>, &SourceLabels),
                relabel: bool,
                policy: &Policy,
            ) -> Vec<Subsystem> {
                let mut changed = Vec::new();
                $(if let Some(list) = push.$field {
                    let old = self.$field.take();
                    self.$field = (!list.is_empty())
                        .then(|| Slot::new(source, list, push.started_at, old, policy));
                    changed.push(Subsystem::$variant);
                } else if let Some(slot) = self.$field.as_mut().filter(|_| relabel) {
                    slot.relabel(source.0, source.1, policy);
                    changed.push(Subsystem::$variant);
                })+
                changed
            }

            /// The subsystems this source has entities in.
            fn subsystems(&self) -> Vec<Subsystem> {
                let mut has = Vec::new();
                $(if self.$field.is_some() {
                    has.push(Subsystem::$variant);
                })+
                has
            }

            fn go_stale(&mut self, source: &Arc<str>, staleness: Staleness, policy: &Policy) {
                $(if let Some(slot) = &mut self.$field {
                    slot.stale = Some(stale(
                        &slot.fresh,
                        Subsystem::$variant,
                        source,
                        staleness,
                        policy,
                    ));
                })+
            }

            fn refresh(&mut self) {
                $(if let Some(slot) = &mut self.$field {
                    slot.stale = None;
                })+
            }

            /// What this source shows in `subsystem`'s report.
            fn shown(&self, subsystem: Subsystem) -> Option<&Evaluated> {
                match subsystem {
                    $(Subsystem::$variant => self.$field.as_ref().map(Slot::shown),)+
                }
            }
        }
    };
}
for_each_subsystem!(slots: variant field snapshot);

#[derive(Debug)]
struct Source {
    last_seen: Instant,
    ttl: Duration,
    /// When the source's current incarnation started, if it says.
    started_at: Option<SystemTime>,
    sequence: Option<u64>,
    /// Whether the source is past its TTL (set by `expire`, cleared by its next push).
    stale: bool,
    /// As its last applied push said.
    labels: SourceLabels,
    slots: Slots,
}

/// Where a push stands in its source's order of (incarnation, sequence).
enum Order {
    /// From a later incarnation (a restart): accepted, and its sequence starts afresh.
    Restart,
    /// The next push of the current incarnation.
    Next,
    /// Older than or the same as the last accepted push: not applied.
    Old,
}

impl Source {
    fn new(now: Instant, ttl: Duration) -> Self {
        Self {
            last_seen: now,
            ttl,
            started_at: None,
            sequence: None,
            stale: false,
            labels: SourceLabels::default(),
            slots: Slots::default(),
        }
    }

    fn order(&self, started_at: Option<SystemTime>, sequence: Option<u64>) -> Order {
        match (started_at, self.started_at) {
            (Some(new), Some(last)) if new > last => return Order::Restart,
            (Some(new), Some(last)) if new < last => return Order::Old,
            (Some(_), None) => return Order::Restart,
            _ => {}
        }
        match (sequence, self.sequence) {
            (Some(sequence), Some(last)) if sequence <= last => Order::Old,
            _ => Order::Next,
        }
    }

    fn deadline(&self) -> Instant {
        self.last_seen + self.ttl
    }
}

/// What applying a push did.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// The push replaced entities in these subsystems (or refreshed a stale source's).
    Changed(Vec<Subsystem>),
    /// The push was older than the source's last accepted one; nothing changed.
    OldSequence,
}

#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    policy: Policy,
    sources: BTreeMap<Arc<str>, Source>,
}

impl Store {
    pub fn new(limits: Limits, policy: Policy) -> Self {
        Self {
            limits,
            policy,
            sources: BTreeMap::new(),
        }
    }

    /// The thresholds and penalties reports are scored by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Applies a validated push, or changes nothing and says which field broke a limit.
    ///
    /// A push with no entities is a heartbeat: it keeps a source that has entities fresh, and
    /// is refused for any other, so that empty pushes cannot take source slots.
    pub fn apply(&mut self, push: Push, now: Instant) -> Result<Applied, FieldError> {
        let limits = &self.limits;
        let count = push.entity_count();
        limits.entity_count(count)?;
        let ttl = limits.ttl(push.ttl)?;
        let known = self.sources.get(&push.source);
        if count == 0 && known.is_none_or(|s| s.slots.subsystems().is_empty()) {
            return Err(FieldError::new(
                "entities",
                format!(
                    "the push carries no entity; an empty push is only a heartbeat of a source \
                     that has entities, and {:?} has none",
                    push.source
                ),
            ));
        }
        if known.is_none() && self.sources.len() >= limits.max_sources {
            return Err(FieldError::exhausted(
                "source",
                format!(
                    "{:?} would be source number {}; the limit is {} (limits.max_sources)",
                    push.source,
                    self.sources.len() + 1,
                    limits.max_sources
                ),
            ));
        }
        let name = push.source.clone();
        let source = self
            .sources
            .entry(name.clone())
            .or_insert_with(|| Source::new(now, ttl));
        match source.order(push.started_at, push.sequence) {
            // Not applied, but the source is alive (an app restarted without `started_at`,
            // a duplicate): it counts as a heartbeat, so it does not go stale.
            Order::Old => {
                source.last_seen = now;
                if std::mem::replace(&mut source.stale, false) {
                    source.slots.refresh();
                    return Ok(Applied::Changed(source.slots.subsystems()));
                }
                return Ok(Applied::OldSequence);
            }
            Order::Restart => {
                source.started_at = push.started_at;
                source.sequence = push.sequence;
            }
            Order::Next => source.sequence = push.sequence.or(source.sequence),
        }
        let was_stale = std::mem::replace(&mut source.stale, false);
        source.last_seen = now;
        source.ttl = ttl;
        let relabel = source.labels != push.labels;
        source.labels = push.labels.clone();
        let mut changed =
            source
                .slots
                .replace(push, (&name, &source.labels), relabel, &self.policy);
        if was_stale {
            // Coming back clears SOURCE_STALE from subsystems this push did not touch too.
            source.slots.refresh();
            changed.extend(source.slots.subsystems());
        }
        changed.sort_unstable();
        changed.dedup();
        Ok(Applied::Changed(changed))
    }

    /// Drops a source; returns the subsystems it had entities in, or `None` if it was unknown.
    pub fn forget(&mut self, source: &str) -> Option<Vec<Subsystem>> {
        self.sources.remove(source).map(|s| s.slots.subsystems())
    }

    /// Marks sources silent for longer than their TTL stale and drops those silent for longer
    /// than TTL plus `forget_after`; returns the subsystems whose reports that changed.
    pub fn expire(&mut self, now: Instant) -> Vec<Subsystem> {
        let forget_after = Duration::from_secs(self.limits.forget_after_secs);
        let mut changed = Vec::new();
        let policy = &self.policy;
        self.sources.retain(|name, source| {
            let deadline = source.deadline();
            if now > deadline + forget_after {
                changed.extend(source.slots.subsystems());
                return false;
            }
            if !source.stale && now > deadline {
                source.stale = true;
                let staleness = Staleness {
                    silent_secs: now
                        .saturating_duration_since(source.last_seen)
                        .as_secs_f64(),
                    ttl_secs: source.ttl.as_secs_f64(),
                };
                source.slots.go_stale(name, staleness, policy);
                changed.extend(source.slots.subsystems());
            }
            true
        });
        changed.sort_unstable();
        changed.dedup();
        changed
    }

    /// The next instant at which a source goes stale or is dropped.
    pub fn next_deadline(&self) -> Option<Instant> {
        let forget_after = Duration::from_secs(self.limits.forget_after_secs);
        self.sources
            .values()
            .map(|source| {
                if source.stale {
                    source.deadline() + forget_after
                } else {
                    source.deadline()
                }
            })
            .min()
    }

    /// One subsystem's report, assembled from every source's evaluation.
    pub fn report(&self, subsystem: Subsystem) -> HealthReport {
        assemble(
            subsystem,
            self.sources
                .values()
                .filter_map(|s| s.slots.shown(subsystem)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scoring::{
        snapshot::{CacheSnapshot, DatasourceSnapshot},
        Code, Status,
    };

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

    fn first_code(report: &HealthReport) -> Option<Code> {
        report.issues.iter().next().map(|issue| issue.code)
    }

    fn store(limits: Limits) -> Store {
        Store::new(limits, Policy::default())
    }

    #[test]
    fn old_sequence_changes_nothing() {
        let mut store = store(Limits::default());
        let now = Instant::now();
        store.apply(push("a", Some(5), 99), now).expect("valid");
        assert_eq!(
            store.apply(push("a", Some(5), 1), now),
            Ok(Applied::OldSequence)
        );
        assert_eq!(
            store.apply(push("a", Some(4), 1), now),
            Ok(Applied::OldSequence)
        );
        let report = store.report(Subsystem::Datasources);
        assert_eq!(report.status, Status::Critical);
    }

    #[test]
    fn an_old_push_keeps_its_source_fresh_without_applying_it() {
        let mut store = store(Limits::default());
        let start = Instant::now();
        store.apply(push("a", Some(5), 99), start).expect("valid");
        // The app restarted without started_at: its sequence starts again from 1.
        let ttl = Duration::from_secs(Limits::default().default_ttl_secs);
        let later = start + ttl - Duration::from_secs(1);
        assert_eq!(
            store.apply(push("a", Some(1), 1), later),
            Ok(Applied::OldSequence)
        );
        assert!(store
            .expire(start + ttl + Duration::from_secs(1))
            .is_empty());
        assert_eq!(
            first_code(&store.report(Subsystem::Datasources)),
            Some(Code::DsPoolSaturated)
        );
        // A stale source that hears an old push is fresh again.
        let stale_at = later + ttl + Duration::from_secs(1);
        assert!(!store.expire(stale_at).is_empty());
        assert_eq!(
            store.apply(push("a", Some(2), 1), stale_at),
            Ok(Applied::Changed(vec![Subsystem::Datasources]))
        );
        assert_eq!(
            first_code(&store.report(Subsystem::Datasources)),
            Some(Code::DsPoolSaturated)
        );
    }

    #[test]
    fn a_later_incarnation_resets_the_sequence_and_an_earlier_one_is_old() {
        let mut store = store(Limits::default());
        let now = Instant::now();
        let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let t2 = t1 + Duration::from_secs(60);
        let at = |started_at, sequence, active| Push {
            started_at: Some(started_at),
            ..push("a", Some(sequence), active)
        };
        store.apply(at(t1, u64::MAX, 1), now).expect("valid");
        assert_eq!(
            store.apply(at(t2, 1, 99), now),
            Ok(Applied::Changed(vec![Subsystem::Datasources]))
        );
        assert_eq!(store.apply(at(t1, 2, 1), now), Ok(Applied::OldSequence));
        assert_eq!(store.apply(at(t2, 1, 1), now), Ok(Applied::OldSequence));
        assert_eq!(
            store.report(Subsystem::Datasources).status,
            Status::Critical
        );
    }

    #[test]
    fn source_goes_stale_after_ttl_and_is_dropped_after_forget_after() {
        let mut store = store(Limits {
            forget_after_secs: 60,
            ..Limits::default()
        });
        let t0 = Instant::now();
        store.apply(push("a", None, 1), t0).expect("valid");
        assert_eq!(store.next_deadline(), Some(t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(store.expire(t1), vec![Subsystem::Datasources]);
        let report = store.report(Subsystem::Datasources);
        assert_eq!(first_code(&report), Some(Code::SourceStale));
        assert_eq!(store.next_deadline(), Some(t0 + Duration::from_secs(70)));
        let t2 = t0 + Duration::from_secs(71);
        assert_eq!(store.expire(t2), vec![Subsystem::Datasources]);
        assert!(!store.report(Subsystem::Datasources).available);
    }

    #[test]
    fn limits_are_checked_before_anything_changes() {
        let mut store = store(Limits {
            max_sources: 1,
            ..Limits::default()
        });
        let now = Instant::now();
        store.apply(push("a", None, 1), now).expect("valid");
        let error = store.apply(push("b", None, 1), now).unwrap_err();
        assert_eq!(error.field, "source");
        assert_eq!(error.refusal, crate::core::ingest::Refusal::Exhausted);
        let mut long = push("a", None, 1);
        long.ttl = Some(Duration::from_secs(7200));
        assert_eq!(store.apply(long, now).unwrap_err().field, "ttl");
    }

    #[test]
    fn new_labels_show_on_every_subsystem_of_the_source() {
        let mut store = store(Limits::default());
        let now = Instant::now();
        let cache = Push {
            source: "a".into(),
            caches: Some(vec![CacheSnapshot {
                name: "c".into(),
                enabled: true,
                hits: 1,
                misses: 0,
                evictions: 0,
                size: 1,
                max_size: 100,
            }]),
            ..Push::default()
        };
        store.apply(cache, now).expect("valid");
        let mut relabelled = push("a", None, 1);
        relabelled.labels = Arc::new([("team".to_owned(), "orders".to_owned())].into());
        assert_eq!(
            store.apply(relabelled.clone(), now),
            Ok(Applied::Changed(vec![
                Subsystem::Datasources,
                Subsystem::Caches
            ]))
        );
        for subsystem in [Subsystem::Datasources, Subsystem::Caches] {
            let report = store.report(subsystem);
            let entity = report.entities.iter().next().expect("an entity");
            assert_eq!(entity.labels, relabelled.labels, "{subsystem:?}");
        }
    }

    #[test]
    fn an_empty_push_is_a_heartbeat_of_a_known_source_and_refused_otherwise() {
        let mut store = store(Limits::default());
        let now = Instant::now();
        let empty = |source: &str| Push {
            source: source.into(),
            ..Push::default()
        };
        assert_eq!(store.apply(empty("a"), now).unwrap_err().field, "entities");
        assert_eq!(store.next_deadline(), None);
        store.apply(push("a", None, 1), now).expect("valid");
        let later = now + Duration::from_secs(8);
        assert_eq!(store.apply(empty("a"), later), Ok(Applied::Changed(vec![])));
        assert_eq!(store.next_deadline(), Some(later + Duration::from_secs(30)));
    }

    #[test]
    fn previous_snapshot_is_kept_for_counter_windows_within_an_incarnation() {
        let mut store = store(Limits::default());
        let now = Instant::now();
        let cache = |hits, misses, started_at: Option<u64>| Push {
            source: "a".into(),
            started_at: started_at.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
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
        store.apply(cache(10_000, 100, None), now).expect("valid");
        store.apply(cache(10_010, 200, None), now).expect("valid");
        let report = store.report(Subsystem::Caches);
        assert_eq!(first_code(&report), Some(Code::CacheLowHitRate));
        // A restart at the same counts: its totals are the window, a 99% hit rate.
        store
            .apply(cache(10_010, 200, Some(5)), now)
            .expect("valid");
        assert!(store.report(Subsystem::Caches).issues.is_empty());
    }
}
