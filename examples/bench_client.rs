//! Helpers for scripts/bench.sh:
//!
//!     bench_client payloads DIR   pre-encoded gRPC request bodies for h2load
//!     bench_client seed ADDR [FILE]
//!                                 1,000 entities with about 100 issues; FILE gets the
//!                                 GetSystemHealth answer, for the bare peer to send
//!     bench_client verify ADDR    one real call of every benchmarked RPC must succeed
//!     bench_client scale ADDR     ReportMetrics of 100 entities with 1,000, 10,000 and 100,000
//!                                 entities in state, and the throughput ratios
//!     bench_client otlp ADDR      OTLP export data points per second next to ReportMetrics
//!                                 entities per second, 100 of each a request, in one run,
//!                                 A B A B, each request encoded once
//!     bench_client scrape ADDR HTTP_ADDR
//!                                 /metrics right after a change (rendered afresh) with 10,000
//!                                 entities in state: median and worst time of 20 scrapes
//!     bench_client checks ADDR SECONDS
//!                                 Check latency (p50, p99) from 4 callers
//!     bench_client flood ADDR SECONDS
//!                                 one source pushing ReportMetrics from 16 callers, past its
//!                                 per-source rate limit (run beside `checks`, as its own process)
//!     bench_client targets COUNT FILE
//!                                 COUNT Spring Boot-like targets of 5,000 series each on
//!                                 loopback ports, listed in the file_sd file FILE; serves them
//!                                 until killed
//!     bench_client exposition FILE
//!                                 writes the 5,000-series exposition of `benches/inputs.rs`
//!     bench_client parse FILE ROUNDS
//!                                 reads FILE with healthscore's parser ROUNDS times: the best
//!                                 round's nanoseconds per series (beside Prometheus' Go parser
//!                                 in scripts/parser-vs-go.sh)

use std::{
    error::Error,
    future::Future,
    path::Path,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use healthscore::proto::{
    health::{health_client::HealthClient, HealthCheckRequest},
    v1::{
        health_reports_client::HealthReportsClient, DatasourceSnapshot, GetSystemHealthRequest,
        ReportMetricsRequest, ReportOptions,
    },
};
use prost::Message;

#[path = "../benches/common/expositions.rs"]
mod expositions;

fn pools(prefix: &str, count: usize, saturated_every: usize) -> Vec<DatasourceSnapshot> {
    (0..count)
        .map(|i| DatasourceSnapshot {
            name: format!("{prefix}-{i:04}"),
            started: None,
            active: if i % saturated_every == 0 { 31 } else { 8 },
            idle: 4,
            max: 32,
            threads_awaiting: 0,
        })
        .collect()
}

/// The 100-entity push the ReportMetrics benchmark repeats.
fn report_request() -> ReportMetricsRequest {
    ReportMetricsRequest {
        source: "bench-push".into(),
        datasources: pools("push", 100, 10),
        ..ReportMetricsRequest::default()
    }
}

/// A gRPC message frame: uncompressed flag, big-endian length, protobuf bytes.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(body.len() + 5);
    framed.push(0);
    framed.extend_from_slice(
        &u32::try_from(body.len())
            .expect("small message")
            .to_be_bytes(),
    );
    framed.extend_from_slice(&body);
    framed
}

fn payloads(dir: &Path) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("check.bin"),
        frame(&HealthCheckRequest {
            service: String::new(),
        }),
    )?;
    std::fs::write(
        dir.join("system.bin"),
        frame(&GetSystemHealthRequest::default()),
    )?;
    let compact = GetSystemHealthRequest {
        options: Some(ReportOptions {
            min_severity: 0,
            omit_entities: true,
            ..Default::default()
        }),
    };
    std::fs::write(dir.join("system-compact.bin"), frame(&compact))?;
    std::fs::write(dir.join("report.bin"), frame(&report_request()))?;
    std::fs::write(dir.join("otlp.bin"), frame(&otlp_request()))?;
    Ok(())
}

async fn seed(addr: &str, answer_file: Option<&str>) -> Result<(), Box<dyn Error>> {
    let mut client = HealthReportsClient::connect(format!("http://{addr}")).await?;
    for source in 0..10 {
        client
            .report_metrics(ReportMetricsRequest {
                source: format!("seed-{source}"),
                ttl: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                datasources: pools("db", 100, 10),
                ..ReportMetricsRequest::default()
            })
            .await?;
    }
    let answer = client
        .get_system_health(GetSystemHealthRequest::default())
        .await?
        .into_inner();
    if let Some(file) = answer_file {
        std::fs::write(file, answer.encode_to_vec())?;
    }
    let report = answer.report().ok_or("no report")?;
    let entities: usize = report.subsystems.values().map(|r| r.entities.len()).sum();
    let bytes = report.encoded_len();
    println!(
        "seeded: {entities} entities, {} issues, system report {bytes} bytes",
        report.issues.len()
    );
    Ok(())
}

