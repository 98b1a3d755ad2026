//! What inputs hand to the engine: a validated [`Push`] of one source's snapshots, made by the
//! one [`PushBuilder`] every input uses (a push, a scrape, an OTLP export, the host sampler),
//! and the [`Limits`] every input obeys. A rejected input gets a [`FieldError`] (defined in
//! `core::refusal`, re-exported here); each face maps it to its protocol's error (gRPC status,
//! HTTP code) itself.
//!
//! Pure: no I/O, no clock (callers pass the time).

use std::{
    collections::HashSet,
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, SystemTime},
};

use foldhash::fast::RandomState as FoldState;
use serde::{Deserialize, Serialize};

use super::{
    scoring::{snapshot, Snapshot, SourceLabels},
    subsystem::for_each_subsystem,
};
/// Every input's refusals, named here with what inputs hand the engine.
pub use crate::core::refusal::{FieldError, Refusal};

/// The source name of the host sampler's entities; no other input may use it.
pub const HOST_SOURCE: &str = "host";

macro_rules! push_struct {
    ($($field:ident $snapshot:ident;)+) => {
        /// One source's validated snapshots. A `None` list leaves that subsystem of the source
        /// untouched; a `Some` list replaces it.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Push {
            pub source: Arc<str>,
            /// When this incarnation of the source started: pushes are ordered by
            /// (`started_at`, `sequence`), and a later incarnation starts new counter windows.
            pub started_at: Option<SystemTime>,
            /// Pushes whose sequence is not above the last accepted one (of the same
            /// incarnation) are not applied.
            pub sequence: Option<u64>,
            /// `None` uses the configured default.
            pub ttl: Option<Duration>,
            /// Shown with the source's entities; a push with other labels relabels them all.
            pub labels: SourceLabels,
            $(pub $field: Option<Vec<snapshot::$snapshot>>,)+
        }

        impl Push {
            /// Entities in every list.
            pub fn entity_count(&self) -> usize {
                0 $(+ self.$field.as_ref().map_or(0, Vec::len))+
            }
        }

        $(impl Listed for snapshot::$snapshot {
            fn list(push: &mut Push) -> &mut Option<Vec<Self>> {
                &mut push.$field
            }
        })+
    };
}
for_each_subsystem!(push_struct: field snapshot);

/// A snapshot type that a `Push` carries a list of.
pub trait Listed: Snapshot + Sized {
    fn list(push: &mut Push) -> &mut Option<Vec<Self>>;
}

/// A push being made. Every input makes its push here, so each is held to the same checks
/// whichever way its values arrived: the source's name, the entity count (before any entity is
/// converted), the TTL's bounds, `started_at` against the clock, entity names valid and unique
/// within a list, and each snapshot's own checks. What `build` returns is valid.
pub struct PushBuilder<'a> {
    limits: &'a Limits,
    push: Push,
}

impl<'a> PushBuilder<'a> {
    /// A push from `source` that will carry `entities` entities. `host` is the host sampler's
    /// name and no other input's.
    pub fn new(source: &str, entities: usize, limits: &'a Limits) -> Result<Self, FieldError> {
        let builder = Self::of(source, entities, limits)?;
        if &*builder.push.source == HOST_SOURCE {
            return Err(FieldError::new(
                "source",
                format!("{HOST_SOURCE:?} is reserved for the host sampler"),
            ));
        }
        Ok(builder)
    }

    /// The host sampler's push of `entities` entities.
    pub fn host(entities: usize, limits: &'a Limits) -> Result<Self, FieldError> {
        Self::of(HOST_SOURCE, entities, limits)
    }

    fn of(source: &str, entities: usize, limits: &'a Limits) -> Result<Self, FieldError> {
        let source = name("source", source, limits.max_name_bytes)?;
        limits.entity_count(entities)?;
        Ok(Self {
            limits,
            push: Push {
                source,
                ..Push::default()
            },
        })
    }

    /// How long the source stays fresh without another push; `None` is the configured default.
    pub fn ttl(mut self, ttl: Option<Duration>) -> Result<Self, FieldError> {
        self.limits.ttl(ttl)?;
        self.push.ttl = ttl;
        Ok(self)
    }

    /// When the source's incarnation started, checked against `now`.
    pub fn started_at(mut self, at: SystemTime, now: SystemTime) -> Result<Self, FieldError> {
        let skew = Duration::from_secs(self.limits.max_clock_skew_secs);
        self.push.started_at = Some(started_at(at, now, skew)?);
        Ok(self)
    }

