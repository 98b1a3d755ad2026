//! The scoring core and the engine's write path, measured in-process.
//!
//! - scoring 10,000 datasource entities, all healthy and with 10% raising issues
//!   (target: 10,000 healthy entities in under 1 ms);
//! - the system aggregate over 9 subsystems;
//! - one ReportMetrics of 100 entities applied to a running engine (store, recompute, publish).
//!
//! Measured under the allocator settings `healthscore serve` runs with
//! (`allocator::tune_for_server`); with glibc's defaults, scoring 10,000 entities costs about
//! twice as much, in page faults.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Instant, SystemTime},
};

use criterion::{criterion_group, criterion_main, Criterion};
use healthscore::{
    model::{
        subsystem_report, system_report, DatasourceSnapshot, Engine, HealthReport, History, Limits,
        Observed, Policy, Push, Store, Subsystem,
    },
    service::{tune_for_server, Config},
};

fn pools(count: usize, with_issues_every: Option<usize>) -> Vec<DatasourceSnapshot> {
    (0..count)
        .map(|i| {
            let troubled = with_issues_every.is_some_and(|every| i % every == 0);
            DatasourceSnapshot {
                name: format!("pool-{i:05}").into(),
                started: true,
                active: if troubled { 31 } else { 8 },
                idle: 4,
                max: 32,
                threads_awaiting: u32::from(troubled),
            }
        })
        .collect()
}

fn score(snapshots: &[DatasourceSnapshot], policy: &Policy) -> HealthReport {
    let source: Arc<str> = "bench".into();
    subsystem_report(
        snapshots.iter().map(|current| Observed {
            source: &source,
            current,
            previous: None,
            stale: None,
        }),
        policy,
    )
}

fn scoring(c: &mut Criterion) {
    tune_for_server();
    let policy = Policy::default();
    let healthy = pools(10_000, None);
    let troubled = pools(10_000, Some(10));
    c.bench_function("score 10,000 healthy entities", |b| {
        b.iter(|| score(black_box(&healthy), &policy))
    });
    c.bench_function("score 10,000 entities, 10% with issues", |b| {
        b.iter(|| score(black_box(&troubled), &policy))
    });
    let report = Arc::new(score(&pools(1_000, Some(10)), &policy));
    let reports: Vec<Arc<HealthReport>> = Subsystem::ALL.iter().map(|_| report.clone()).collect();
    c.bench_function(
        "system aggregate over 9 subsystems (1,000 entities, 200 issues each)",
        |b| b.iter(|| system_report(black_box(&reports))),
    );
}

fn engine_push(c: &mut Criterion) {
    tune_for_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = runtime.block_on(async {
        Engine::start(
            Store::new(Limits::default(), Policy::default()),
            Config::default()
                .engine(History::new(&Default::default(), SystemTime::now()), None)
                .expect("the default config is valid"),
        )
        .expect("the engine starts")
    });
    let push = Push {
        source: "bench".into(),
        datasources: Some(pools(100, Some(10))),
        ..Push::default()
    };
    c.bench_function(
        "engine: apply ReportMetrics of 100 entities (store + recompute + publish)",
        |b| {
            b.iter_custom(|iterations| {
                let start = Instant::now();
                for _ in 0..iterations {
                    runtime
                        .block_on(engine.push(push.clone()))
                        .expect("valid push");
                }
                start.elapsed()
            })
        },
    );
}

criterion_group!(benches, scoring, engine_push);
criterion_main!(benches);
