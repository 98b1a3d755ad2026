//! Targets from Prometheus' discovery formats, scraped from real HTTP servers in the test:
//! `file_sd` files (JSON and YAML) and an `http_sd` endpoint. Each target is its own source; one
//! that leaves the list is forgotten; a list that cannot be read changes nothing.

mod common;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, routing::get, Router};
use common::{http_get, TestServer};
use healthscore::{
    config::Config,
    sources::scrape::{Profile, Target},
};

const EXPOSITION: &str = "hikaricp_connections_active{pool=\"HikariPool-1\"} 5.0\n\
     hikaricp_connections_idle{pool=\"HikariPool-1\"} 1.0\n\
     hikaricp_connections_max{pool=\"HikariPool-1\"} 32.0\n";

/// A target server on 127.0.0.1:0 answering a Micrometer exposition.
async fn app() -> SocketAddr {
    let router = Router::new().route("/actuator/prometheus", get(|| async { EXPOSITION }));
    serve(router).await
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Target groups in Prometheus' JSON format.
fn groups(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"[{{"targets": [{}], "labels": {{"__metrics_path__": "/actuator/prometheus", "team": "orders"}}}}]"#,
        targets.join(", ")
    )
}

fn scrape(name: &str) -> Target {
    Target {
        name: name.into(),
        refresh_secs: 1,
        interval_secs: 1,
        timeout_secs: 1,
        profile: Some(Profile::Micrometer),
        ..Target::default()
    }
}

async fn server_with(target: Target) -> TestServer {
    let mut config = common::config();
    config.scrape.push(target);
    config.validate().expect("a valid config");
    TestServer::start_with(config).await
}

/// The sources the datasources report has entities of.
async fn sources(server: &TestServer) -> BTreeSet<String> {
    let report = http_get(server.http, "/v1/health/datasources", None)
        .await
        .json();
    report["entities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["source"].as_str().map(str::to_owned))
        .collect()
}

fn expected(name: &str, targets: &[SocketAddr]) -> BTreeSet<String> {
    targets
        .iter()
        .map(|t| format!("scrape:{name}/{t}"))
        .collect()
}

/// Waits up to 10 s for the sources to be `want`.
async fn until_sources(server: &TestServer, want: &BTreeSet<String>) {
    let mut seen = sources(server).await;
    for _ in 0..100 {
        if &seen == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = sources(server).await;
    }
    panic!("sources {seen:?}, expected {want:?}");
}

async fn refreshes(server: &TestServer, name: &str, result: &str) -> u64 {
    let metrics = http_get(server.http, "/metrics", None).await.body;
    let series =
        format!("healthscore_sd_refreshes_total{{scrape=\"{name}\",result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("healthscore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// Writes `text` to `file` whole (a rename, as ConfigMap updates do).
    fn write(&self, file: &str, text: &str) {
        let scratch = self.0.join(format!(".{file}.tmp"));
        std::fs::write(&scratch, text).expect("write");
        std::fs::rename(&scratch, self.0.join(file)).expect("rename");
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_sd_targets_come_and_go_and_a_bad_file_changes_nothing() {
    let apps = [app().await, app().await, app().await];
    let dir = Dir::new("file-sd");
    dir.write("a.json", &groups(&apps));
    let mut target = scrape("apps");
    target.file_sd = vec![
        format!("{}/*.json", dir.path().display()),
        format!("{}/*.yaml", dir.path().display()),
    ];
    let server = server_with(target).await;
    until_sources(&server, &expected("apps", &apps)).await;

    // One target leaves the file: its source is forgotten.
    dir.write("a.json", &groups(&apps[..2]));
    until_sources(&server, &expected("apps", &apps[..2])).await;

    // A new YAML file under the glob brings it back.
    let yaml = format!(
        "- targets: ['{}']\n  labels:\n    __metrics_path__: /actuator/prometheus\n",
        apps[2]
    );
    dir.write("b.yaml", &yaml);
    until_sources(&server, &expected("apps", &apps)).await;

    // A malformed file: the last list stays, and the failure is counted.
    dir.write("a.json", "[{\"targets\": ");
    for _ in 0..50 {
        if refreshes(&server, "apps", "failed").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refreshes(&server, "apps", "failed").await > 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sources(&server).await, expected("apps", &apps));
}

#[tokio::test(flavor = "multi_thread")]
async fn http_sd_gives_the_same_sources_and_a_bad_answer_changes_nothing() {
    let apps = [app().await, app().await, app().await];
    let answer = Arc::new(Mutex::new(groups(&apps)));
    let sd = serve(
        Router::new()
            .route(
                "/targets",
                get(|State(answer): State<Arc<Mutex<String>>>| async move {
                    answer.lock().expect("lock").clone()
                }),
            )
            .with_state(answer.clone()),
    )
    .await;
    let mut target = scrape("allocated");
    target.http_sd = Some(format!("http://{sd}/targets"));
    let server = server_with(target).await;
    until_sources(&server, &expected("allocated", &apps)).await;

    *answer.lock().expect("lock") = "not json".into();
    for _ in 0..50 {
        if refreshes(&server, "allocated", "failed").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refreshes(&server, "allocated", "failed").await > 0);
    assert_eq!(sources(&server).await, expected("allocated", &apps));

    *answer.lock().expect("lock") = groups(&apps[1..]);
    until_sources(&server, &expected("allocated", &apps[1..])).await;
}

#[tokio::test]
async fn discovery_keys_are_checked_by_name() {
    let mut config = Config::default();
    let mut both = scrape("x");
    both.url = Some("http://127.0.0.1:1/metrics".into());
    both.file_sd = vec!["/tmp/*.json".into()];
    let mut shard = scrape("y");
    shard.http_sd = Some("http://127.0.0.1:1/targets".into());
    shard.shard_count = 2;
    shard.shard_index = 2;
    let mut glob = scrape("z");
    glob.file_sd = vec!["/etc/*/targets.json".into()];
    for (target, key) in [
        (both, "scrape[0].url"),
        (shard, "scrape[0].shard_index"),
        (glob, "scrape[0].file_sd[0]"),
    ] {
        config.scrape = vec![target];
        let error = config.validate().expect_err("refused").to_string();
        assert!(error.starts_with(&format!("config key {key}:")), "{error}");
    }
}