    pub fn sequence(mut self, sequence: Option<u64>) -> Self {
        self.push.sequence = sequence;
        self
    }

    pub fn labels(mut self, labels: SourceLabels) -> Self {
        self.push.labels = labels;
        self
    }

    /// Adds one subsystem's list, `field` naming it in errors: each item's name (`name_of`)
    /// must be valid and unique, then `convert` makes its snapshot (given the checked name and
    /// a function naming one of its fields in errors), which must pass its own checks. An
    /// empty list leaves the subsystem untouched.
    pub fn list<W, S: Listed>(
        mut self,
        field: &str,
        items: Vec<W>,
        name_of: impl Fn(&W) -> &str,
        convert: impl Fn(W, Arc<str>, &dyn Fn(&str) -> String) -> Result<S, FieldError>,
    ) -> Result<Self, FieldError> {
        if items.is_empty() {
            return Ok(self);
        }
        let mut seen: HashSet<Arc<str>, FoldState> =
            HashSet::with_capacity_and_hasher(items.len(), FoldState::default());
        let mut snapshots = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            // The field is named only on error: formatting it for every item was a tenth of a
            // ReportMetrics call's instructions (callgrind).
            let name = name("", name_of(&item), self.limits.max_name_bytes).map_err(|error| {
                FieldError {
                    field: format!("{field}[{index}].name"),
                    ..error
                }
            })?;
            if !seen.insert(name.clone()) {
                return Err(FieldError::new(
                    format!("{field}[{index}].name"),
                    format!("duplicate entity name {name:?}"),
                ));
            }
            let path = |key: &str| format!("{field}[{index}] {name:?}.{key}");
            let snapshot = convert(item, name.clone(), &path)?;
            snapshot.check().map_err(|error| FieldError {
                field: path(&error.field),
                ..error
            })?;
            snapshots.push(snapshot);
        }
        *S::list(&mut self.push) = Some(snapshots);
        Ok(self)
    }

    pub fn build(self) -> Push {
        self.push
    }
}

