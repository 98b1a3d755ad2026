//! Scrape targets served by a real HTTP server in the test: Micrometer series become scored
//! snapshots, a silent target goes stale, and bad answers change nothing.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::StatusCode, routing::get, Router};
use common::{http_get, TestServer};
use healthscore::service::{Config, Profile, Target};

/// What the fake target answers: a status, a body and a delay.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    body: Arc<String>,
    delay: Duration,
}

type Shared = Arc<Mutex<Answer>>;

async fn exposition(State(answer): State<Shared>) -> (StatusCode, String) {
    let answer = answer.lock().expect("lock").clone();
    tokio::time::sleep(answer.delay).await;
    (answer.status, answer.body.to_string())
}

/// A target on 127.0.0.1:0 answering what `set` last put in.
async fn target(body: &str) -> (SocketAddr, Shared) {
    target_on("127.0.0.1:0", body).await
}

/// A target on `bind` answering what `set` last put in.
async fn target_on(bind: &str, body: &str) -> (SocketAddr, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Answer {
        status: StatusCode::OK,
        body: Arc::new(body.to_owned()),
        delay: Duration::ZERO,
    }));
    let app = Router::new()
        .route("/actuator/prometheus", get(exposition))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, shared)
}

fn set(shared: &Shared, change: impl FnOnce(&mut Answer)) {
    change(&mut shared.lock().expect("lock"));
}

fn pool(active: u32) -> String {
    format!(
        "# HELP hikaricp_connections_active Active connections\n\
         # TYPE hikaricp_connections_active gauge\n\
         hikaricp_connections_active{{pool=\"HikariPool-1\"}} {active}.0\n\
         hikaricp_connections_idle{{pool=\"HikariPool-1\"}} 1.0\n\
         hikaricp_connections_max{{pool=\"HikariPool-1\"}} 32.0\n\
         cache_gets_total{{cache=\"books\",result=\"hit\"}} 900.0\n\
         cache_gets_total{{cache=\"books\",result=\"miss\"}} 100.0\n\
         process_uptime_seconds 12.5\n"
    )
}

async fn server_scraping(addr: SocketAddr, timeout_secs: u64) -> TestServer {
    let mut config = common::config();
    config.scrape.push(Target {
        name: "orders".into(),
        url: Some(format!("http://{addr}/actuator/prometheus")),
        interval_secs: 1,
        timeout_secs,
        profile: Some(Profile::Micrometer),
        mappings: Vec::new(),
        max_body_bytes: (10 << 20).try_into().expect("not zero"),
        ..Default::default()
    });
    config.validate().expect("a valid config");
    TestServer::start_with(config).await
}

async fn datasources(server: &TestServer) -> serde_json::Value {
    http_get(server.http, "/v1/health/datasources", None)
        .await
        .json()
}

