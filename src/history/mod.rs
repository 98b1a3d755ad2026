//! The status history: every transition of the system's and each subsystem's report status
//! (time, from, to, score, issue codes added and removed), bounded by count and age, and the
//! uptime shares it implies. The engine records into it as it publishes; faces read it.
//! [`journal`] keeps it across restarts when configured.

pub mod journal;
mod transition;

use std::{
    collections::VecDeque,
    num::NonZeroUsize,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use journal::Journal;
pub use transition::Transition;

use crate::core::{
    published::Published,
    scoring::{Status, Subsystem},
};

/// `[history]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Most transitions kept; the oldest go first.
    pub max_transitions: NonZeroUsize,
    /// Transitions older than this are dropped.
    pub max_age_secs: u64,
    /// A file that keeps the history across restarts (an append-only journal); unset: memory
    /// only.
    pub path: Option<std::path::PathBuf>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_transitions: NonZeroUsize::new(1_000).expect("not zero"),
            max_age_secs: 7 * 24 * 3600,
            path: None,
        }
    }
}

/// The transitions kept, oldest first.
#[derive(Debug)]
pub struct History {
    transitions: VecDeque<Transition>,
    max_transitions: usize,
    max_age: Duration,
    /// Since when every transition is known: the start, or the newest one dropped.
    complete_since: SystemTime,
}

/// Time spent in each status over a window, out of the part of it the history covers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Uptime {
    pub window: Duration,
    pub covered: Duration,
    pub healthy: Duration,
    pub warning: Duration,
    pub critical: Duration,
}

impl Uptime {
    /// The share of the covered time in `status`, 0 to 1 (0 when nothing is covered).
    pub fn share(&self, status: Status) -> f64 {
        let part = match status {
            Status::Healthy => self.healthy,
            Status::Warning => self.warning,
            Status::Critical => self.critical,
        };
        if self.covered.is_zero() {
            0.0
        } else {
            part.as_secs_f64() / self.covered.as_secs_f64()
        }
    }
}

/// The windows uptime is reported over.
pub const UPTIME_WINDOWS: [(&str, Duration); 2] = [
    ("1h", Duration::from_secs(3600)),
    ("24h", Duration::from_secs(24 * 3600)),
];

