//! Inputs beyond push, measured in-process: reading and mapping a 5,000-series Micrometer scrape
//! (target: under 5 ms).

use std::{fmt::Write, hint::black_box};

use criterion::{criterion_group, criterion_main, Criterion};
use healthscore::sources::{exposition, mapping::Mapping};

/// A Spring Boot app's exposition with 5,000 series: 250 pools, caches and executors of
/// Micrometer's names, and the rest series no row reads (as most of a real scrape is).
fn micrometer_scrape() -> String {
    let mut text = String::new();
    for i in 0..250 {
        for (name, value) in [
            ("hikaricp_connections_active", 8),
            ("hikaricp_connections_idle", 4),
            ("hikaricp_connections_max", 32),
            ("hikaricp_connections_pending", 0),
        ] {
            let _ = writeln!(text, "{name}{{pool=\"pool-{i}\"}} {value}.0");
        }
        for result in ["hit", "miss"] {
            let _ = writeln!(
                text,
                "cache_gets_total{{cache=\"cache-{i}\",result=\"{result}\"}} 1000.0"
            );
        }
        let _ = writeln!(text, "cache_size{{cache=\"cache-{i}\"}} 10.0");
        let _ = writeln!(text, "executor_active_threads{{name=\"executor-{i}\"}} 2.0");
    }
    let mut series = text.lines().count();
    let mut i = 0;
    while series < 5_000 {
        let _ = writeln!(
            text,
            "http_server_requests_seconds_bucket{{method=\"GET\",status=\"200\",uri=\"/api/{i}\",le=\"0.1\"}} 42.0"
        );
        series += 1;
        i += 1;
    }
    text
}

fn scrape(c: &mut Criterion) {
    let text = micrometer_scrape();
    let mapping = Mapping::micrometer();
    c.bench_function("read and map a 5,000-series Micrometer scrape", |b| {
        b.iter(|| {
            let samples = exposition::parse(black_box(&text)).expect("valid");
            mapping.apply(&samples).expect("maps")
        })
    });
}

criterion_group!(benches, scrape);
criterion_main!(benches);