async fn verify(addr: &str) -> Result<(), Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status;
    let mut reports = HealthReportsClient::new(channel);
    reports
        .get_system_health(GetSystemHealthRequest::default())
        .await?;
    let pushed = reports.report_metrics(report_request()).await?.into_inner();
    println!(
        "verified {addr}: Check status {status}, GetSystemHealth ok, ReportMetrics applied={}",
        pushed.applied
    );
    Ok(())
}

/// Fills the state with `entities` datasource entities from sources of at most 10,000 each
/// (the default request limit); returns their source names.
async fn fill(
    client: &mut HealthReportsClient<tonic::transport::Channel>,
    entities: usize,
) -> Result<Vec<String>, Box<dyn Error>> {
    let mut sources = Vec::new();
    for (index, start) in (0..entities).step_by(10_000).enumerate() {
        let source = format!("scale-{index}");
        client
            .report_metrics(ReportMetricsRequest {
                source: source.clone(),
                ttl: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                datasources: pools("db", (entities - start).min(10_000), 10),
                ..ReportMetricsRequest::default()
            })
            .await?;
        sources.push(source);
    }
    Ok(sources)
}

/// One call of a measured RPC, on a client of `channel`.
type Call = Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>;

/// A ReportMetrics of the 100-entity push, built and encoded by the client.
fn push_call(channel: tonic::transport::Channel) -> Call {
    Box::pin(async move {
        HealthReportsClient::new(channel)
            .report_metrics(report_request())
            .await
            .map(drop)
    })
}

/// Sends a message encoded once, as it is, and reads the answer as bytes.
struct Encoded;

struct Raw;

impl tonic::codec::Codec for Encoded {
    type Encode = prost::bytes::Bytes;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: prost::bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = ();
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        let length = prost::bytes::Buf::remaining(src);
        prost::bytes::Buf::advance(src, length);
        Ok(Some(()))
    }
}

/// A unary call of `path` with `message` as it was encoded once: the client spends the same on
/// either RPC, so what differs between two rates is the server's.
fn encoded_call(
    channel: tonic::transport::Channel,
    path: &'static str,
    message: prost::bytes::Bytes,
) -> Call {
    Box::pin(async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
        grpc.unary(tonic::Request::new(message), path, Encoded)
            .await
            .map(drop)
    })
}

/// Calls per second of `call`, from `tasks` concurrent callers for `duration`.
async fn rate(
    channel: tonic::transport::Channel,
    tasks: usize,
    duration: Duration,
    call: impl Fn(tonic::transport::Channel) -> Call + Clone + Send + 'static,
) -> Result<f64, Box<dyn Error>> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let channel = channel.clone();
        let (done, stop, call) = (done.clone(), stop.clone(), call.clone());
        handles.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                call(channel.clone()).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

async fn scale(addr: &str) -> Result<(), Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthReportsClient::new(channel.clone());
    let mut rates = Vec::new();
    for entities in [1_000, 10_000, 100_000] {
        let sources = fill(&mut client, entities).await?;
        let pushes = rate(channel.clone(), 16, Duration::from_secs(5), push_call).await?;
        println!("  ReportMetrics of 100 entities with {entities:>7} entities in state: {pushes:8.0} req/s");
        rates.push((entities, pushes));
        for source in sources {
            client
                .forget_source(healthscore::proto::v1::ForgetSourceRequest { source })
                .await?;
        }
    }
    let base = rates[0].1;
    for (entities, pushes) in &rates[1..] {
        println!("  ratio {entities} / 1000 entities: {:.3}", pushes / base);
    }
    Ok(())
}

