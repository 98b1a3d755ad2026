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
use healthscore::service::{Config, Profile, Target};

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
    let series = format!("healthscore_sd_refreshes_total{{scrape=\"{name}\",result=\"{result}\"}}");
    common::series_value(&metrics, &series) as u64
}

/// Waits up to 10 s for `name`'s target list to have failed to read at least `at_least` times;
/// how many times it has.
async fn failed_refreshes(server: &TestServer, name: &str, at_least: u64) -> u64 {
    common::eventually(
        Duration::from_secs(10),
        &format!("{at_least} failed reads of the target list of {name}"),
        move || async move {
            let failed = refreshes(server, name, "failed").await;
            (failed >= at_least).then_some(failed)
        },
    )
    .await
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
    let failed = failed_refreshes(&server, "apps", 1).await;
    // Refreshes run one after another, each reading the bad file again: a second failure is
    // counted only once the first one's refresh is over, whatever it did to the sources.
    failed_refreshes(&server, "apps", failed + 1).await;
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
    let failed = failed_refreshes(&server, "allocated", 1).await;
    // As above: a second failed fetch means the first one's refresh is over.
    failed_refreshes(&server, "allocated", failed + 1).await;
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
    shard.shard_count = 2.try_into().expect("not zero");
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

/// An https target answering the exposition only to `authorization: Bearer {TOKEN}`, with a
/// certificate for 127.0.0.1 signed by a CA written to `dir/ca.pem`.
async fn tls_app(dir: &Dir) -> SocketAddr {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls;
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
    let key = KeyPair::generate().expect("key");
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("sign");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![certificate.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
    )
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let router = Router::new().route(
        "/actuator/prometheus",
        get(|headers: axum::http::HeaderMap| async move {
            let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
            if bearer == Some(&format!("Bearer {TOKEN}")) {
                Ok(EXPOSITION)
            } else {
                Err(axum::http::StatusCode::UNAUTHORIZED)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

const TOKEN: &str = "scrape-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn https_targets_are_read_with_the_ca_and_token_and_their_labels_are_shown() {
    let dir = Dir::new("https-sd");
    let app = tls_app(&dir).await;
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token");
    // `source` clashes with healthscore's own label: exported as `exported_source`.
    dir.write(
        "targets.json",
        &format!(
            r#"[{{"targets": ["{app}"], "labels": {{"__scheme__": "https",
                "__metrics_path__": "/actuator/prometheus", "team": "orders", "source": "k8s"}}}}]"#
        ),
    );
    let mut target = scrape("secure");
    target.file_sd = vec![format!("{}/*.json", dir.path().display())];
    target.ca = Some(dir.path().join("ca.pem"));
    target.token_file = Some(dir.path().join("token"));
    target.labels = [("env".to_owned(), "prod".to_owned())].into();
    let server = server_with(target).await;
    let source = format!("scrape:secure/{app}");
    until_sources(&server, &[source.clone()].into()).await;

    let report = http_get(server.http, "/v1/health/datasources", None)
        .await
        .json();
    assert_eq!(
        report["entities"][0]["labels"],
        serde_json::json!({"env": "prod", "source": "k8s", "team": "orders"})
    );
    let metrics = http_get(server.http, "/metrics", None).await.body;
    let stale = format!(
        "healthscore_source_stale{{source=\"{source}\",env=\"prod\",exported_source=\"k8s\",team=\"orders\"}} 0"
    );
    assert!(metrics.contains(&stale), "no {stale} in\n{metrics}");
    assert!(metrics.contains("healthscore_scrape_duration_seconds_count{scrape=\"secure\"}"));

    let entities = server
        .reports()
        .get_datasource_health(healthscore::proto::v1::GetDatasourceHealthRequest::default())
        .await
        .expect("report")
        .into_inner()
        .report
        .expect("a report")
        .entities;
    assert_eq!(
        entities[0].labels.get("team").map(String::as_str),
        Some("orders")
    );
}

#[tokio::test]
async fn https_without_a_ca_and_bad_labels_are_refused_by_key() {
    let mut config = Config::default();
    let mut https = scrape("x");
    https.url = Some("https://127.0.0.1:1/metrics".into());
    let mut labels = scrape("y");
    labels.url = Some("http://127.0.0.1:1/metrics".into());
    labels.labels = [("bad-name".to_owned(), "v".to_owned())].into();
    for (target, key) in [
        (https, "scrape[0].ca"),
        (labels, "scrape[0].labels.bad-name"),
    ] {
        config.scrape = vec![target];
        let error = config.validate().expect_err("refused").to_string();
        assert!(error.starts_with(&format!("config key {key}:")), "{error}");
    }
}
