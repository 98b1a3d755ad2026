//! Nothing a client sends can panic validation, the store or scoring: arbitrary pushes either
//! apply or fail with a FieldError, and every report built afterwards keeps finite metrics.

use std::time::{Duration, Instant, SystemTime};

use healthscore::{
    inputs::from_wire,
    model::{Limits, Policy, Store, Subsystem},
    proto::v1,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("db".to_owned()),
        "[a-z\\n ]{0,4}",
        ".{0,300}"
    ]
}

fn optional_flag() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![Just(None), Just(Some(true)), Just(Some(false))]
}

fn request() -> impl Strategy<Value = v1::ReportMetricsRequest> {
    let pool = (
        name(),
        optional_flag(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(name, started, active, idle, max, threads_awaiting)| {
            v1::DatasourceSnapshot {
                name,
                started,
                active,
                idle,
                max,
                threads_awaiting,
            }
        });
    let cache = (
        name(),
        optional_flag(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(name, enabled, hits, misses, evictions, size, max_size)| {
            v1::CacheSnapshot {
                name,
                enabled,
                hits,
                misses,
                evictions,
                size,
                max_size,
            }
        });
    let web = (
        name(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(
                name,
                busy_workers,
                max_workers,
                queued,
                queue_capacity,
                requests,
                errors,
                connections,
            )| {
                v1::WebServerSnapshot {
                    name,
                    busy_workers,
                    max_workers,
                    queued,
                    queue_capacity,
                    requests,
                    errors,
                    connections,
                }
            },
        );
    let executor = (
        name(),
        any::<i32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(name, state, active, max_threads, queued, queue_capacity)| v1::ExecutorSnapshot {
                name,
                state,
                active,
                max_threads,
                queued,
                queue_capacity,
            },
        );
    let ttl = prop_oneof![
        Just(None),
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| Some(prost_types::Duration { seconds, nanos })),
    ];
    (
        name(),
        any::<u64>(),
        ttl,
        prop::collection::vec(pool, 0..4),
        prop::collection::vec(cache, 0..4),
        prop::collection::vec(web, 0..4),
        prop::collection::vec(executor, 0..4),
    )
        .prop_map(
            |(source, sequence, ttl, datasources, caches, web_servers, executors)| {
                v1::ReportMetricsRequest {
                    source,
                    sequence,
                    ttl,
                    datasources,
                    caches,
                    web_servers,
                    executors,
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_pushes_never_panic_and_reports_stay_finite(
        requests in prop::collection::vec(request(), 1..6),
        later_secs in 0u64..100_000,
    ) {
        let mut store = Store::new(Limits::default(), Policy::default());
        let start = Instant::now();
        for request in requests {
            match from_wire(request, &Limits::default(), SystemTime::now()) {
                Ok(push) => {
                    // Limits may still refuse it; either way nothing panics.
                    let _ = store.apply(push, start);
                }
                Err(error) => prop_assert!(!error.field.is_empty()),
            }
        }
        let later = start + Duration::from_secs(later_secs);
        store.expire(later);
        for subsystem in Subsystem::ALL {
            let report = store.report(subsystem);
            prop_assert!(report.score <= 100);
            for entity in &report.entities {
                prop_assert!(entity.metrics.iter().all(|(_, v)| v.is_finite()));
            }
        }
    }
}
