//! The Micrometer-named exposition the benchmarks read, shared by `benches/inputs.rs` and
//! `examples/bench_client.rs` (its scrape targets, and the side-by-side run with Prometheus' Go
//! parser in `scripts/parser-vs-go.sh`), so every figure is of the same text.

use std::fmt::Write;

/// A Spring Boot app's exposition of `series` series: `entities` each of pools, caches and
/// executors by Micrometer's names, and the rest histogram buckets no row reads (as most of a
/// real scrape is).
pub fn micrometer(entities: usize, series: usize) -> String {
    let mut text = String::new();
    for i in 0..entities {
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
        let _ = writeln!(
            text,
            "executor_pool_max_threads{{name=\"executor-{i}\"}} 16.0"
        );
    }
    let mut written = text.lines().count();
    let mut i = 0;
    while written < series {
        let _ = writeln!(
            text,
            "http_server_requests_seconds_bucket{{method=\"GET\",status=\"200\",uri=\"/api/{}\",le=\"{}\"}} 42.0",
            i / 10,
            i % 10
        );
        written += 1;
        i += 1;
    }
    text
}
