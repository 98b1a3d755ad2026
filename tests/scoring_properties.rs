//! Invariants of the scoring core over random snapshots.

use std::sync::Arc;

use healthscore::model::{
    subsystem_report, system_report, CacheSnapshot, DatasourceSnapshot, HealthReport, Observed,
    Policy, Severity, Status, WebServerSnapshot,
};
use proptest::prelude::*;

fn pool() -> impl Strategy<Value = DatasourceSnapshot> {
    (any::<bool>(), 0u32..200, 0u32..200, 0u32..5).prop_map(|(started, active, max, waiting)| {
        DatasourceSnapshot {
            name: "p".into(),
            started,
            active: active.min(max),
            idle: 0,
            max,
            threads_awaiting: waiting,
        }
    })
}

fn cache() -> impl Strategy<Value = CacheSnapshot> {
    (any::<bool>(), 0u64..500, 0u64..500, 0u64..50, 0u64..100).prop_map(
        |(enabled, hits, misses, evictions, size)| CacheSnapshot {
            name: "c".into(),
            enabled,
            hits,
            misses,
            evictions,
            size,
            max_size: size * 2,
        },
    )
}

fn web() -> impl Strategy<Value = WebServerSnapshot> {
    (
        0u32..100,
        0u32..100,
        0u32..100,
        0u32..100,
        0u64..1000,
        0u64..1000,
        0u32..2000,
    )
        .prop_map(
            |(busy, max, queued, capacity, requests, errors, connections)| WebServerSnapshot {
                name: "w".into(),
                busy_workers: busy.min(max),
                max_workers: max,
                queued,
                queue_capacity: capacity,
                requests,
                errors: errors.min(requests),
                connections,
            },
        )
}

fn named<S: Clone>(list: Vec<S>, rename: impl Fn(&mut S, Arc<str>)) -> Vec<S> {
    list.into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            rename(&mut s, format!("e{i}").into());
            s
        })
        .collect()
}

fn report<S: healthscore::model::Snapshot>(list: &[S], previous: &[S]) -> HealthReport {
    let source: Arc<str> = "src".into();
    subsystem_report(
        list.iter().enumerate().map(|(i, s)| Observed {
            source: &source,
            current: s,
            previous: previous.get(i),
            stale: None,
        }),
        &Policy::default(),
    )
}

fn check_invariants(report: &HealthReport) {
    assert!(report.score <= 100);
    let worst = report
        .issues
        .iter()
        .filter(|i| i.severity > Severity::Info)
        .map(|i| Status::of(i.severity))
        .max()
        .unwrap_or(Status::Healthy);
    assert_eq!(report.status, worst);
    let deducted: u32 = report
        .score_breakdown
        .deductions
        .iter()
        .map(|d| d.penalty)
        .sum();
    assert_eq!(report.score, 100u32.saturating_sub(deducted));
    assert_eq!(report.score_breakdown.deductions.len(), report.issues.len());
    let keys: Vec<_> = report.issues.iter().map(|i| i.order_key()).collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "issues are sorted");
    for entity in &report.entities {
        assert!(entity.metrics.iter().all(|(_, v)| v.is_finite()));
    }
    for issue in &report.issues {
        assert!(issue.entity_metrics.iter().all(|(_, v)| v.is_finite()));
    }
}

proptest! {
    #[test]
    fn reports_keep_their_invariants(
        pools in prop::collection::vec(pool(), 0..8),
        caches in prop::collection::vec(cache(), 0..8),
        previous_caches in prop::collection::vec(cache(), 0..8),
        webs in prop::collection::vec(web(), 0..8),
        previous_webs in prop::collection::vec(web(), 0..8),
    ) {
        let pools = named(pools, |s, n| s.name = n);
        let caches = named(caches, |s, n| s.name = n);
        let webs = named(webs, |s, n| s.name = n);
        let reports = [
            Arc::new(report(&pools, &[])),
            Arc::new(report(&caches, &previous_caches)),
            Arc::new(report(&webs, &previous_webs)),
        ];
        for r in &reports {
            check_invariants(r);
        }
        // Same inputs, same output, in the same order.
        prop_assert_eq!(&*reports[1], &report(&caches, &previous_caches));

        let system = system_report(&reports);
        let weakest = reports.iter().filter(|r| r.available).map(|r| r.score).min().unwrap_or(100);
        prop_assert_eq!(system.score, weakest);
        prop_assert_eq!(system.status, reports.iter().map(|r| r.status).max().unwrap_or(Status::Healthy));
        prop_assert_eq!(system.issues().count(), reports.iter().map(|r| r.issues.len()).sum::<usize>());
        let keys: Vec<_> = system.issues().map(|i| i.order_key()).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]));
    }
}