impl History {
    /// The history `config` asks for, restored from its journal (`path`) when set, and the
    /// journal to append to. A journal that cannot be used is logged and left alone: the
    /// history is worth less than the service, which serves with the history in memory.
    pub fn open(config: &HistoryConfig) -> (Self, Option<Journal>) {
        let mut history = Self::new(config, SystemTime::now());
        let journal = match &config.path {
            None => None,
            Some(path) => match Journal::open(path, config.max_transitions.get()) {
                Ok((transitions, journal)) => {
                    history.restore(transitions);
                    journal
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "cannot use the history journal (history.path): the history is kept in memory only and lost on restart");
                    None
                }
            },
        };
        (history, journal)
    }

    pub fn new(config: &HistoryConfig, started: SystemTime) -> Self {
        Self {
            transitions: VecDeque::new(),
            max_transitions: config.max_transitions.get(),
            max_age: Duration::from_secs(config.max_age_secs),
            complete_since: started,
        }
    }

    /// Takes the transitions read back from the journal, oldest first. The time the process
    /// was down is not known: uptime counts from this start.
    pub fn restore(&mut self, transitions: Vec<Transition>) {
        let now = self.complete_since;
        self.transitions = transitions.into();
        self.trim(now);
        self.complete_since = now;
    }

    /// Records `transition` and drops what the bounds no longer allow.
    pub fn record(&mut self, transition: Transition) {
        let now = transition.at;
        self.transitions.push_back(transition);
        self.trim(now);
    }

    fn trim(&mut self, now: SystemTime) {
        let oldest_allowed = now
            .checked_sub(self.max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        while let Some(oldest) = self.transitions.front() {
            if self.transitions.len() <= self.max_transitions && oldest.at >= oldest_allowed {
                break;
            }
            self.complete_since = self.complete_since.max(oldest.at);
            self.transitions.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.transitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Transition> {
        self.transitions.iter()
    }

    /// The transitions of `name` (every name when `None`) at or after `since`, newest first,
    /// at most `limit`; and how many more there were.
    pub fn query(
        &self,
        name: Option<Option<Subsystem>>,
        since: Option<SystemTime>,
        limit: usize,
    ) -> (Vec<&Transition>, usize) {
        let mut matching = self
            .transitions
            .iter()
            .rev()
            .filter(|t| name.is_none_or(|name| t.name == name))
            .filter(|t| since.is_none_or(|since| t.at >= since));
        let listed = matching.by_ref().take(limit).collect();
        (listed, matching.count())
    }

    /// Time in each status of `name` over the `window` before `now`, given its `current`
    /// status.
    pub fn uptime(
        &self,
        name: Option<Subsystem>,
        current: Status,
        now: SystemTime,
        window: Duration,
    ) -> Uptime {
        let start = now
            .checked_sub(window)
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .max(self.complete_since);
        let mut uptime = Uptime {
            window,
            ..Uptime::default()
        };
        if start >= now {
            return uptime;
        }
        uptime.covered = now.duration_since(start).unwrap_or_default();
        let changes: Vec<&Transition> =
            self.transitions.iter().filter(|t| t.name == name).collect();
        // The status at the window's start: the last change before it, else the first change's
        // `from`, else the status now.
        let mut status = changes
            .iter()
            .rev()
            .find(|t| t.at <= start)
            .map(|t| t.to)
            .or_else(|| changes.first().map(|t| t.from))
            .unwrap_or(current);
        let mut since = start;
        for change in changes.iter().filter(|t| t.at > start && t.at <= now) {
            add(
                &mut uptime,
                status,
                change.at.duration_since(since).unwrap_or_default(),
            );
            (status, since) = (change.to, change.at);
        }
        add(
            &mut uptime,
            status,
            now.duration_since(since).unwrap_or_default(),
        );
        uptime
    }
}

/// What a reader asks of the history.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query {
    /// One name (`Some(None)` is the system), or every name.
    pub name: Option<Option<Subsystem>>,
    pub since: Option<SystemTime>,
    pub limit: usize,
}

/// Transitions listed when a reader does not say how many.
pub const LISTED_BY_DEFAULT: usize = 100;

/// The answer to a [`Query`]: the transitions, and the uptime of each name asked about.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub transitions: Vec<Transition>,
    pub omitted: usize,
    pub uptime: Vec<(Option<Subsystem>, Uptime)>,
}

impl Answer {
    /// Answers `query` from `history`, the current statuses in `state`, at `now`.
    pub fn of(history: &History, state: &Published, query: &Query, now: SystemTime) -> Self {
        let (transitions, omitted) = history.query(query.name, query.since, query.limit);
        let names: Vec<Option<Subsystem>> = match query.name {
            Some(name) => vec![name],
            None => std::iter::once(None)
                .chain(Subsystem::ALL.iter().copied().map(Some))
                .collect(),
        };
        let uptime = names
            .into_iter()
            .flat_map(|name| {
                let current = match name {
                    None => state.system.status,
                    Some(subsystem) => state.report(subsystem).status,
                };
                UPTIME_WINDOWS
                    .iter()
                    .map(move |(_, window)| (name, history.uptime(name, current, now, *window)))
            })
            .collect();
        Self {
            transitions: transitions.into_iter().cloned().collect(),
            omitted,
            uptime,
        }
    }