/// `count` sources, each pushing 5 pools once (TTL one hour), from 16 callers: what a fleet of
/// scraped apps holds in the state.
async fn sources(addr: &str, count: &str) -> Result<(), Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let count: usize = count.parse()?;
    let mut callers = Vec::new();
    for caller in 0..16 {
        let mut client = HealthReportsClient::new(channel.clone());
        callers.push(tokio::spawn(async move {
            for index in (caller..count).step_by(16) {
                client
                    .report_metrics(ReportMetricsRequest {
                        source: format!(
                            "scrape:apps/10.{}.{}.{}:8080",
                            index >> 16,
                            (index >> 8) & 255,
                            index & 255
                        ),
                        ttl: Some(prost_types::Duration {
                            seconds: 3600,
                            nanos: 0,
                        }),
                        datasources: pools("db", 5, 5),
                        ..ReportMetricsRequest::default()
                    })
                    .await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for caller in callers {
        caller.await??;
    }
    println!("pushed {count} sources of 5 pools each");
    Ok(())
}

/// Check latencies from 4 callers for `duration`, sorted.
async fn check_latencies(
    channel: tonic::transport::Channel,
    duration: Duration,
) -> Result<Vec<Duration>, Box<dyn Error>> {
    let stop = Instant::now() + duration;
    let mut callers = Vec::new();
    for _ in 0..4 {
        let mut client = HealthClient::new(channel.clone());
        callers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < stop {
                let started = Instant::now();
                client.check(HealthCheckRequest::default()).await?;
                latencies.push(started.elapsed());
            }
            Ok::<_, tonic::Status>(latencies)
        }));
    }
    let mut all = Vec::new();
    for caller in callers {
        all.extend(caller.await??);
    }
    all.sort();
    Ok(all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Check's p50 and p99 from 4 callers for `seconds`, as "label p50 p99 calls".
async fn checks(addr: &str, seconds: &str) -> Result<(), Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let sorted = check_latencies(channel, Duration::from_secs(seconds.parse()?)).await?;
    println!(
        "p50 {:.3} ms  p99 {:.3} ms  ({} calls)",
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.len()
    );
    Ok(())
}

/// One source pushing ReportMetrics from 16 callers as fast as they can for `seconds`, past
/// the server's per-source rate limit; prints what was applied and what was refused.
async fn flood(addr: &str, seconds: &str) -> Result<(), Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let stop = Instant::now() + Duration::from_secs(seconds.parse()?);
    let mut flooders = Vec::new();
    for _ in 0..16 {
        let mut client = HealthReportsClient::new(channel.clone());
        flooders.push(tokio::spawn(async move {
            let (mut accepted, mut limited) = (0u64, 0u64);
            while Instant::now() < stop {
                match client.report_metrics(report_request()).await {
                    Ok(_) => accepted += 1,
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => limited += 1,
                    Err(status) => return Err(status),
                }
            }
            Ok((accepted, limited))
        }));
    }
    let (mut accepted, mut limited) = (0, 0);
    for flooder in flooders {
        let (a, l) = flooder.await??;
        (accepted, limited) = (accepted + a, limited + l);
    }
    let seconds: f64 = seconds.parse()?;
    println!(
        "  flood: {:.0} pushes/s applied, {:.0}/s refused with RESOURCE_EXHAUSTED",
        accepted as f64 / seconds,
        limited as f64 / seconds
    );
    Ok(())
}

/// An OTLP export of 100 data points: 50 pools' used and idle connection counts.
fn otlp_request() -> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest
{
    use opentelemetry_proto::tonic::{
        collector::metrics::v1::ExportMetricsServiceRequest,
        common::v1::{any_value, AnyValue, KeyValue},
        metrics::v1::{
            metric::Data, number_data_point, Metric, NumberDataPoint, ResourceMetrics,
            ScopeMetrics, Sum,
        },
        resource::v1::Resource,
    };
    let text = |key: &str, value: String| KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    };
    let points = (0..50)
        .flat_map(|pool| {
            [("used", 8), ("idle", 24)].map(|(state, value)| NumberDataPoint {
                attributes: vec![
                    text("db.client.connection.pool.name", format!("pool-{pool:02}")),
                    text("db.client.connection.state", state.into()),
                ],
                value: Some(number_data_point::Value::AsInt(value)),
                ..Default::default()
            })
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.instance.id", "bench-otlp".into())],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "db.client.connection.count".into(),
                    unit: "{connection}".into(),
                    data: Some(Data::Sum(Sum {
                        data_points: points,
                        aggregation_temporality: 2,
                        is_monotonic: false,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

const EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const REPORT_METRICS: &str = "/healthscore.v1.HealthReports/ReportMetrics";

/// Exports and pushes of 100 each, alternating, each encoded once (a client encoding an OTLP
/// export anew costs several times what it does for a push, on the server's own two cores).
async fn otlp(addr: &str) -> Result<(), Box<dyn Error>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let export = prost::bytes::Bytes::from(otlp_request().encode_to_vec());
    let push = prost::bytes::Bytes::from(report_request().encode_to_vec());
    let export_call = move |channel| encoded_call(channel, EXPORT, export.clone());
    let push_call = move |channel| encoded_call(channel, REPORT_METRICS, push.clone());
    let mut sums = (0.0, 0.0);
    for round in 1..=3 {
        let exports = rate(
            channel.clone(),
            16,
            Duration::from_secs(5),
            export_call.clone(),
        )
        .await?;
        let pushes = rate(
            channel.clone(),
            16,
            Duration::from_secs(5),
            push_call.clone(),
        )
        .await?;
        println!(
            "  round {round}: OTLP {:8.0} data points/s ({exports:.0} exports of 100)   ReportMetrics {:8.0} entities/s ({pushes:.0} pushes of 100)",
            exports * 100.0,
            pushes * 100.0
        );
        sums = (sums.0 + exports, sums.1 + pushes);
    }
    println!(
        "  OTLP points/ReportMetrics entities: ratio {:.3}",
        sums.0 / sums.1
    );
    Ok(())
}

/// One `GET /metrics` (OpenMetrics) on `http`; returns its time and size.
async fn scrape_once(http: &str) -> Result<(Duration, usize), Box<dyn Error>> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(http).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header("host", http)
        .header("accept", "application/openmetrics-text")
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let start = Instant::now();
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok((start.elapsed(), body.len()))
}

async fn scrape(addr: &str, http: &str) -> Result<(), Box<dyn Error>> {
    let mut client = HealthReportsClient::connect(format!("http://{addr}")).await?;
    let sources = fill(&mut client, 10_000).await?;
    let mut times = Vec::new();
    let mut size = 0;
    for round in 0..20 {
        // A new state: the next scrape renders it afresh.
        let mut request = report_request();
        request.datasources[0].active = if round % 2 == 0 { 31 } else { 8 };
        client.report_metrics(request).await?;
        let (time, bytes) = scrape_once(http).await?;
        times.push(time);
        size = bytes;
    }
    times.sort();
    println!(
        "  /metrics right after a change, 10,000 entities ({size} bytes): median {:.2} ms, worst {:.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    for source in sources {
        client
            .forget_source(healthscore::proto::v1::ForgetSourceRequest { source })
            .await?;
    }
    Ok(())
}

async fn targets(count: &str, file: &str) -> Result<(), Box<dyn Error>> {
    let count: usize = count.parse()?;
    let body = bytes::Bytes::from(expositions::micrometer(5, 5_000));
    let router = axum::Router::new().route(
        "/actuator/prometheus",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "text/plain; version=0.0.4")], body) }
        }),
    );
    let mut addresses = Vec::with_capacity(count);
    for _ in 0..count {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addresses.push(format!("\"{}\"", listener.local_addr()?));
        let router = router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    let groups = format!(
        r#"[{{"targets": [{}], "labels": {{"__metrics_path__": "/actuator/prometheus", "team": "bench"}}}}]"#,
        addresses.join(", ")
    );
    let scratch = format!("{file}.tmp");
    std::fs::write(&scratch, groups)?;
    std::fs::rename(&scratch, file)?;
    println!("{count} targets listed in {file}");
    std::future::pending::<()>().await;
    Ok(())
}