/// Waits up to `secs` for `check` to hold on the datasources report.
async fn eventually(
    server: &TestServer,
    secs: u64,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut report = datasources(server).await;
    for _ in 0..secs * 10 {
        if check(&report) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = datasources(server).await;
    }
    panic!("never happened; last report: {report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn micrometer_series_are_scored_and_a_silent_target_goes_stale() {
    let (addr, shared) = target(&pool(5)).await;
    let server = server_scraping(addr, 1).await;
    let healthy = eventually(&server, 5, |r| r["available"] == true).await;
    assert_eq!(healthy["status"], "healthy");
    assert_eq!(healthy["entities"][0]["name"], "HikariPool-1");
    assert_eq!(healthy["entities"][0]["source"], "scrape:orders");
    let caches = http_get(server.http, "/v1/health/caches", None)
        .await
        .json();
    assert_eq!(caches["entities"][0]["metrics"]["hitRate"], 90.0);

    set(&shared, |a| a.body = Arc::new(pool(31)));
    let critical = eventually(&server, 5, |r| r["status"] == "critical").await;
    assert_eq!(critical["issues"][0]["code"], "DS_POOL_SATURATED");
    assert_eq!(critical["issues"][0]["entity"], "HikariPool-1");

    set(&shared, |a| a.status = StatusCode::SERVICE_UNAVAILABLE);
    let stale = eventually(&server, 8, |r| r["issues"][0]["code"] == "SOURCE_STALE").await;
    assert_eq!(stale["issues"][0]["source"], "scrape:orders");
    assert_eq!(stale["entities"][0]["stale"], true);
    let metrics = http_get(server.http, "/metrics", None).await.body;
    assert!(
        metrics.contains("healthscore_scrapes_total{target=\"orders\",result=\"failed\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_target_is_scraped() {
    let (addr, _shared) = target_on("[::1]:0", &pool(5)).await;
    let server = server_scraping(addr, 1).await;
    let report = eventually(&server, 5, |r| r["available"] == true).await;
    assert_eq!(report["entities"][0]["source"], "scrape:orders");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_answers_change_nothing_and_are_counted() {
    let (addr, shared) = target(&pool(5)).await;
    let server = server_scraping(addr, 1).await;
    let before = eventually(&server, 5, |r| r["available"] == true).await;
    let huge = "x".repeat(50 << 20);
    let bad: Vec<(&str, Answer)> = vec![
        (
            "garbage",
            Answer {
                status: StatusCode::OK,
                body: Arc::new("<html>not metrics</html>".into()),
                delay: Duration::ZERO,
            },
        ),
        (
            "truncated line",
            Answer {
                status: StatusCode::OK,
                body: Arc::new("hikaricp_connections_active{pool=\"HikariPool-1\"".into()),
                delay: Duration::ZERO,
            },
        ),
        (
            "NaN",
            Answer {
                status: StatusCode::OK,
                body: Arc::new(pool(5).replace("} 5.0", "} NaN")),
                delay: Duration::ZERO,
            },
        ),
        (
            "+Inf",
            Answer {
                status: StatusCode::OK,
                body: Arc::new(pool(5).replace("32.0", "+Inf")),
                delay: Duration::ZERO,
            },
        ),
        (
            "duplicate series",
            Answer {
                status: StatusCode::OK,
                body: Arc::new(format!(
                    "{}{}",
                    pool(31),
                    "hikaricp_connections_max{pool=\"HikariPool-1\"} 32.0\n"
                )),
                delay: Duration::ZERO,
            },
        ),
        (
            "50 MB",
            Answer {
                status: StatusCode::OK,
                body: Arc::new(huge),
                delay: Duration::ZERO,
            },
        ),
        (
            "slow",
            Answer {
                status: StatusCode::OK,
                body: Arc::new(pool(31)),
                delay: Duration::from_secs(3),
            },
        ),
    ];
    for (case, answer) in bad {
        let counted = bad_scrapes(&server).await;
        set(&shared, |a| *a = answer);
        // Two scrapes counted as refused or failed: the first may have begun before the
        // answer changed, the second read this answer whole (or timed out on it).
        let mut read = false;
        for _ in 0..100 {
            read = bad_scrapes(&server).await >= counted + 2.0;
            if read {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(read, "{case}: no scrape of this answer was counted");
        // Nothing of the bad answer applied: the last good values stand (the source may have
        // gone stale meanwhile, which is what a silent target does).
        let now = datasources(&server).await;
        assert_eq!(
            now["entities"][0]["metrics"], before["entities"][0]["metrics"],
            "{case}"
        );
        let codes: Vec<_> = now["issues"]
            .as_array()
            .expect("issues")
            .iter()
            .map(|i| i["code"].clone())
            .collect();
        assert!(
            codes.iter().all(|c| c == "SOURCE_STALE"),
            "{case}: {codes:?}"
        );
        set(&shared, |a| {
            *a = Answer {
                status: StatusCode::OK,
                body: Arc::new(pool(5)),
                delay: Duration::ZERO,
            }
        });
        eventually(&server, 5, |r| r["entities"][0]["stale"] == false).await;
    }
    for result in ["refused", "failed"] {
        let count = scrapes(&server, result).await;
        assert!(count >= 2.0, "{result}: {count}");
    }
}

/// The target's scrapes that ended as `result`, from `/metrics`.
async fn scrapes(server: &TestServer, result: &str) -> f64 {
    let metrics = http_get(server.http, "/metrics", None).await.body;
    common::series_value(
        &metrics,
        &format!("healthscore_scrapes_total{{target=\"orders\",result=\"{result}\"}}"),
    )
}

async fn bad_scrapes(server: &TestServer) -> f64 {
    scrapes(server, "refused").await + scrapes(server, "failed").await
}

#[test]
fn config_check_names_the_bad_key_of_a_target() {
    for (toml, key) in [
        ("[[scrape]]\nname = \"a\"\nurl = \"ftp://x/metrics\"\nprofile = \"node\"\n", "scrape[0].url"),
        ("[[scrape]]\nname = \"a\"\nurl = \"https://x/metrics\"\nprofile = \"node\"\n", "scrape[0].ca"),
        ("[[scrape]]\nname = \"a\"\nurl = \"http://x/metrics\"\n", "scrape[0].profile"),
        ("[[scrape]]\nname = \"a\"\nurl = \"http://x/m\"\nprofile = \"node\"\ninterval_secs = 5\ntimeout_secs = 9\n", "scrape[0].timeout_secs"),
        ("[[scrape]]\nname = \"a\"\nurl = \"http://x/m\"\n[[scrape.mappings]]\nmetric = \"m\"\nsubsystem = \"caches\"\nfield = \"active\"\nentity = \"c\"\n", "scrape[0].mappings[0].field"),
        ("[[scrape]]\nname = \"a\"\nurl = \"http://x/m\"\nprofile = \"node\"\n[[scrape]]\nname = \"a\"\nurl = \"http://y/m\"\nprofile = \"node\"\n", "scrape[1].name"),
    ] {
        let error = Config::from_toml(toml, "test").expect_err(toml).to_string();
        assert!(error.contains(key), "{key}: {error}");
    }
}
