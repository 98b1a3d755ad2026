//! TLS, mTLS, certificate reloads, bearer tokens and their scopes, source-bound push tokens,
//! the probe-only listener and the admission limits, on real servers with certificates made
//! here (rcgen) and real clients over real sockets.

mod common;

use std::{net::SocketAddr, path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use common::{http_send, pool, push_pools, TestServer};
use healthscore::{
    proto::{
        health::{
            health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
        },
        v1::{
            health_reports_client::HealthReportsClient, ForgetSourceRequest, GetSystemHealthRequest,
        },
    },
    service::{Config, Scope, TokenConfig},
};
use http_body_util::Full;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tonic::{
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
    Code,
};

const PUSH_TOKEN: &str = "push-token-for-orders-0123456789";
const ALL_PUSH_TOKEN: &str = "push-token-for-every-source-0123";
/// A base64 token: `+ / =` must pass the header and the dashboard's percent-encoded cookie.
const READ_TOKEN: &str = "read+token/0123456789abcdef==";

/// A CA and what it signs, written as PEM files into a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "healthscore-security-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        Self { dir, ca }
    }

    /// A certificate for `names` signed by the CA, written as `{file}.pem` and `{file}.key`.
    fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let certificate = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &self.ca)
            .expect("sign");
        let (cert_path, key_path) = (
            self.path(&format!("{file}.pem")),
            self.path(&format!("{file}.key")),
        );
        std::fs::write(&cert_path, certificate.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).expect("read CA")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_config(pki: &Pki) -> Config {
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"]);
    let mut config = common::config();
    config.tls.cert = Some(cert);
    config.tls.key = Some(key);
    config
}

async fn tls_channel(
    addr: SocketAddr,
    ca: Vec<u8>,
    identity: Option<Identity>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("URI")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

async fn system_status(channel: Channel) -> Result<i32, tonic::Status> {
    let report = HealthReportsClient::new(channel)
        .get_system_health(GetSystemHealthRequest::default())
        .await?;
    Ok(report.into_inner().report().expect("a report").status)
}

#[tokio::test]
async fn tls_serves_grpc_and_http_and_refuses_plaintext() {
    let pki = Pki::new("tls");
    let server = TestServer::start_with(tls_config(&pki)).await;
    let channel = tls_channel(server.addr, pki.ca_pem(), None)
        .await
        .expect("TLS connect");
    system_status(channel.clone())
        .await
        .expect("report over TLS");
    let check = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("Check over TLS");
    assert_eq!(check.into_inner().status, ServingStatus::Serving as i32);

    // A plaintext client gets nowhere: the server waits for a ClientHello.
    let plaintext = system_status(server.channel.clone()).await;
    assert!(plaintext.is_err(), "{plaintext:?}");

    let answer = https_get(server.http, &pki.ca_pem(), "/v1/health", None).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert!(answer.1.contains("\"status\""), "{}", answer.1);
}

#[tokio::test]
async fn mtls_refuses_a_client_without_a_certificate() {
    let pki = Pki::new("mtls");
    let mut config = tls_config(&pki);
    config.tls.client_ca = Some(pki.path("ca.pem"));
    let server = TestServer::start_with(config).await;

    let without = match tls_channel(server.addr, pki.ca_pem(), None).await {
        Ok(channel) => system_status(channel)
            .await
            .map(drop)
            .map_err(|s| s.to_string()),
        Err(error) => Err(error.to_string()),
    };
    assert!(
        without.is_err(),
        "a client without a certificate was served"
    );

    let (cert, key) = pki.issue("client", &["orders-1"]);
    let identity = Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap());
    let channel = tls_channel(server.addr, pki.ca_pem(), Some(identity))
        .await
        .expect("mTLS");
    system_status(channel).await.expect("report over mTLS");
}