/// Validates a name (source or entity): not blank, at most `max_bytes`, and nothing that renders
/// invisibly or reorders text (control, bidi and zero-width characters), so that two names that
/// look the same are the same.
pub fn name(field: &str, value: &str, max_bytes: usize) -> Result<Arc<str>, FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > max_bytes {
        return Err(FieldError::new(
            field,
            format!("is {} bytes long; the limit is {max_bytes}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|&c| c.is_control() || is_invisible(c)) {
        return Err(FieldError::new(
            field,
            format!(
                "must not contain control characters or invisible bidi and zero-width ones (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(Arc::from(value))
}

/// The most labels a source carries.
pub const MAX_SOURCE_LABELS: usize = 32;

/// Validates a source's labels (`field` is where they were given): at most
/// `MAX_SOURCE_LABELS`, names as Prometheus' (`[a-zA-Z_][a-zA-Z0-9_]*`, not the reserved `__`
/// prefix), values as names are (`name`), so they can be shown and exported as series labels.
pub fn labels<'a>(
    field: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    max_bytes: usize,
) -> Result<SourceLabels, FieldError> {
    let mut checked = std::collections::BTreeMap::new();
    for (label, value) in labels {
        let is_name = label
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !is_name || label.is_empty() || label.starts_with("__") {
            return Err(FieldError::new(
                format!("{field}.{label}"),
                "is not a label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __",
            ));
        }
        name(&format!("{field}.{label}"), value, max_bytes)?;
        checked.insert(label.clone(), value.clone());
    }
    if checked.len() > MAX_SOURCE_LABELS {
        return Err(FieldError::new(
            field,
            format!("{} labels; the limit is {MAX_SOURCE_LABELS}", checked.len()),
        ));
    }
    Ok(Arc::new(checked))
}

/// Unicode format characters (category Cf) that change how text displays without showing:
/// bidi overrides and isolates, zero-width spaces and joiners, the byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Checks a source's `started_at` against the clock: more than `max_skew` in the future is a
/// client whose clock is wrong, and accepting it would lock out its real later incarnations.
fn started_at(
    started_at: SystemTime,
    now: SystemTime,
    max_skew: Duration,
) -> Result<SystemTime, FieldError> {
    match started_at.duration_since(now) {
        Ok(ahead) if ahead > max_skew => Err(FieldError::new(
            "started_at",
            format!(
                "is {}s in the future; the limit is {}s (limits.max_clock_skew_secs)",
                ahead.as_secs(),
                max_skew.as_secs()
            ),
        )),
        _ => Ok(started_at),
    }
}

/// Bounds on what inputs may carry. Durations are whole seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most entities one ReportMetrics request may carry.
    pub max_entities_per_request: usize,
    /// Most sources known at once; a push from a new source beyond it is refused.
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
    /// How far in the future a push's `started_at` may be.
    pub max_clock_skew_secs: u64,
    /// Most entities or issues a reader may ask one report to list (100 are listed by default).
    pub max_listed: usize,
    /// Pushes (ReportMetrics, OTLP resources) one source may make per second, in bursts of as
    /// many; more are refused with RESOURCE_EXHAUSTED (HTTP 429).
    pub max_pushes_per_source_per_sec: NonZeroU32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entities_per_request: 10_000,
            max_sources: 10_000,
            max_name_bytes: 256,
            default_ttl_secs: 30,
            min_ttl_secs: 1,
            max_ttl_secs: 3_600,
            forget_after_secs: 600,
            max_clock_skew_secs: 300,
            max_listed: 10_000,
            max_pushes_per_source_per_sec: NonZeroU32::new(50).expect("not zero"),
        }
    }
}

/// The longest TTL or forget delay a config may set, in seconds: one year.
pub const MAX_DURATION_SECS: u64 = 365 * 24 * 3600;

impl Limits {
    /// Checks the limits against each other; the error names the config key.
    pub fn validate(&self) -> Result<(), FieldError> {
        for (key, value) in [
            (
                "max_entities_per_request",
                self.max_entities_per_request as u64,
            ),
            ("max_sources", self.max_sources as u64),
            ("max_name_bytes", self.max_name_bytes as u64),
            ("max_listed", self.max_listed as u64),
            ("min_ttl_secs", self.min_ttl_secs),
        ] {
            if value == 0 {
                return Err(FieldError::new(
                    format!("limits.{key}"),
                    "must be at least 1",
                ));
            }
        }
        // Deadlines are Instants plus these; a bound keeps that arithmetic from overflowing.
        for (key, value) in [
            ("max_ttl_secs", self.max_ttl_secs),
            ("forget_after_secs", self.forget_after_secs),
            ("max_clock_skew_secs", self.max_clock_skew_secs),
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

    /// A TTL within the bounds: the default when `None`.
    pub fn ttl(&self, ttl: Option<Duration>) -> Result<Duration, FieldError> {
        let Some(ttl) = ttl else {
            return Ok(Duration::from_secs(self.default_ttl_secs));
        };
        let (min, max) = (
            Duration::from_secs(self.min_ttl_secs),
            Duration::from_secs(self.max_ttl_secs),
        );
        if ttl < min || ttl > max {
            return Err(FieldError::new(
                "ttl",
                format!("{ttl:?} is outside the allowed {min:?} to {max:?}"),
            ));
        }
        Ok(ttl)
    }

    /// The TTL of a source that reports on its own every `interval` (the host sampler, a scrape
    /// target): three intervals, so one late reading is not stale, within the bounds.
    pub fn ttl_of_interval(&self, interval: Duration) -> Duration {
        (interval * 3).clamp(
            Duration::from_secs(self.min_ttl_secs),
            Duration::from_secs(self.max_ttl_secs),
        )
    }

    /// Checks a request's entity count, before any per-entity work.
    pub fn entity_count(&self, count: usize) -> Result<(), FieldError> {
        if count > self.max_entities_per_request {
            return Err(FieldError::new(
                "entities",
                format!(
                    "{count} entities in one request; the limit is {} (limits.max_entities_per_request)",
                    self.max_entities_per_request
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_reordering_characters_are_refused_in_names() {
        for bad in [
            "db\u{202e}exe.txt",
            "app-1\u{200b}",
            "a\u{200f}b",
            "\u{feff}x",
        ] {
            let error = name("source", bad, 256).unwrap_err();
            assert!(error.problem.contains("zero-width"), "{bad:?}: {error}");
        }
        assert!(name("source", "orders-1 (eu)", 256).is_ok());
        assert!(name("source", "café-ü", 256).is_ok());
    }

    #[test]
    fn started_at_far_in_the_future_is_refused() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let skew = Duration::from_secs(300);
        assert!(started_at(now + Duration::from_secs(299), now, skew).is_ok());
        assert!(started_at(now - Duration::from_secs(86_400), now, skew).is_ok());
        let error = started_at(now + Duration::from_secs(301), now, skew).unwrap_err();
        assert_eq!(error.field, "started_at");
    }
}
