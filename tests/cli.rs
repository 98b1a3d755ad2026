//! The real `healthscore` binary against a real server: output and exit codes.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Output, Stdio},
};

use common::TestServer;

fn healthscore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run healthscore")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs the blocking binary off the test's runtime so the in-process server keeps serving.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        healthscore(&args)
    })
    .await
    .expect("join")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const SNAPSHOT: &str = r#"{"datasources": [{"name": "mainDB", "active": 31, "max": 32}],
 "executors": [{"name": "jobs", "state": "EXECUTOR_STATE_DEGRADED", "maxThreads": 8}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_exit_codes_follow_grpc_health_probe() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();

    let serving = run(args(&["probe", "--addr", &addr])).await;
    assert_eq!(serving.status.code(), Some(0), "{serving:?}");
    assert_eq!(text(&serving.stdout).trim(), "status: SERVING");

    let refused = run(args(&[
        "probe",
        "--addr",
        "127.0.0.1:1",
        "--connect-timeout",
        "500ms",
    ]))
    .await;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(text(&refused.stderr).contains("failed to connect service"));

    let bad = run(args(&["probe", "--rpc-timeout", "soon"])).await;
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");

    let unknown = run(args(&["probe", "--addr", &addr, "--service", "nope"])).await;
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    assert!(text(&unknown.stderr).contains("NotFound"));

    let dir = std::env::temp_dir().join(format!("healthscore-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("snapshot.json");
    std::fs::write(&file, SNAPSHOT).expect("write snapshot");
    let pushed = run(args(&[
        "push",
        "--addr",
        &addr,
        "--source",
        "app-1",
        file.to_str().expect("utf-8 path"),
    ]))
    .await;
    assert_eq!(pushed.status.code(), Some(0), "{pushed:?}");
    assert_eq!(
        text(&pushed.stdout).trim(),
        "applied 2 entities from app-1: system critical, revision 2"
    );

    let down = run(args(&[
        "probe",
        "--addr",
        &addr,
        "--service",
        "datasources",
    ]))
    .await;
    assert_eq!(down.status.code(), Some(4), "{down:?}");
    assert_eq!(
        text(&down.stderr).trim(),
        "service unhealthy (responded with \"NOT_SERVING\")"
    );

    // Several names: every one must serve, and the failing ones are named.
    let several = |services: &[&str]| {
        let mut list = args(&["probe", "--addr", &addr]);
        for service in services {
            list.extend(args(&["--service", service]));
        }
        run(list)
    };
    let both = several(&["caches", "healthscore.v1.HealthReports"]).await;
    assert_eq!(both.status.code(), Some(0), "{both:?}");
    let one_down = several(&["caches", "datasources", "executors"]).await;
    assert_eq!(one_down.status.code(), Some(4), "{one_down:?}");
    // The executor is degraded (a warning): it serves at the default not_serving_at.
    assert_eq!(
        text(&one_down.stderr).trim(),
        "service unhealthy: \"datasources\" responded with \"NOT_SERVING\""
    );
    let unknown = several(&["caches", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(3), "{unknown:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_a_monitoring_plugin_with_performance_data() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let ok = run(args(&["check", "--addr", &addr])).await;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(
        text(&ok.stdout),
        "HEALTHSCORE OK - system healthy score 100, no issues | score=100;;;0;100\n"
    );

    let push = |active| {
        let mut reports = server.reports();
        async move {
            let pools = vec![common::pool("mainDB", active, 32)];
            let request = common::push_pools("app-1", pools);
            reports.report_metrics(request).await.expect("push");
        }
    };
    push(26).await; // 81%: warning
    let warning = run(args(&["check", "--addr", &addr])).await;
    assert_eq!(warning.status.code(), Some(1), "{warning:?}");
    let out = text(&warning.stdout);
    let mut lines = out.lines();
    let first = lines.next().expect("a status line");
    assert!(
        first.starts_with("HEALTHSCORE WARNING - system warning score "),
        "{out}"
    );
    let (_, perf) = first.split_once(" | ").expect("performance data");
    let labels: Vec<&str> = perf
        .split(' ')
        .map(|p| p.split('=').next().unwrap_or(""))
        .collect();
    assert_eq!(labels, ["score", "datasources"], "{perf}");
    assert!(perf.contains(";;;0;100"), "{perf}");
    let issue = lines.next().expect("an issue line");
    assert!(
        issue.starts_with("WARNING datasources:DS_POOL_HIGH_UTILIZATION mainDB (app-1): "),
        "{out}"
    );

    push(31).await; // critical
    let critical = run(args(&["check", "datasources", "--addr", &addr])).await;
    assert_eq!(critical.status.code(), Some(2), "{critical:?}");
    assert!(text(&critical.stdout).starts_with("HEALTHSCORE CRITICAL - datasources critical"));
    assert!(text(&critical.stdout).contains("| score=50;;;0;100 datasources=50;;;0;100\n"));

    let unreachable = run(args(&["check", "--addr", "127.0.0.1:1"])).await;
    assert_eq!(unreachable.status.code(), Some(3), "{unreachable:?}");
    assert!(text(&unreachable.stdout).starts_with("HEALTHSCORE UNKNOWN - "));
    assert_eq!(text(&unreachable.stdout).lines().count(), 1);
    let usage = run(args(&["check", "nope"])).await;
    assert_eq!(usage.status.code(), Some(3), "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_from_stdin_then_get_shows_the_issue_as_table_and_json() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let addr_for_push = addr.clone();
    let pushed = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_healthscore"))
            .args([
                "push",
                "--addr",
                &addr_for_push,
                "--source",
                "app-1",
                "--ttl",
                "60s",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run push");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(SNAPSHOT.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("push output")
    })
    .await
    .expect("join");
    assert_eq!(pushed.status.code(), Some(0), "{pushed:?}");

    let table = run(args(&["get", "--addr", &addr])).await;
    assert_eq!(table.status.code(), Some(0));
    let table = text(&table.stdout);
    assert!(table.starts_with("SYSTEM  critical  score 50"), "{table}");
    let saturated = table
        .find("critical  datasources:DS_POOL_SATURATED  mainDB (app-1)")
        .expect(&table);
    let degraded = table
        .find("warning   executors:EXECUTOR_DEGRADED  jobs (app-1)")
        .expect(&table);
    assert!(saturated < degraded, "worst first:\n{table}");
    assert!(table.contains("-> Increase the pool size"), "{table}");

    let json = run(args(&[
        "get",
        "datasources",
        "--addr",
        &addr,
        "--output",
        "json",
    ]))
    .await;
    assert_eq!(json.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON output");
    assert_eq!(report["status"], "critical");
    assert_eq!(report["score"], 50);
    assert_eq!(report["issues"][0]["code"], "DS_POOL_SATURATED");
    assert_eq!(report["issues"][0]["severity"], "critical");
    assert_eq!(report["issues"][0]["entityMetrics"]["active"], 31.0);
    assert_eq!(report["scoreBreakdown"]["deductions"][0]["penalty"], 50);
    assert_eq!(report["entities"][0]["name"], "mainDB");

    let filtered = run(args(&[
        "get",
        "--addr",
        &addr,
        "-o",
        "json",
        "--min-severity",
        "critical",
    ]))
    .await;
    let system: serde_json::Value = serde_json::from_slice(&filtered.stdout).expect("JSON output");
    assert_eq!(system["issues"].as_array().map(Vec::len), Some(1));
    assert_eq!(system["issues"][0]["code"], "datasources:DS_POOL_SATURATED");

    let bad = run(args(&["get", "disks", "--addr", &addr])).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("unknown subsystem \"disks\""),
        "{}",
        text(&bad.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_rejects_bad_files_naming_the_problem() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let dir = std::env::temp_dir().join(format!("healthscore-badpush-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        r#"{"datasources": [{"name": "db", "active": 40, "max": 32}]}"#,
    )
    .expect("write");
    let push = || {
        run(args(&[
            "push",
            "--addr",
            &addr,
            "--source",
            "a",
            file.to_str().expect("utf-8"),
        ]))
    };
    let rejected = push().await;
    assert_eq!(rejected.status.code(), Some(1));
    assert!(
        text(&rejected.stderr).contains("datasources[0] \"db\".active: 40 is above max (32)"),
        "{}",
        text(&rejected.stderr)
    );
    std::fs::write(
        &file,
        r#"{"datasources": [{"name": "db", "threads_awaiting": 1}]}"#,
    )
    .expect("write");
    let unknown = push().await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("unknown field `threads_awaiting`"),
        "{}",
        text(&unknown.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(10), lines.recv())
        .await
        .expect("a line in time")
        .expect("watch still running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_one_line_per_change() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["watch", "--addr", &addr])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run watch");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, mut received) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let first = next_line(&mut received).await;
    assert!(
        first.contains("rev 1  healthy  score 100  0 issues"),
        "{first}"
    );
    server
        .reports()
        .report_metrics(common::push_pools(
            "app-1",
            vec![common::pool("mainDB", 31, 32)],
        ))
        .await
        .expect("push");
    let second = next_line(&mut received).await;
    assert!(
        second.contains("rev 2  critical  score 50  +datasources:DS_POOL_SATURATED(mainDB)"),
        "{second}"
    );
    child.kill().expect("stop watch");
    let _ = child.wait();
}

#[test]
fn config_check_names_the_key_and_line() {
    let dir = std::env::temp_dir().join(format!("healthscore-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let check = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write config");
        healthscore(&["config", "check", path.to_str().expect("utf-8")])
    };
    let ok = check("ok.toml", "[host]\ninterval_secs = 10\n");
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");

    for (name, body, expected) in [
        (
            "unknown.toml",
            "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n",
            "line 3",
        ),
        (
            "unknown.toml",
            "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n",
            "unknown field `lisen`",
        ),
        ("type.toml", "[host]\nenabled = \"yes\"\n", "line 2"),
        (
            "range.toml",
            "[thresholds.caches]\nlow_hit_rate = 130.0\n",
            "thresholds.caches.low_hit_rate: 130 is not a percentage",
        ),
        (
            "order.toml",
            "[thresholds.host]\ndisk_high = 99.0\n",
            "thresholds.host.disk_high: 99 must be below thresholds.host.disk_critical (98)",
        ),
        (
            "code.toml",
            "[penalties.codes]\nDS_POOL_EXPLODED = 10\n",
            "unknown issue code \"DS_POOL_EXPLODED\"",
        ),
    ] {
        let output = check(name, body);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in {stderr}"
        );
    }

    let defaults = healthscore(&["config", "default"]);
    assert_eq!(defaults.status.code(), Some(0));
    let path = dir.join("default.toml");
    std::fs::write(&path, &defaults.stdout).expect("write defaults");
    let reparsed = healthscore(&["config", "check", path.to_str().expect("utf-8")]);
    assert_eq!(reparsed.status.code(), Some(0), "{reparsed:?}");

    let env = Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["config", "check", path.to_str().expect("utf-8")])
        .env("HEALTHSCORE_HOST__INTERVAL_SECS", "zero")
        .output()
        .expect("run");
    assert_eq!(env.status.code(), Some(1));
    assert!(
        text(&env.stderr).contains("HEALTHSCORE_HOST__INTERVAL_SECS"),
        "{}",
        text(&env.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_check_refuses_what_serve_refuses_and_names_the_key() {
    let dir = std::env::temp_dir().join(format!("healthscore-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad-level.toml");
    std::fs::write(&file, "[log]\nlevel = \"[[[not a filter\"\n").expect("write");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["config", "check"])
        .arg(&file)
        .output()
        .expect("config check");
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("log.level"), "{stderr}");

    // The files a config names: TLS and token files as serve reads them, the journal as a
    // warning (serve runs without it).
    let not_a_journal = dir.join("not-a-journal");
    std::fs::write(&not_a_journal, "someone else's file").expect("write");
    for (name, body, code, expected) in [
        (
            "tls.toml",
            "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n".to_owned(),
            1,
            "tls.cert",
        ),
        (
            "token.toml",
            "[[auth.tokens]]\nfile = \"/nonexistent/token\"\nscopes = [\"read\"]\n".to_owned(),
            1,
            "auth.tokens",
        ),
        (
            "journal.toml",
            format!(
                "[history]\npath = {:?}\n",
                not_a_journal.display().to_string()
            ),
            0,
            "warning: history.path",
        ),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, body).expect("write");
        let check = std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
            .args(["config", "check"])
            .arg(&file)
            .output()
            .expect("config check");
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }

    let missing = dir.join("missing.toml");
    let serve = std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["serve", "--config"])
        .arg(&missing)
        .output()
        .expect("serve");
    assert_eq!(serve.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
