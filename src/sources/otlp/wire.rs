//! The parts of an OTLP metrics export the receiver reads, as prost messages. Field numbers are
//! those of `opentelemetry/proto/collector/metrics/v1` and the messages it includes; every
//! field not declared here is skipped by the decoder, as protobuf skips unknown fields.
//!
//! Strings are decoded as `Bytes`: slices of the request's own buffer, not a `String` each.
//! opentelemetry-proto's generated types allocate and copy every attribute key and value, which
//! with allocator traffic was about half of an export's instructions (callgrind, 100 points of
//! two attributes: 488,000 instructions a request in the decode alone). UTF-8 is checked where
//! a string is read ([`text`]), so one that is not UTF-8 is refused there, by its place.

use bytes::Bytes;

/// `ExportMetricsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Export {
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub unit: Bytes,
    #[prost(oneof = "Data", tags = "5, 7, 9, 10, 11")]
    pub data: Option<Data>,
}

/// A metric's points. Exponential histograms and summaries carry nothing the rules read: only
/// their points are counted (each as the bytes it was sent in).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Data {
    #[prost(message, tag = "5")]
    Gauge(Gauge),
    #[prost(message, tag = "7")]
    Sum(Sum),
    #[prost(message, tag = "9")]
    Histogram(Histogram),
    #[prost(message, tag = "10")]
    ExponentialHistogram(Unread),
    #[prost(message, tag = "11")]
    Summary(Unread),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// `AggregationTemporality`: 1 delta, 2 cumulative.
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// The points of a kind no row reads, left undecoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unread {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub data_points: Vec<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    #[prost(oneof = "Number", tags = "4, 6")]
    pub value: Option<Number>,
}

#[derive(Clone, Copy, PartialEq, prost::Oneof)]
pub enum Number {
    #[prost(double, tag = "4")]
    AsDouble(f64),
    #[prost(sfixed64, tag = "6")]
    AsInt(i64),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramDataPoint {
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "4")]
    pub count: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// An attribute's value. Arrays, key-value lists and bytes are not read as labels, so they are
/// not declared: such a value reads as none.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(bytes = "bytes", tag = "1")]
    String(Bytes),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}

/// A string field's text; `what` names it in the error when it is not UTF-8.
pub fn text(bytes: &Bytes, what: impl FnOnce() -> String) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", what()))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        collector::metrics::v1::ExportMetricsServiceRequest,
        common::v1::{any_value, AnyValue, KeyValue},
        metrics::v1::{metric, number_data_point, Metric, NumberDataPoint, ResourceMetrics},
        metrics::v1::{ExponentialHistogram, ExponentialHistogramDataPoint, ScopeMetrics, Sum},
        resource::v1::Resource,
    };
    use prost::Message;

    use super::*;

    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// The generated types of the OpenTelemetry project encode; these decode the same fields.
    #[test]
    fn reads_what_the_generated_types_write() {
        let point = NumberDataPoint {
            attributes: vec![
                attribute("pool.name", any_value::Value::StringValue("orders".into())),
                attribute("shard", any_value::Value::IntValue(3)),
            ],
            value: Some(number_data_point::Value::AsInt(-7)),
            time_unix_nano: 1,
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![attribute(
                        "service.name",
                        any_value::Value::StringValue("api".into()),
                    )],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "db.client.connection.count".into(),
                            unit: "{connection}".into(),
                            description: "skipped".into(),
                            data: Some(metric::Data::Sum(Sum {
                                data_points: vec![point],
                                aggregation_temporality: 1,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "latency".into(),
                            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![ExponentialHistogramDataPoint::default(); 2],
                                aggregation_temporality: 2,
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let export = Export::decode(Bytes::from(request.encode_to_vec())).expect("decodes");
        let resource = &export.resource_metrics[0];
        let service = &resource.resource.as_ref().expect("a resource").attributes[0];
        assert_eq!(&service.key[..], b"service.name");
        let metrics = &resource.scope_metrics[0].metrics;
        assert_eq!(&metrics[0].name[..], b"db.client.connection.count");
        assert_eq!(&metrics[0].unit[..], b"{connection}");
        let Some(Data::Sum(sum)) = &metrics[0].data else {
            panic!("a sum: {:?}", metrics[0].data);
        };
        assert_eq!((sum.aggregation_temporality, sum.is_monotonic), (1, true));
        let point = &sum.data_points[0];
        assert_eq!(point.value, Some(Number::AsInt(-7)));
        assert_eq!(
            point.attributes[0]
                .value
                .as_ref()
                .and_then(|v| v.value.clone()),
            Some(Value::String(Bytes::from_static(b"orders")))
        );
        assert_eq!(
            point.attributes[1]
                .value
                .as_ref()
                .and_then(|v| v.value.clone()),
            Some(Value::Int(3))
        );
        let Some(Data::ExponentialHistogram(unread)) = &metrics[1].data else {
            panic!("an exponential histogram: {:?}", metrics[1].data);
        };
        assert_eq!(unread.data_points.len(), 2);
    }

    #[test]
    fn a_string_that_is_not_utf8_is_named() {
        let bytes = Bytes::from_static(b"pool\xff");
        assert_eq!(
            text(&bytes, || "metric 3's name".into()),
            Err("metric 3's name is not UTF-8".into())
        );
        assert_eq!(text(&Bytes::from_static(b"ok"), String::new), Ok("ok"));
    }
}
