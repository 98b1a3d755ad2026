//! The OTLP receiver with the official protocol types: semantic-convention metrics become
//! scored snapshots of the exporter's source; bad resources are rejected and change nothing.

mod common;

use common::{http_get, raw_call, TestServer};
use opentelemetry_proto::tonic::{
    collector::metrics::v1::{
        metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest,
    },
    common::v1::{any_value, AnyValue, KeyValue},
    metrics::v1::{
        metric::Data, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum,
    },
    resource::v1::Resource,
};
use prost::Message;

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn point(value: f64, attributes: &[(&str, &str)]) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

/// An UpDownCounter, as the SDK exports observable up-down counters (cumulative, not monotonic).
fn updown(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: 2,
            is_monotonic: false,
        })),
        ..Default::default()
    }
}

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn resource(attributes: &[(&str, &str)], metrics: Vec<Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes: attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The `orders-db` pool's attributes in `state` (`used`, `idle`).
fn orders_db(state: &str) -> [(&str, &str); 2] {
    [
        ("db.client.connection.pool.name", "orders-db"),
        ("db.client.connection.state", state),
    ]
}

/// The `orders-db` pool's connections in use.
fn orders_db_used(used: f64) -> Metric {
    updown(
        "db.client.connection.count",
        "{connection}",
        vec![point(used, &orders_db("used"))],
    )
}

/// The `orders-db` pool's size.
fn orders_db_max(max: f64) -> Metric {
    updown(
        "db.client.connection.max",
        "{connection}",
        vec![point(
            max,
            &[("db.client.connection.pool.name", "orders-db")],
        )],
    )
}

/// A checkout service: pool `orders-db` used/idle/max, a heap and an unknown metric.
fn checkout(used: f64, heap_used_mib: f64) -> ResourceMetrics {
    resource(
        &[
            ("service.name", "checkout"),
            ("service.instance.id", "checkout-1"),
        ],
        vec![
            updown(
                "db.client.connection.count",
                "{connection}",
                vec![
                    point(used, &orders_db("used")),
                    point(32.0 - used, &orders_db("idle")),
                ],
            ),
            orders_db_max(32.0),
            updown(
                "jvm.memory.used",
                "By",
                vec![
                    point(
                        heap_used_mib * 1_048_576.0,
                        &[
                            ("jvm.memory.type", "heap"),
                            ("jvm.memory.pool.name", "G1 Old Gen"),
                        ],
                    ),
                    point(
                        5.0,
                        &[
                            ("jvm.memory.type", "non_heap"),
                            ("jvm.memory.pool.name", "Metaspace"),
                        ],
                    ),
                ],
            ),
            updown(
                "jvm.memory.limit",
                "By",
                vec![point(
                    1000.0 * 1_048_576.0,
                    &[
                        ("jvm.memory.type", "heap"),
                        ("jvm.memory.pool.name", "G1 Old Gen"),
                    ],
                )],
            ),
            gauge("checkout.cart.size", vec![point(3.0, &[])]),
        ],
    )
}

/// Exports `resource_metrics` over gRPC and expects the whole export accepted.
async fn export_accepted(server: &TestServer, resource_metrics: Vec<ResourceMetrics>) {
    let answer = MetricsServiceClient::new(server.channel.clone())
        .export(ExportMetricsServiceRequest { resource_metrics })
        .await
        .expect("export")
        .into_inner();
    assert_eq!(answer.partial_success, None);
}

async fn report(server: &TestServer, subsystem: &str) -> serde_json::Value {
    http_get(server.http, &format!("/v1/health/{subsystem}"), None)
        .await
        .json()
}

#[tokio::test(flavor = "multi_thread")]
async fn semantic_convention_metrics_become_scored_entities_of_the_exporter() {
    let server = TestServer::start().await;
    export_accepted(&server, vec![checkout(31.0, 970.0)]).await;
    let pools = report(&server, "datasources").await;
    assert_eq!(pools["entities"][0]["name"], "orders-db");
    assert_eq!(pools["entities"][0]["source"], "checkout-1");
    assert_eq!(pools["issues"][0]["code"], "DS_POOL_SATURATED");
    let runtime = report(&server, "runtime").await;
    assert_eq!(runtime["issues"][0]["code"], "JVM_HEAP_CRITICAL");
    assert_eq!(runtime["entities"][0]["name"], "jvm");

    // OTLP/HTTP: the same export as protobuf over POST /v1/metrics.
    let body = ExportMetricsServiceRequest {
        resource_metrics: vec![checkout(5.0, 100.0)],
    }
    .encode_to_vec();
    let answer = post(&server, "application/x-protobuf", body).await;
    assert_eq!(answer.0, 200);
    assert_eq!(report(&server, "datasources").await["status"], "healthy");
    let metrics = http_get(server.http, "/metrics", None).await.body;
    assert!(
        metrics.contains("healthscore_otlp_points_total{result=\"ignored\"}"),
        "{metrics}"
    );
}

async fn post(server: &TestServer, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let request = hyper::Request::post("/v1/metrics")
        .header("content-type", content_type)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let answer = common::read_answer(common::http_send(server.http, request).await).await;
    (answer.status, answer.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_resources_are_rejected_with_their_points_and_change_nothing() {
    let server = TestServer::start().await;
    export_accepted(&server, vec![checkout(5.0, 100.0)]).await;
    let mut client = MetricsServiceClient::new(server.channel.clone());
    let before = report(&server, "datasources").await;

    // No service.name nor service.instance.id: every point rejected, INVALID_ARGUMENT.
    let anonymous = resource(
        &[("host.name", "h")],
        checkout(31.0, 100.0).scope_metrics[0].metrics.clone(),
    );
    let error = client
        .export(ExportMetricsServiceRequest {
            resource_metrics: vec![anonymous],
        })
        .await
        .expect_err("anonymous");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("service.name"),
        "{}",
        error.message()
    );

    // A NaN pool size beside a good resource: a partial success naming the bad one.
    let mut absurd = checkout(31.0, 100.0);
    absurd.resource = Some(Resource {
        attributes: vec![attribute("service.instance.id", "broken-1")],
        ..Default::default()
    });
    if let Some(Data::Sum(sum)) = &mut absurd.scope_metrics[0].metrics[1].data {
        sum.data_points[0].value = Some(number_data_point::Value::AsDouble(f64::NAN));
    }
    let answer = client
        .export(ExportMetricsServiceRequest {
            resource_metrics: vec![absurd, checkout(5.0, 100.0)],
        })
        .await
        .expect("partial success")
        .into_inner();
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(
        partial.rejected_data_points, 7,
        "every point of the bad resource"
    );
    assert!(
        partial.error_message.contains("broken-1"),
        "{}",
        partial.error_message
    );
    let after = report(&server, "datasources").await;
    assert_eq!(after["entities"], before["entities"]);
    assert_eq!(after["issues"], before["issues"]);

    assert_eq!(
        post(
            &server,
            "application/x-protobuf",
            b"\xff\xff garbage".to_vec()
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post(&server, "application/json", b"{}".to_vec()).await.0,
        415
    );
}

/// Delta points of cache `c1`'s hits, as Micrometer's OTLP registry exports them, and its size.
fn hits(deltas: &[f64], size: Option<f64>) -> ResourceMetrics {
    let mut metrics = vec![Metric {
        name: "cache.gets".into(),
        data: Some(Data::Sum(Sum {
            data_points: deltas
                .iter()
                .map(|&delta| point(delta, &[("cache", "c1"), ("result", "hit")]))
                .collect(),
            aggregation_temporality: 1,
            is_monotonic: true,
        })),
        ..Default::default()
    }];
    if let Some(size) = size {
        metrics.push(gauge("cache.size", vec![point(size, &[("cache", "c1")])]));
    }
    resource(&[("service.instance.id", "deltas-1")], metrics)
}

/// The hits in cache `c1`'s last window, as the report shows them.
async fn window_hits(server: &TestServer) -> f64 {
    let report = report(server, "caches").await;
    report["entities"][0]["metrics"]["hits"]
        .as_f64()
        .unwrap_or_else(|| panic!("no hits in {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_deltas_do_not_count_and_a_nan_delta_is_refused_alone() {
    let server = TestServer::start().await;
    let client = MetricsServiceClient::new(server.channel.clone());
    let export = |resource| {
        let mut client = client.clone();
        async move {
            client
                .export(ExportMetricsServiceRequest {
                    resource_metrics: vec![resource],
                })
                .await
                .map(|answer| answer.into_inner().partial_success)
        }
    };
    assert_eq!(
        export(hits(&[10.0], Some(5.0))).await.expect("applied"),
        None
    );
    assert_eq!(window_hits(&server).await, 10.0);
    // Refused whole (a NaN size where a rule reads): its 1000 hits must not count later.
    export(hits(&[1000.0], Some(f64::NAN)))
        .await
        .expect_err("a NaN size refuses the resource");
    assert_eq!(
        export(hits(&[5.0], Some(5.0))).await.expect("applied"),
        None
    );
    assert_eq!(window_hits(&server).await, 5.0, "the refused delta counted");
    // A NaN delta is refused alone (the series' other point counts), and poisons nothing after.
    let partial = export(hits(&[f64::NAN, 3.0], Some(5.0)))
        .await
        .expect("the rest of the resource is applied")
        .expect("the NaN point is reported");
    assert_eq!(partial.rejected_data_points, 1, "{partial:?}");
    assert!(
        partial.error_message.contains("cache_gets_total"),
        "{partial:?}"
    );
    assert_eq!(window_hits(&server).await, 3.0);
    assert_eq!(
        export(hits(&[7.0], Some(5.0))).await.expect("applied"),
        None
    );
    assert_eq!(window_hits(&server).await, 7.0);
}

/// A series is a name and its labels wherever it comes: the same pool's `used` count in two
/// scopes of one resource is one series, whose last point wins (summed, 20 + 31 active
/// connections would exceed the pool's 32 and refuse the resource).
#[tokio::test(flavor = "multi_thread")]
async fn a_series_repeated_in_another_scope_is_one_series() {
    let server = TestServer::start().await;
    let mut repeated = resource(
        &[("service.instance.id", "checkout-1")],
        vec![orders_db_used(20.0), orders_db_max(32.0)],
    );
    repeated.scope_metrics.push(ScopeMetrics {
        metrics: vec![orders_db_used(31.0)],
        ..Default::default()
    });
    export_accepted(&server, vec![repeated]).await;
    let pools = report(&server, "datasources").await;
    assert_eq!(pools["entities"][0]["name"], "orders-db");
    assert_eq!(pools["issues"][0]["code"], "DS_POOL_SATURATED", "{pools}");
}

/// `message` as one gRPC message: no compression flag, its length, itself.
fn framed(message: &[u8]) -> bytes::Bytes {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

const EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Strings are read as UTF-8 where they are used: a pool name that is not rejects its resource,
/// named, over gRPC and HTTP; bytes that are not an export are INVALID_ARGUMENT. Nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn strings_that_are_not_utf8_and_bytes_that_are_not_an_export_are_refused() {
    let server = TestServer::start().await;
    export_accepted(&server, vec![checkout(5.0, 100.0)]).await;
    let before = report(&server, "datasources").await;

    let good = ExportMetricsServiceRequest {
        resource_metrics: vec![checkout(31.0, 100.0)],
    }
    .encode_to_vec();
    let name = b"orders-db";
    let mut bad = good.clone();
    let mut places = 0;
    for start in 0..bad.len() - name.len() {
        if &bad[start..start + name.len()] == name {
            bad[start..start + name.len()].copy_from_slice(b"order\xff\xfedb");
            places += 1;
        }
    }
    assert_eq!(places, 3, "the pool's name in each of its points");

    let (status, message) = raw_call(&server, EXPORT, framed(&bad), false).await;
    assert_eq!(
        status, "3",
        "every point rejected, INVALID_ARGUMENT: {message}"
    );
    assert!(
        message.contains("checkout-1") && message.contains("is not UTF-8"),
        "{message}"
    );
    let (status, body) = post(&server, "application/x-protobuf", bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not UTF-8"), "{body}");

    let (status, message) = raw_call(&server, EXPORT, framed(b"\xff\xff garbage"), false).await;
    assert_eq!(status, "3", "not an export, INVALID_ARGUMENT: {message}");
    assert!(
        message.contains("not an ExportMetricsServiceRequest"),
        "{message}"
    );

    let after = report(&server, "datasources").await;
    assert_eq!(after["entities"], before["entities"]);
    assert_eq!(after["issues"], before["issues"]);
}