/// Every series of `file` read `rounds` times; prints the best round per series.
fn parse(file: &str, rounds: &str) -> Result<(), Box<dyn Error>> {
    let text = std::fs::read_to_string(file)?;
    let mut best = Duration::MAX;
    let mut series = 0;
    for _ in 0..rounds.parse::<usize>()? {
        let began = Instant::now();
        series = healthscore::inputs::parse_exposition(std::hint::black_box(&text))?.len();
        best = best.min(began.elapsed());
    }
    println!(
        "{:.0} ns/series",
        best.as_nanos() as f64 / series.max(1) as f64
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["payloads", dir] => payloads(Path::new(dir)),
        ["seed", addr] => seed(addr, None).await,
        ["seed", addr, file] => seed(addr, Some(file)).await,
        ["verify", addr] => verify(addr).await,
        ["scale", addr] => scale(addr).await,
        ["scrape", addr, http] => scrape(addr, http).await,
        ["otlp", addr] => otlp(addr).await,
        ["checks", addr, seconds] => checks(addr, seconds).await,
        ["flood", addr, seconds] => flood(addr, seconds).await,
        ["sources", addr, count] => sources(addr, count).await,
        ["targets", count, file] => targets(count, file).await,
        ["exposition", file] => Ok(std::fs::write(file, expositions::micrometer(250, 5_000))?),
        ["parse", file, rounds] => parse(file, rounds),
        _ => Err(
            "usage: bench_client payloads DIR | seed ADDR | verify ADDR | scale ADDR | otlp ADDR | scrape ADDR HTTP_ADDR | checks ADDR SECONDS | flood ADDR SECONDS | sources ADDR COUNT | targets COUNT FILE | exposition FILE | parse FILE ROUNDS"
                .into(),
        ),
    }
}
