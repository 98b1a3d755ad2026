//! Every decoder the server or the CLI exposes to the network or to files, fed arbitrary and
//! mutated input: nothing panics, and input that is refused changes nothing.

use std::time::{Instant, SystemTime};

use healthscore::{
    inputs::{from_wire, host_entities, parse_exposition, snapshots, Mapping},
    model::{FieldError, HealthReport, Limits, Policy, Push, PushBuilder, Store, Subsystem},
    proto::v1,
    service::Config,
};
use proptest::prelude::*;
use prost::Message;

fn valid_request() -> v1::ReportMetricsRequest {
    v1::ReportMetricsRequest {
        source: "app-1".into(),
        sequence: 3,
        ttl: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
        started_at: Some(prost_types::Timestamp::from(SystemTime::now())),
        datasources: vec![v1::DatasourceSnapshot {
            name: "db".into(),
            active: 30,
            max: 32,
            ..Default::default()
        }],
        caches: vec![v1::CacheSnapshot {
            name: "c".into(),
            hits: 5,
            misses: 200,
            size: 3,
            max_size: 10,
            ..Default::default()
        }],
        executors: vec![v1::ExecutorSnapshot {
            name: "e".into(),
            state: 3,
            active: 1,
            max_threads: 4,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn reports(store: &Store) -> Vec<HealthReport> {
    Subsystem::ALL.iter().map(|&s| store.report(s)).collect()
}

/// A store that already holds the valid request, so refused input has something to spoil.
fn seeded() -> Store {
    let mut store = Store::new(Limits::default(), Policy::default());
    let push = from_wire(valid_request(), &Limits::default(), SystemTime::now())
        .expect("the valid request is valid");
    store.apply(push, Instant::now()).expect("applies");
    store
}

/// Decodes `bytes` as a request and applies it; if anything refuses it, the state is unchanged.
fn feed(store: &mut Store, bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(request) = v1::ReportMetricsRequest::decode(bytes) else {
        return Ok(());
    };
    apply(
        store,
        from_wire(request, &Limits::default(), SystemTime::now()),
    )
}

/// Applies a push that may have been refused already; if anything refuses it, the state is
/// unchanged.
fn apply(store: &mut Store, push: Result<Push, FieldError>) -> Result<(), TestCaseError> {
    let before = reports(store);
    let outcome = push.and_then(|push| store.apply(push, Instant::now()).map(drop));
    if let Err(error) = outcome {
        prop_assert!(!error.field.is_empty());
        prop_assert_eq!(
            reports(store),
            before,
            "refused input changed the state: {}",
            error
        );
    }
    for report in reports(store) {
        prop_assert!(report.score <= 100);
        for entity in &report.entities {
            prop_assert!(entity.metrics.iter().all(|(_, v)| v.is_finite()));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_as_a_push(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        feed(&mut seeded(), &bytes)?;
    }

    #[test]
    fn mutated_valid_pushes(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = valid_request().encode_to_vec();
        for (at, byte) in flips {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        let cut = cut.index(bytes.len() + 1);
        feed(&mut seeded(), &bytes[..cut])?;
    }

    #[test]
    fn arbitrary_text_as_a_snapshot_file(text in ".{0,300}") {
        let _ = snapshots(&text);
    }

    #[test]
    fn mutated_snapshot_files(
        cut in 0usize..200,
        insert in prop::sample::select(vec!["{", "}", "[", "]", ",", "\"", ":", "-1", "1e400", "null", "\"x\""]),
    ) {
        let text = r#"{"datasources": [{"name": "mainDB", "active": 31, "max": 32}], "executors": [{"name": "jobs", "state": "EXECUTOR_STATE_DEGRADED", "maxThreads": 8}]}"#;
        let at = cut.min(text.len());
        let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let mutated = format!("{}{insert}{}", &text[..at], &text[at..]);
        if let Ok(parsed) = snapshots(&mutated) {
            let request = parsed.into_request(v1::ReportMetricsRequest {
                source: "cli".into(),
                ..Default::default()
            });
            feed(&mut seeded(), &request.encode_to_vec())?;
        }
    }

    #[test]
    fn arbitrary_text_as_a_scrape(text in "[a-z_{}=\",. 0-9#\\\n+-]{0,300}") {
        if let Ok(samples) = parse_exposition(&text) {
            let _ = Mapping::micrometer().apply(&samples);
            let _ = host_entities(&samples, None);
        }
    }

    #[test]
    fn mutated_scrapes(
        cut in 0usize..400,
        insert in prop::sample::select(vec!["{", "}", "\"", "\\", ",", "=", " ", "\n", "NaN", "-1", "1e999", "#"]),
    ) {
        let text = "# TYPE hikaricp_connections_active gauge\nhikaricp_connections_active{pool=\"p\"} 31.0\nhikaricp_connections_max{pool=\"p\"} 32\ncache_gets_total{cache=\"c\",result=\"hit\"} 5 1700000000\nnode_filesystem_size_bytes{mountpoint=\"/\",fstype=\"ext4\"} 100\n";
        let at = cut.min(text.len());
        let mutated = format!("{}{insert}{}", &text[..at], &text[at..]);
        if let Ok(samples) = parse_exposition(&mutated) {
            if let Ok((mapped, _)) = Mapping::micrometer().apply(&samples) {
                let limits = Limits::default();
                let push = PushBuilder::new("scrape:fuzz", mapped.entity_count(), &limits)
                    .and_then(|push| mapped.add_to(push))
                    .map(PushBuilder::build);
                apply(&mut seeded(), push)?;
            }
            let _ = host_entities(&samples, None);
        }
    }

    #[test]
    fn arbitrary_config_files(text in "(\\[[a-z_.]{0,12}\\]\n|[a-z_.]{1,20} = (\"[^\"\n]{0,10}\"|-?[0-9]{1,20}|true|false)\n){0,8}") {
        if let Ok(config) = Config::from_toml(&text, "fuzz") {
            prop_assert!(config.validate().is_ok());
        }
    }
}
