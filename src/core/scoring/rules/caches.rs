//! Cache rules: CACHE_*. Hit rate and evictions are read over the window since the cache's
//! previous snapshot.


use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::{
    refusal::FieldError,
    scoring::{
        catalog::Code,
        policy::{percentages, PolicyError, Thresholds, Validate},
        snapshot::{at_most, percent, window, CacheSnapshot, Evaluation, Snapshot},
    },
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CacheThresholds {
    /// CACHE_LOW_HIT_RATE when the window's hit rate is below this percentage...
    pub low_hit_rate: f64,
    /// ...over at least this many lookups, so a cold cache is not flagged.
    pub min_lookups: u64,
}

impl Default for CacheThresholds {
    fn default() -> Self {
        Self {
            low_hit_rate: 30.0,
            min_lookups: 100,
        }
    }
}

impl Validate for CacheThresholds {
    fn validate(&self, key: &str) -> Result<(), PolicyError> {
        percentages(key, &[("low_hit_rate", self.low_hit_rate)])
    }
}

impl Snapshot for CacheSnapshot {
    fn check(&self) -> Result<(), FieldError> {
        at_most("size", self.size, "max_size", self.max_size)
    }

    fn evaluate(&self, previous: Option<&Self>, t: &Thresholds) -> Evaluation {
        let t = &t.caches;
        let name = &self.name;
        let mut e = Evaluation::default();
        let hits = window(self.hits, previous.map(|p| p.hits));
        let misses = window(self.misses, previous.map(|p| p.misses));
        let evictions = window(self.evictions, previous.map(|p| p.evictions));
        // Summed wide: two counters near u64::MAX must not saturate into a 100% hit rate.
        let lookups = u128::from(hits) + u128::from(misses);
        e.metrics.set("enabled", f64::from(u8::from(self.enabled)));
        e.metrics.set("hits", hits as f64);
        e.metrics.set("misses", misses as f64);
        e.metrics.set("evictions", evictions as f64);
        e.metrics.set("size", self.size as f64);
        e.metrics.set("maxSize", self.max_size as f64);
        if !self.enabled {
            e.fire(
                Code::CacheDisabled,
                format!("Cache '{name}' is disabled"),
                &["enabled"],
            );
        }
        if let Some(hit_rate) = percent(hits as f64, lookups as f64) {
            e.metrics.set("hitRate", hit_rate);
            if lookups >= u128::from(t.min_lookups) && hit_rate < t.low_hit_rate {
                e.fire(
                    Code::CacheLowHitRate,
                    format!(
                        "Cache '{name}' hit rate is {hit_rate:.1}% ({hits} of {lookups} lookups)"
                    ),
                    &["hitRate", "hits", "misses"],
                );
            }
        }
        // Thrashing: the cache evicted at least as many entries as it can hold in one window.
        let capacity = if self.max_size > 0 {
            self.max_size
        } else {
            self.size
        };
        if evictions > 0 && evictions >= capacity {
            e.fire(
                Code::CacheHighEvictions,
                format!("Cache '{name}' evicted {evictions} entries, more than its capacity of {capacity}"),
                &["evictions", "size", "maxSize"],
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(hits: u64, misses: u64, evictions: u64) -> CacheSnapshot {
        CacheSnapshot {
            name: "users".into(),
            enabled: true,
            hits,
            misses,
            evictions,
            size: 500,
            max_size: 1000,
        }
    }

    fn codes(s: &CacheSnapshot, previous: Option<&CacheSnapshot>) -> Vec<Code> {
        s.evaluate(previous, &Thresholds::default()).codes()
    }

    #[test]
    fn hit_rate_bands_with_minimum_lookups() {
        for (hits, misses, expected) in [
            (30, 70, vec![]),                      // exactly 30%: not below
            (29, 71, vec![Code::CacheLowHitRate]), // 29% of 100 lookups
            (0, 99, vec![]),                       // 0% but only 99 lookups
            (0, 100, vec![Code::CacheLowHitRate]), // 0% over 100 lookups
            (0, 0, vec![]),                        // no lookups: no rate at all
        ] {
            assert_eq!(
                codes(&cache(hits, misses, 0), None),
                expected,
                "{hits}/{misses}"
            );
        }
    }

    #[test]
    fn huge_counters_do_not_saturate_into_a_perfect_hit_rate() {
        let e = cache(u64::MAX, u64::MAX, 0).evaluate(None, &Thresholds::default());
        assert_eq!(e.metrics.get("hitRate"), Some(50.0));
    }

    #[test]
    fn hit_rate_uses_the_window_since_previous_snapshot() {
        // Lifetime rate is 90%, but the last window had 10 hits in 110 lookups.
        let previous = cache(9000, 1000, 0);
        let current = cache(9010, 1100, 0);
        let e = current.evaluate(Some(&previous), &Thresholds::default());
        assert_eq!(e.codes(), vec![Code::CacheLowHitRate]);
        assert_eq!(e.metrics.get("hitRate"), Some(9.1));
    }

    #[test]
    fn counter_reset_uses_new_totals() {
        let previous = cache(9000, 1000, 0);
        let restarted = cache(90, 10, 0);
        let e = restarted.evaluate(Some(&previous), &Thresholds::default());
        assert_eq!(e.metrics.get("hits"), Some(90.0));
        assert_eq!(e.codes(), vec![]);
    }

    #[test]
    fn evictions_at_capacity_are_thrashing() {
        let previous = cache(1000, 0, 100);
        assert_eq!(codes(&cache(1000, 0, 1099), Some(&previous)), vec![]);
        assert_eq!(
            codes(&cache(1000, 0, 1100), Some(&previous)),
            vec![Code::CacheHighEvictions]
        );
    }

    #[test]
    fn unbounded_empty_cache_without_evictions_is_fine() {
        let mut s = cache(0, 0, 0);
        s.size = 0;
        s.max_size = 0;
        let e = s.evaluate(None, &Thresholds::default());
        assert!(e.findings.is_empty());
        assert!(e.metrics.iter().all(|(_, v)| v.is_finite()));
    }

    #[test]
    fn disabled_cache_is_flagged() {
        let mut s = cache(0, 0, 0);
        s.enabled = false;
        assert_eq!(codes(&s, None), vec![Code::CacheDisabled]);
    }
}