    /// The answer as JSON: camelCase, lowercase words, RFC 3339 times, as the reports are.
    pub fn json(&self) -> serde_json::Value {
        let transitions: Vec<serde_json::Value> = self
            .transitions
            .iter()
            .map(|t| {
                serde_json::json!({
                    "at": rfc3339(t.at),
                    "subsystem": t.key(),
                    "from": t.from.as_str(),
                    "to": t.to.as_str(),
                    "score": t.score,
                    "addedCodes": t.added().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "removedCodes": t.removed().iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let uptime: Vec<serde_json::Value> = self
            .uptime
            .iter()
            .map(|(name, uptime)| {
                serde_json::json!({
                    "subsystem": name.map_or("system", Subsystem::key),
                    "windowSecs": uptime.window.as_secs(),
                    "coveredSecs": uptime.covered.as_secs(),
                    "healthy": uptime.share(Status::Healthy),
                    "warning": uptime.share(Status::Warning),
                    "critical": uptime.share(Status::Critical),
                })
            })
            .collect();
        serde_json::json!({
            "transitions": transitions,
            "transitionsOmitted": self.omitted,
            "uptime": uptime,
        })
    }
}

/// A `since` as readers write it: an RFC 3339 time, or a duration back from now (`30m`).
pub fn parse_since(text: &str) -> Option<SystemTime> {
    if let Ok(at) = text.parse::<prost_types::Timestamp>() {
        return SystemTime::try_from(at).ok();
    }
    let back = crate::setting::parse_duration(text).ok()?;
    SystemTime::now().checked_sub(back)
}

/// `2026-11-23T22:30:36.123Z`: UTC, to the millisecond (the fraction left out when it is zero),
/// by prost-types' RFC 3339 form of a protobuf `Timestamp`.
pub fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let millis = Duration::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX));
    prost_types::Timestamp::from(SystemTime::UNIX_EPOCH + millis).to_string()
}

fn add(uptime: &mut Uptime, status: Status, spent: Duration) {
    match status {
        Status::Healthy => uptime.healthy += spent,
        Status::Warning => uptime.warning += spent,
        Status::Critical => uptime.critical += spent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::scoring::Code;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn change(secs: u64, from: Status, to: Status) -> Transition {
        Transition::new(at(secs), Some(Subsystem::Caches), (from, to), 50, &[], &[])
    }

    #[test]
    fn uptime_adds_up_the_time_in_each_status() {
        let mut history = History::new(&HistoryConfig::default(), at(0));
        history.record(change(600, Status::Healthy, Status::Critical));
        history.record(change(900, Status::Critical, Status::Healthy));
        let uptime = history.uptime(
            Some(Subsystem::Caches),
            Status::Healthy,
            at(3600),
            Duration::from_secs(3600),
        );
        assert_eq!(uptime.covered, Duration::from_secs(3600));
        assert_eq!(uptime.critical, Duration::from_secs(300));
        assert_eq!(uptime.healthy, Duration::from_secs(3300));
        // Before the start nothing is known: the day's window covers the hour.
        let day = history.uptime(
            Some(Subsystem::Caches),
            Status::Healthy,
            at(3600),
            Duration::from_secs(86_400),
        );
        assert_eq!(day.covered, Duration::from_secs(3600));
        assert!((day.share(Status::Critical) - 300.0 / 3600.0).abs() < 1e-9);
        // Another name has no transitions: all its time is its current status.
        let system = history.uptime(None, Status::Warning, at(3600), Duration::from_secs(3600));
        assert_eq!(system.warning, Duration::from_secs(3600));
    }

    #[test]
    fn the_bounds_drop_the_oldest() {
        let config = HistoryConfig {
            max_transitions: NonZeroUsize::new(3).expect("not zero"),
            max_age_secs: 1000,
            path: None,
        };
        let mut history = History::new(&config, at(0));
        for i in 0..5 {
            history.record(change(i * 10, Status::Healthy, Status::Warning));
        }
        let kept: Vec<SystemTime> = history.iter().map(|t| t.at).collect();
        assert_eq!(kept, vec![at(20), at(30), at(40)]);
        history.record(change(1035, Status::Warning, Status::Healthy));
        let kept: Vec<SystemTime> = history.iter().map(|t| t.at).collect();
        assert_eq!(kept, vec![at(40), at(1035)], "older than max_age_secs");
        // Uptime only counts what is known: since the newest dropped transition.
        let uptime = history.uptime(
            Some(Subsystem::Caches),
            Status::Healthy,
            at(1100),
            Duration::from_secs(3600),
        );
        assert_eq!(uptime.covered, Duration::from_secs(1100 - 30));
    }

    #[test]
    fn times_are_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_473_036_123);
        assert_eq!(rfc3339(at), "2026-11-23T22:30:36.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let micros = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_473_036_123_456);
        assert_eq!(rfc3339(micros), "2026-11-23T22:30:36.123Z");
    }

    #[test]
    fn codes_added_and_removed_share_one_list() {
        let t = Transition::new(
            at(0),
            None,
            (Status::Healthy, Status::Critical),
            20,
            &[Code::DsPoolSaturated],
            &[Code::CacheLowHitRate],
        );
        assert_eq!(t.added(), &[Code::DsPoolSaturated]);
        assert_eq!(t.removed(), &[Code::CacheLowHitRate]);
        assert_eq!(t.key(), "system");
    }
}
