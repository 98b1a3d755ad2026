//! The real host sampler against this machine.

mod common;

use common::{next, TestServer};
use healthscore::{config::Config, proto::v1};

#[tokio::test]
async fn host_report_has_cpu_memory_and_root_with_sane_values() {
    let mut config = Config::default();
    config.server.shutdown_grace_secs = 0;
    config.host.interval_secs = 1;
    config.host.cpu_window_secs = 3;
    let server = TestServer::start_with(config).await;
    let mut watch = server
        .reports()
        .watch_health(v1::WatchHealthRequest {
            subsystems: vec!["host".into()],
            options: None,
        })
        .await
        .expect("watch host")
        .into_inner();
    // The first message may predate the first sample; the sampler's arrival is a change.
    let mut host = next(&mut watch, 5)
        .await
        .report()
        .expect("report")
        .subsystems["host"]
        .clone();
    if !host.available {
        host = next(&mut watch, 5)
            .await
            .report()
            .expect("report")
            .subsystems["host"]
            .clone();
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
