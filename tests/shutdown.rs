//! SIGTERM to the real binary: every health name turns NOT_SERVING (watchers are told), the
//! server keeps answering through the grace period, then exits 0.

mod common;

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader, Read},
    process::{Child, ChildStderr, Command, Stdio},
    time::{Duration, Instant},
};

use common::next;
use tonic::transport::Endpoint;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

/// A real `healthscore serve` process and its log.
struct Served {
    child: Child,
    log: BufReader<ChildStderr>,
}

impl Served {
    fn start<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_healthscore"))
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .env("HEALTHSCORE_HTTP__LISTEN", "127.0.0.1:0")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start healthscore");
        let log = BufReader::new(child.stderr.take().expect("stderr"));
        Self { child, log }
    }

    /// Reads the log up to the first line containing `needle`, and returns that line.
    fn wait_for(&mut self, needle: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.log.read_line(&mut line).expect("read log");
            assert!(read > 0, "exited before logging {needle:?}");
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The gRPC address from the "serving" log line.
    fn address(&mut self) -> String {
        self.addresses().0
    }

    /// The gRPC and HTTP addresses from the "serving" log line.
    fn addresses(&mut self) -> (String, String) {
        let line = self.wait_for("address=");
        let field = |name: &str| {
            line.split(&format!(" {name}="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("{name}= is in {line:?}"))
                .to_owned()
        };
        (field("address"), field("http"))
    }
}

fn terminate(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
    // SAFETY: kill only sends a signal, to a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "send SIGTERM");
}

#[tokio::test]
async fn sigterm_turns_check_not_serving_before_a_clean_exit() {
    let dir = std::env::temp_dir().join(format!("healthscore-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("healthscore.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 2\n[host]\nenabled = false\n",
    )
    .expect("write config");

    let mut served = Served::start(&[OsStr::new("--config"), config.as_os_str()], &[]);
    let addr = served.address();
    // Keep draining the log so the server never blocks on a full pipe.
    let Served { mut child, log } = served;
    std::thread::spawn(move || for _ in log.lines() {});

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    let check = |mut health: HealthClient<_>| async move {
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("check")
            .into_inner()
            .status
    };
    assert_eq!(check(health.clone()).await, ServingStatus::Serving as i32);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::Serving as i32
    );

    let signalled = Instant::now();
    terminate(&child);

    assert_eq!(
        next(&mut watch, 5).await.status,
        ServingStatus::NotServing as i32
    );
    assert_eq!(
        check(health.clone()).await,
        ServingStatus::NotServing as i32
    );
    // Readiness names turn; the liveness name serves until the listener closes.
    for (service, expected) in [
        ("datasources", ServingStatus::NotServing),
        ("healthscore.v1.HealthReports", ServingStatus::Serving),
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check during the grace period")
            .into_inner()
            .status;
        assert_eq!(status, expected as i32, "{service}");
    }

    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "still running long after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the grace period was honoured"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_signal_during_the_grace_period_exits_at_once() {
    let mut served = Served::start(
        &["--listen", "127.0.0.1:0"],
        &[
            ("HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS", "60"),
            ("HEALTHSCORE_HOST__ENABLED", "false"),
        ],
    );
    served.address();
    let signalled = Instant::now();
    terminate(&served.child);
    served.wait_for("shutting down");
    terminate(&served.child);
    let exit = served.child.wait().expect("wait");
    assert_eq!(exit.code(), Some(1), "a forced exit is not a clean one");
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "did not wait out the 60 s grace"
    );
}

#[test]
fn sigterm_does_not_wait_for_a_connection_that_never_sent_a_byte() {
    let mut served = Served::start(
        &["--listen", "127.0.0.1:0"],
        &[
            ("HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS", "0"),
            ("HEALTHSCORE_SERVER__DRAIN_TIMEOUT_SECS", "10"),
            ("HEALTHSCORE_HOST__ENABLED", "false"),
        ],
    );
    let addr = served.address();
    // A peer that connects and never sends a byte: graceful draining alone waits for it forever.
    let mut idle = std::net::TcpStream::connect(&addr).expect("connect");
    // The server writes its HTTP/2 SETTINGS as it starts serving a connection: once they
    // arrive, it holds this one (and SIGTERM does not just find it queued in the backlog).
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut settings = [0u8; 64];
    let read = idle
        .read(&mut settings)
        .expect("the server's SETTINGS within 5 s");
    assert!(read > 0, "the server closed the idle connection at once");
    let signalled = Instant::now();
    terminate(&served.child);
    let exit = served.child.wait().expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    // A connection with no request open closes as draining starts: no wait for the deadline.
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}: the drain deadline (10 s) was waited out",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_turns_readyz_503_while_livez_stays_200_until_the_process_exits() {
    let mut served = Served::start(
        &["--listen", "127.0.0.1:0"],
        &[
            ("HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS", "2"),
            ("HEALTHSCORE_HOST__ENABLED", "false"),
        ],
    );
    let (_, http) = served.addresses();
    let http: std::net::SocketAddr = http.parse().expect("an HTTP address");
    let Served { mut child, log } = served;
    std::thread::spawn(move || for _ in log.lines() {});
    assert_eq!(common::http_get(http, "/readyz", None).await.status, 200);
    assert_eq!(common::http_get(http, "/livez", None).await.status, 200);
    terminate(&child);
    let mut turned = false;
    for _ in 0..40 {
        let ready = common::http_get(http, "/readyz", None).await;
        if ready.status == 503 {
            assert_eq!(ready.json()["shuttingDown"], true, "{}", ready.body);
            turned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(turned, "/readyz never answered 503 during the grace period");
    // A liveness probe during the drain must not get the container killed.
    assert_eq!(common::http_get(http, "/livez", None).await.status, 200);
    assert!(
        child.try_wait().expect("wait").is_none(),
        "exited before the grace period ended"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_without_tls_or_token_files_leaves_the_server_running() {
    let mut served = Served::start(
        &["--listen", "127.0.0.1:0"],
        &[("HEALTHSCORE_HOST__ENABLED", "false")],
    );
    let addr = served.address();
    let pid = libc::pid_t::try_from(served.child.id()).expect("a pid fits pid_t");
    // SAFETY: kill only sends a signal, to a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0, "send SIGHUP");
    // Time for a reload that would end the server to do so: nothing observable says "the
    // reload finished" when there is nothing to reload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        served.child.try_wait().expect("try_wait").is_none(),
        "SIGHUP ended the server"
    );
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("URI")
        .connect()
        .await
        .expect("still serving after SIGHUP");
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("Check")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    terminate(&served.child);
    let _ = served.child.wait();
}
