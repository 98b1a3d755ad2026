//! The fleet guard's pure part: the peers' view (how many of this service's other instances
//! fail each probe name, as read from the user's Prometheus), the label selector that picks
//! them, and the rule that holds a name SERVING when its failure is shared.
//!
//! Ejecting a replica cannot fix a failure every replica shares (a slow database): Envoy's
//! panic threshold and Eureka's self-preservation stop it, and so does this. The guard never
//! turns a name NOT_SERVING; it only holds names in.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

/// How many of the other instances fail one probe name, and how many report it at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCount {
    pub failing: u32,
    pub peers: u32,
}

/// What the last read of the peers gave.
#[derive(Clone, Debug, PartialEq)]
pub enum FleetView {
    /// Read at `at`: per probe name, the other instances' counts (this one left out: its own
    /// status is known here, and fresher).
    Seen {
        at: Instant,
        names: BTreeMap<String, PeerCount>,
    },
    /// Prometheus could not be read, or answered nothing for the selector.
    Unavailable { reason: String },
}

/// The guard's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guard {
    /// Above this share of the instances (this one included) failing the same name, nobody
    /// leaves.
    pub max_unready_fraction: f64,
    /// A view older than this is no view: the refresh stopped working.
    pub stale_after: Duration,
}

/// What the guard says about one failing name.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The failure is shared: `failing` of `peers` instances (this one included) fail it.
    Held { failing: u32, peers: u32 },
    /// The failure is this instance's own: the local verdict applies.
    Local { failing: u32, peers: u32 },
    /// No view to decide by: the local verdict applies.
    Unavailable { reason: String },
}

impl Guard {
    /// The verdict on `name`, failing here, by `view` at `now`.
    pub fn judge(&self, view: &FleetView, name: &str, now: Instant) -> Verdict {
        let names = match view {
            FleetView::Unavailable { reason } => {
                return Verdict::Unavailable {
                    reason: reason.clone(),
                }
            }
            FleetView::Seen { at, .. } if now.saturating_duration_since(*at) > self.stale_after => {
                return Verdict::Unavailable {
                    reason: format!(
                        "the peers' view is {:.0}s old",
                        now.saturating_duration_since(*at).as_secs_f64()
                    ),
                }
            }
            FleetView::Seen { names, .. } => names,
        };
        let others = names.get(name).copied().unwrap_or_default();
        if others.peers == 0 {
            // Alone, every failure would look shared.
            return Verdict::Unavailable {
                reason: format!("no other instance reports the probe name {name:?}"),
            };
        }
        let failing = others.failing.saturating_add(1);
        let peers = others.peers.saturating_add(1);
        if f64::from(failing) / f64::from(peers) > self.max_unready_fraction {
            Verdict::Held { failing, peers }
        } else {
            Verdict::Local { failing, peers }
        }
    }
}

/// The message of a FLEET_CORRELATED issue.
pub fn correlated_message(name: &str, failing: u32, peers: u32, since: SystemTime) -> String {
    let since = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{failing} of {peers} instances fail the probe name {name:?} (since unix time {since}): \
         a shared failure, so this instance stays SERVING"
    )
}

/// Checks a PromQL label selector's matchers (`job="healthscore", app=~"orders|billing"`),
/// without the braces: what goes between `{` and `}` of a vector selector.
pub fn check_selector(text: &str) -> Result<(), String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("selects nothing: give at least one matcher, e.g. job=\"healthscore\"".into());
    }
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_end);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("expected a label name at {rest:?}"));
        }
        let after = after.trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| after.starts_with(op))
            .ok_or_else(|| format!("expected =, !=, =~ or !~ after {name:?}"))?;
        let after = after[op.len()..].trim_start();
        let value_end = quoted_end(after).ok_or_else(|| {
            format!("expected a quoted value after {name}{op}, as in {name}{op}\"value\"")
        })?;
        rest = after[value_end..].trim_start();
        if let Some(next) = rest.strip_prefix(',') {
            rest = next.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("expected a comma before {rest:?}"));
        }
    }
    Ok(())
}

/// The byte length of the double- or single-quoted string (backslash escapes) `text` starts
/// with.
fn quoted_end(text: &str) -> Option<usize> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut escaped = false;
    for (index, c) in text.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, c) if c == quote => return Some(index + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_checked() {
        for good in [
            r#"job="healthscore""#,
            r#"job="healthscore", app=~"orders|billing""#,
            r#" job = 'a' , env!="dev",x!~"y\"z" "#,
            r#"job="healthscore","#,
        ] {
            assert_eq!(check_selector(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "job",
            "job=healthscore",
            r#"job="healthscore" app="x""#,
            r#"job="unterminated"#,
            r#"{job="x"}"#,
            r#"9job="x""#,
        ] {
            assert!(check_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_shared_failure_is_held_and_a_lone_one_is_not() {
        let guard = Guard {
            max_unready_fraction: 0.5,
            stale_after: Duration::from_secs(30),
        };
        let now = Instant::now();
        let view = |failing, peers| FleetView::Seen {
            at: now,
            names: [("".to_owned(), PeerCount { failing, peers })].into(),
        };
        // 5 of 5 fail (4 others and this one).
        assert_eq!(
            guard.judge(&view(4, 4), "", now),
            Verdict::Held {
                failing: 5,
                peers: 5
            }
        );
        // 1 of 5: its own failure.
        assert_eq!(
            guard.judge(&view(0, 4), "", now),
            Verdict::Local {
                failing: 1,
                peers: 5
            }
        );
        // Exactly the fraction does not hold: "above" it does.
        assert!(matches!(
            guard.judge(&view(1, 3), "", now),
            Verdict::Local { .. }
        ));
        // Alone, every failure would look shared: no view.
        let unseen = guard.judge(&view(4, 4), "caches", now);
        assert!(matches!(unseen, Verdict::Unavailable { .. }), "{unseen:?}");
        let old = guard.judge(&view(4, 4), "", now + Duration::from_secs(31));
        assert!(matches!(old, Verdict::Unavailable { .. }), "{old:?}");
    }
}
