//! The real host sampler against this machine.

mod common;

use common::TestServer;
use healthscore::{proto::v1, service::Config};

#[tokio::test]
async fn host_report_has_cpu_memory_and_root_with_sane_values() {
    let mut config = Config::default();
    config.server.shutdown_grace_secs = 0;
    config.host.interval_secs = 1;
    config.host.cpu_window_secs = 3;
    let server = TestServer::start_with(config).await;
    // Memory and disks are sampled before the port opens; CPU joins once sysinfo has a
    // baseline, which changes no verdict (so no WatchHealth message): poll for it.
    let mut host = host_report(&server).await;
    for _ in 0..50 {
        if host.entities.iter().any(|e| e.name == "cpu") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        host = host_report(&server).await;
    }
    assert!(host.available);
    let entity = |name: &str| {
        host.entities
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} entity in {:?}", host.entities))
    };
    let cpu = entity("cpu");
    let memory = entity("memory");
    let root = entity("/");
    for e in [cpu, memory, root] {
        assert_eq!(e.source, "host");
        assert!(!e.stale);
        assert!(
            e.metrics.values().all(|v| v.is_finite() && *v >= 0.0),
            "{e:?}"
        );
        let usage = e.metrics["usage"];
        assert!((0.0..=100.0).contains(&usage), "{} usage {usage}", e.name);
    }
    assert!(cpu.metrics["cores"] >= 1.0);
    assert!(memory.metrics["totalBytes"] > 0.0);
    assert!(root.metrics["totalBytes"] > 0.0);
    assert!(root.metrics["usedBytes"] <= root.metrics["totalBytes"]);
    assert!(
        host.entities
            .iter()
            .all(|e| !e.name.starts_with("/proc") && !e.name.starts_with("/sys")),
        "pseudo filesystems are skipped: {:?}",
        host.entities.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
}

async fn host_report(server: &TestServer) -> v1::HealthReport {
    server
        .reports()
        .get_host_health(v1::GetHostHealthRequest::default())
        .await
        .expect("GetHostHealth")
        .into_inner()
        .report
        .expect("a report")
}

#[tokio::test]
async fn host_memory_and_disks_are_there_when_the_port_opens() {
    let mut config = Config::default();
    config.server.shutdown_grace_secs = 0;
    let server = TestServer::start_with(config).await;
    let host = host_report(&server).await;
    assert!(host.available, "{host:?}");
    let names: Vec<_> = host.entities.iter().map(|e| e.name.as_str()).collect();
    assert!(
        names.contains(&"memory") && names.contains(&"/"),
        "{names:?}"
    );
}

/// The counter `healthscore_host_samples_total{result="<result>"}` in `/metrics`.
async fn host_samples(server: &TestServer, result: &str) -> u64 {
    let metrics = common::http_get(server.http, "/metrics", None).await;
    let line = format!("healthscore_host_samples_total{{result=\"{result}\"}} ");
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in {}", metrics.body))
}

#[tokio::test]
async fn a_refused_host_sample_is_counted_and_the_next_one_is_taken() {
    let mut config = Config::default();
    config.server.shutdown_grace_secs = 0;
    config.host.interval_secs = 1;
    // Memory plus at least the root filesystem: every sample is over this limit.
    config.limits.max_entities_per_request = 1;
    let server = TestServer::start_with(config).await;
    let mut refused = host_samples(&server, "invalid").await;
    assert!(
        refused >= 1,
        "the first sample is refused and serving starts"
    );
    for _ in 0..100 {
        if refused >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        refused = host_samples(&server, "invalid").await;
    }
    assert!(refused >= 3, "the sampler kept sampling: {refused} refused");
    assert_eq!(host_samples(&server, "accepted").await, 0);
}