#[tokio::test]
async fn a_reloaded_certificate_is_served_to_the_next_connection() {
    let pki = Pki::new("reload");
    let config = tls_config(&pki);
    let (cert_path, key_path) = (
        config.tls.cert.clone().unwrap(),
        config.tls.key.clone().unwrap(),
    );
    let server = TestServer::start_with(config).await;
    let first = tls_channel(server.addr, pki.ca_pem(), None)
        .await
        .expect("TLS connect");
    system_status(first.clone())
        .await
        .expect("first certificate");

    // cert-manager renews: a new CA's certificate replaces the files.
    let renewed = Pki::new("reload-renewed");
    let (new_cert, new_key) = renewed.issue("server", &["localhost"]);
    std::fs::copy(&new_key, &key_path).expect("replace key");
    std::fs::copy(&new_cert, &cert_path).expect("replace cert");
    let mut served = false;
    for _ in 0..50 {
        if let Ok(channel) = tls_channel(server.addr, renewed.ca_pem(), None).await {
            if system_status(channel).await.is_ok() {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "the renewed certificate was not served within 10 s");
    // The old CA no longer verifies a new connection.
    let old = match tls_channel(server.addr, pki.ca_pem(), None).await {
        Ok(channel) => system_status(channel).await.is_ok(),
        Err(_) => false,
    };
    assert!(!old, "a new connection still got the old certificate");

    // A broken file at a reload keeps the certificate in use.
    std::fs::write(&cert_path, "not a certificate").expect("break cert");
    let mut failed = false;
    for _ in 0..50 {
        let (_, metrics) = https_get(server.http, &renewed.ca_pem(), "/metrics", None).await;
        failed = secret_reloads(&metrics, "tls", "failed") >= 1.0;
        if failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        failed,
        "the broken certificate file was not read within 10 s"
    );
    let channel = tls_channel(server.addr, renewed.ca_pem(), None)
        .await
        .expect("still served");
    system_status(channel)
        .await
        .expect("the renewed certificate is still in use");
}

#[test]
fn an_expired_certificate_is_served_with_a_warning() {
    let pki = Pki::new("expired");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let certificate = params.signed_by(&key, &pki.ca).expect("sign");
    let (cert, key_path) = (pki.path("old.pem"), pki.path("old.key"));
    std::fs::write(&cert, certificate.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HEALTHSCORE_HTTP__ENABLED", "false")
        .env("HEALTHSCORE_HOST__ENABLED", "false")
        .env("HEALTHSCORE_TLS__CERT", &cert)
        .env("HEALTHSCORE_TLS__KEY", &key_path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run serve");
    let log = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(log).map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let warned = std::iter::from_fn(|| read.recv_timeout(Duration::from_secs(10)).ok())
        .any(|line| line.contains("has expired") && line.contains("tls.cert"));
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(warned, "no warning about the expired certificate");
}

#[test]
fn a_bad_certificate_at_start_names_the_config_key() {
    let dir = std::env::temp_dir().join(format!("healthscore-badcert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), "garbage").unwrap();
    std::fs::write(dir.join("key.pem"), "garbage").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HEALTHSCORE_HTTP__ENABLED", "false")
        .env("HEALTHSCORE_HOST__ENABLED", "false")
        .env("HEALTHSCORE_TLS__CERT", dir.join("cert.pem"))
        .env("HEALTHSCORE_TLS__KEY", dir.join("key.pem"))
        .output()
        .expect("run serve");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls.cert"), "{stderr}");
}

fn token_config() -> Config {
    let mut config = common::config();
    let dir = std::env::temp_dir().join(format!("healthscore-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut token = |name: &str, secret: &str, scopes: Vec<Scope>, sources: Vec<String>| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{secret}\n")).expect("write token");
        config.auth.tokens.push(TokenConfig {
            file: Some(path),
            scopes,
            sources,
            ..TokenConfig::default()
        });
    };
    token(
        "orders",
        PUSH_TOKEN,
        vec![Scope::Push],
        vec!["orders-*".into()],
    );
    token("all", ALL_PUSH_TOKEN, vec![Scope::Push], vec![]);
    token("read", READ_TOKEN, vec![Scope::Read], vec![]);
    config
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

async fn system_json(server: &TestServer) -> String {
    let mut client = server.reports();
    let report = client
        .get_system_health(with_token(GetSystemHealthRequest::default(), READ_TOKEN))
        .await
        .expect("read with the read token")
        .into_inner();
    format!("{report:?}")
}

#[tokio::test]
async fn tokens_have_their_scopes_and_push_tokens_their_sources() {
    let server = TestServer::start_with(token_config()).await;
    let mut client = server.reports();
    let before = system_json(&server).await;

    let push = || push_pools("billing-1", vec![pool("db", 10, 10)]);
    let status = client.report_metrics(push()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = client
        .report_metrics(with_token(push(), "not-a-token-at-all-0000"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = client
        .report_metrics(with_token(push(), READ_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = client
        .report_metrics(with_token(push(), PUSH_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("billing-1"), "{status:?}");
    assert_eq!(
        system_json(&server).await,
        before,
        "a refused push changed the state"
    );

    // Reads need the read scope: no token, or a push token, is refused.
    let status = client
        .get_system_health(GetSystemHealthRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .get_system_health(with_token(GetSystemHealthRequest::default(), PUSH_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // The orders token writes orders-*; the unbound one writes billing-1.
    client
        .report_metrics(with_token(
            push_pools("orders-1", vec![pool("db", 1, 10)]),
            PUSH_TOKEN,
        ))
        .await
        .expect("orders token pushes orders-1");
    client
        .report_metrics(with_token(push(), ALL_PUSH_TOKEN))
        .await
        .expect("the unbound push token pushes billing-1");
    let forget = |source: &str| ForgetSourceRequest {
        source: source.into(),
    };
    let status = client
        .forget_source(with_token(forget("billing-1"), PUSH_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let forgotten = client
        .forget_source(with_token(forget("orders-1"), PUSH_TOKEN))
        .await
        .expect("orders token forgets orders-1");
    assert!(forgotten.into_inner().forgotten);

    // Probes need none.
    let check = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("Check");
    assert_eq!(check.into_inner().status, ServingStatus::NotServing as i32);
}

#[tokio::test]
async fn http_reads_need_a_read_token_and_probes_none() {
    let server = TestServer::start_with(token_config()).await;
    let get = |path: &str, authorization: Option<String>, cookie: Option<String>| {
        let mut request = hyper::Request::get(path.to_owned());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(value) = cookie {
            request = request.header("cookie", value);
        }
        http_send(server.http, request.body(Full::default()).expect("request"))
    };
    let status = |response: hyper::Response<hyper::body::Incoming>| response.status().as_u16();
    let refused = get("/v1/health", None, None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"healthscore\"")
    );
    assert_eq!(status(get("/metrics", None, None).await), 401);
    assert_eq!(
        status(get("/v1/health", Some(format!("Bearer {READ_TOKEN}")), None).await),
        200
    );
    assert_eq!(
        status(get("/v1/health", Some(format!("Bearer {PUSH_TOKEN}")), None).await),
        403
    );
    assert_eq!(
        status(
            get(
                "/metrics",
                None,
                Some(format!("a=1; healthscore_token={READ_TOKEN}"))
            )
            .await
        ),
        200
    );
    // The dashboard stores the token with encodeURIComponent.
    assert_eq!(
        status(
            get(
                "/v1/health",
                None,
                Some("healthscore_token=read%2Btoken%2F0123456789abcdef%3D%3D".into())
            )
            .await
        ),
        200
    );
    assert_eq!(status(get("/livez", None, None).await), 200);
    assert_eq!(status(get("/readyz", None, None).await), 200);
    assert_eq!(status(get("/", None, None).await), 200);

    // An OTLP export is a push: a read token is refused, and the cookie never counts for it.
    let post = |token: Option<&str>| {
        let mut request = hyper::Request::post("/v1/metrics")
            .header("content-type", "application/x-protobuf")
            .header("cookie", format!("healthscore_token={ALL_PUSH_TOKEN}"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        http_send(server.http, request.body(Full::default()).expect("request"))
    };
    // MCP reads: it needs a read token, over POST.
    let mcp = |token: Option<&str>| {
        let mut request = hyper::Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        http_send(
            server.http,
            request.body(Full::from(initialize)).expect("request"),
        )
    };
    assert_eq!(status(mcp(None).await), 401);
    assert_eq!(status(mcp(Some(PUSH_TOKEN)).await), 403);
    assert_eq!(status(mcp(Some(READ_TOKEN)).await), 200);

    assert_eq!(status(post(None).await), 401);
    assert_eq!(status(post(Some(READ_TOKEN)).await), 403);
    assert_eq!(status(post(Some(ALL_PUSH_TOKEN)).await), 200);
}

#[tokio::test]
async fn the_probe_listener_serves_probes_in_plaintext_and_nothing_else() {
    let pki = Pki::new("probes");
    let mut config = tls_config(&pki);
    config.probes.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = TestServer::start_with(config).await;
    let probes = server.probes.expect("probe listener");
    let channel = Endpoint::from_shared(format!("http://{probes}"))
        .unwrap()
        .connect()
        .await
        .expect("plaintext connect to the probe port");
    let check = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("Check on the probe port");
    assert_eq!(check.into_inner().status, ServingStatus::Serving as i32);
    let status = system_status(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    let readyz = common::http_get(probes, "/readyz", None).await;
    assert_eq!(readyz.status, 200, "{readyz:?}");
    assert_eq!(common::http_get(probes, "/livez", None).await.status, 200);
    assert_eq!(
        common::http_get(probes, "/v1/health", None).await.status,
        404
    );
}

#[tokio::test]
async fn a_flooding_source_is_limited_and_others_are_not() {
    let mut config = common::config();
    config.limits.max_pushes_per_source_per_sec = 5.try_into().expect("not zero");
    let server = TestServer::start_with(config).await;
    let mut client = server.reports();
    let mut limited = 0;
    let started = std::time::Instant::now();
    for _ in 0..12 {
        match client
            .report_metrics(push_pools("flood", vec![pool("db", 1, 10)]))
            .await
        {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.message().contains("max_pushes_per_source_per_sec"),
                    "{status:?}"
                );
                limited += 1;
            }
        }
    }
    // Five at once (the burst), then a refusal answered when the next slot opens, so that
    // pushing again at once meets that slot: pushes alternate refused and applied.
    assert!(limited >= 3, "only {limited} of 12 pushes were limited");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "refusals were not paced: 12 pushes in {:?}",
        started.elapsed()
    );
    client
        .report_metrics(push_pools("calm", vec![pool("db", 1, 10)]))
        .await
        .expect("another source is not limited");
}

#[tokio::test]
async fn requests_over_the_limit_are_refused_not_queued_and_probes_pass() {
    let mut config = common::config();
    config.server.max_concurrent_requests = 1;
    let server = TestServer::start_with(config).await;
    // A request whose body never ends holds the one slot.
    let mut held = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut held,
        b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 1000\r\n\r\n",
    )
    .await
    .expect("send head");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        common::http_get(server.http, "/v1/health", None)
            .await
            .status,
        429
    );
    let status = system_status(server.channel.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("Check still answers");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        common::http_get(server.http, "/v1/health", None)
            .await
            .status,
        200
    );
}

/// The CLI over TLS with a token from $HEALTHSCORE_TOKEN, as the server logs at debug level:
/// no token appears in any line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_tls_with_tokens_and_no_token_is_ever_logged() {
    let pki = Pki::new("cli");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let tokens = pki.path("push-token");
    std::fs::write(&tokens, PUSH_TOKEN).unwrap();
    let config = pki.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"debug\"\n[tls]\ncert = {cert:?}\nkey = {key:?}\n\
             [[auth.tokens]]\nfile = {tokens:?}\nscopes = [\"push\"]\nsources = [\"orders-*\"]\n\
             [[auth.tokens]]\nenv = \"READ_TOKEN_FOR_TEST\"\nscopes = [\"read\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"))
        .args(["serve", "--listen", &addr, "--config"])
        .arg(&config)
        .env("READ_TOKEN_FOR_TEST", READ_TOKEN)
        .env("HEALTHSCORE_HTTP__ENABLED", "false")
        .env("HEALTHSCORE_HOST__ENABLED", "false")
        .env("HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS", "0")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let tls = |extra: &[&str]| {
        let mut args = vec!["--addr".to_owned(), addr.clone(), "--tls-ca-cert".into()];
        args.push(pki.path("ca.pem").display().to_string());
        args.extend(["--tls-server-name".into(), "localhost".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let cli = |command: &str, args: Vec<String>, token: Option<&str>| {
        let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_healthscore"));
        run.arg(command).args(args).env_remove("HEALTHSCORE_TOKEN");
        if let Some(token) = token {
            run.env("HEALTHSCORE_TOKEN", token);
        }
        run.stdin(Stdio::null()).output().expect("run the CLI")
    };
    let mut probed = false;
    for _ in 0..50 {
        if cli("probe", tls(&[]), None).status.success() {
            probed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(probed, "probe over TLS never succeeded");

    let snapshot = pki.path("snapshot.json");
    std::fs::write(
        &snapshot,
        r#"{"datasources":[{"name":"db","active":10,"idle":0,"max":10}]}"#,
    )
    .unwrap();
    let snapshot = snapshot.display().to_string();
    let refused = cli(
        "push",
        tls(&["--source", "billing-1", &snapshot]),
        Some(PUSH_TOKEN),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("PermissionDenied"),
        "{refused:?}"
    );
    let pushed = cli(
        "push",
        tls(&["--source", "orders-1", &snapshot]),
        Some(PUSH_TOKEN),
    );
    assert!(pushed.status.success(), "{pushed:?}");
    let token_file = pki.path("read-token");
    std::fs::write(&token_file, READ_TOKEN).unwrap();
    let got = cli(
        "get",
        tls(&["--token-file", &token_file.display().to_string()]),
        None,
    );
    assert!(got.status.success(), "{got:?}");
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("critical"),
        "{got:?}"
    );
    let unauthenticated = cli("get", tls(&[]), Some("a-wrong-token-0123456789"));
    assert!(!unauthenticated.status.success());

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let output = tokio::task::spawn_blocking(move || {
        let _ = server.wait();
        let mut log = String::new();
        std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
        log
    })
    .await
    .unwrap();
    assert!(
        output.contains("DEBUG"),
        "the log is not at debug level: {output}"
    );
    for token in [PUSH_TOKEN, READ_TOKEN, "a-wrong-token-0123456789"] {
        assert!(!output.contains(token), "a token appears in the log");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` over TLS, verifying the server with `ca`.
async fn https_get(addr: SocketAddr, ca: &[u8], path: &str, token: Option<&str>) -> (u16, String) {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca) {
        roots.add(certificate.expect("CA PEM")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let mut request = hyper::Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::default()).expect("request");
    let answer =
        common::read_answer(common::http_send_on(stream, "localhost", request).await).await;
    (answer.status, answer.body)
}

#[tokio::test]
async fn a_rotated_token_file_takes_effect_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("healthscore-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("read");
    let (old, new) = ("rotated-read-token-old-0123", "rotated-read-token-new-0123");
    std::fs::write(&file, old).unwrap();
    let mut config = common::config();
    config.auth.tokens.push(TokenConfig {
        file: Some(file.clone()),
        scopes: vec![Scope::Read],
        ..TokenConfig::default()
    });
    let server = TestServer::start_with(config).await;
    let read = |token: &'static str| {
        let mut client = server.reports();
        async move {
            client
                .get_system_health(with_token(GetSystemHealthRequest::default(), token))
                .await
                .map(drop)
                .map_err(|status| status.code())
        }
    };
    assert_eq!(read(old).await, Ok(()));
    std::fs::write(&file, new).unwrap();
    let mut rotated = false;
    for _ in 0..50 {
        if read(new).await.is_ok() {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rotated, "the new token was not accepted within 10 s");
    assert_eq!(
        read(old).await,
        Err(Code::Unauthenticated),
        "the old token still works"
    );
    // A broken file (too short) keeps the tokens in use.
    std::fs::write(&file, "short").unwrap();
    let mut failed = false;
    for _ in 0..50 {
        let metrics = hyper::Request::get("/metrics")
            .header("authorization", format!("Bearer {new}"))
            .body(Full::default())
            .expect("request");
        let metrics = common::read_answer(common::http_send(server.http, metrics).await).await;
        failed = secret_reloads(&metrics.body, "tokens", "failed") >= 1.0;
        if failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(failed, "the broken token file was not read within 10 s");
    assert_eq!(
        read(new).await,
        Ok(()),
        "a broken file dropped the tokens in use"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `healthscore_secret_reloads_total{secret,result}` in a `/metrics` answer.
fn secret_reloads(metrics: &str, secret: &str, result: &str) -> f64 {
    common::series_value(
        metrics,
        &format!("healthscore_secret_reloads_total{{secret=\"{secret}\",result=\"{result}\"}}"),
    )
}
