//! The push source: `ReportMetrics` requests, validated into the core's [`Push`]. The gRPC face
//! hosts the RPC and hands the request here; nothing past this module sees a bad value.

use std::time::{Duration, SystemTime};

use crate::{
    core::{
        ingest::{FieldError, Limits, Push, PushBuilder},
        scoring::snapshot as core,
        subsystem::for_each_subsystem,
    },
    proto::v1,
};

macro_rules! push_from_wire {
    ($($snapshot:ident
        [$($list:ident { $($name:ident: $kind:ident $(or $zero:ident)?,)* })?];)+) => {
        /// Validates a request into a push, by the builder every input uses; `now` is the
        /// clock `started_at` is checked against. Limits that depend on the state (sources)
        /// are the store's to check.
        pub fn from_wire(
            request: v1::ReportMetricsRequest,
            limits: &Limits,
            now: SystemTime,
        ) -> Result<Push, FieldError> {
            let mut push = PushBuilder::new(&request.source, entity_count(&request), limits)?
                .ttl(request.ttl.map(ttl).transpose()?)?
                .sequence((request.sequence > 0).then_some(request.sequence));
            if let Some(at) = request.started_at {
                push = push.started_at(timestamp(at)?, now)?;
            }
            $($(
                push = push.list(
                    stringify!($list),
                    request.$list,
                    |wire| &wire.name,
                    |wire, name, path| {
                        Ok(core::$snapshot {
                            name,
                            $($name: WireField::from_wire(wire.$name, || path(stringify!($name)))?,)*
                        })
                    },
                )?;
            )?)+
            Ok(push.build())
        }

        /// Entities a request carries, counted before any is converted.
        pub fn entity_count(request: &v1::ReportMetricsRequest) -> usize {
            0 $($(+ request.$list.len())?)+
        }
    };
}
for_each_subsystem!(push_from_wire: snapshot pushed);

/// A snapshot field's core value from its wire value; `path` names the field in errors.
trait WireField<W>: Sized {
    fn from_wire(wire: W, path: impl FnOnce() -> String) -> Result<Self, FieldError>;
}

/// A state flag: absent is the normal state.
impl WireField<Option<bool>> for bool {
    fn from_wire(wire: Option<bool>, _: impl FnOnce() -> String) -> Result<Self, FieldError> {
        Ok(wire.unwrap_or(true))
    }
}

/// A count: the same on the wire as in the core.
impl<T> WireField<T> for T {
    fn from_wire(wire: T, _: impl FnOnce() -> String) -> Result<Self, FieldError> {
        Ok(wire)
    }
}

/// Unspecified is running: a client that never sets the state is not reported as stopped.
impl WireField<i32> for core::ExecutorState {
    fn from_wire(wire: i32, path: impl FnOnce() -> String) -> Result<Self, FieldError> {
        use v1::ExecutorState as Wire;
        Ok(match Wire::try_from(wire) {
            Ok(Wire::Unspecified | Wire::Running) => Self::Running,
            Ok(Wire::Idle) => Self::Idle,
            Ok(Wire::Degraded) => Self::Degraded,
            Ok(Wire::Draining) => Self::Draining,
            Ok(Wire::Critical) => Self::Critical,
            Ok(Wire::Shutdown) => Self::Shutdown,
            Ok(Wire::Terminated) => Self::Terminated,
            Err(_) => {
                return Err(FieldError::new(
                    path(),
                    format!("unknown executor state {wire}"),
                ))
            }
        })
    }
}

/// A TTL: positive, with seconds and nanos of one sign and nanos within a second, as the
/// `google.protobuf.Duration` spec requires (normalizing would hide a client's bug).
fn ttl(ttl: prost_types::Duration) -> Result<Duration, FieldError> {
    if ttl.seconds >= 0 && (0..1_000_000_000).contains(&ttl.nanos) {
        Ok(Duration::new(
            ttl.seconds.unsigned_abs(),
            ttl.nanos.unsigned_abs(),
        ))
    } else {
        Err(FieldError::new(
            "ttl",
            format!(
                "{}s {}ns is not a valid positive duration (seconds >= 0, nanos 0..=999999999)",
                ttl.seconds, ttl.nanos
            ),
        ))
    }
}

/// A `google.protobuf.Timestamp` within its spec's range (years 1 to 9999, nanos within a
/// second).
fn timestamp(at: prost_types::Timestamp) -> Result<SystemTime, FieldError> {
    const MIN_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let valid =
        (MIN_SECONDS..=MAX_SECONDS).contains(&at.seconds) && (0..1_000_000_000).contains(&at.nanos);
    let invalid = || {
        FieldError::new(
            "started_at",
            format!("{}s {}ns is not a valid timestamp", at.seconds, at.nanos),
        )
    };
    if !valid {
        return Err(invalid());
    }
    SystemTime::try_from(at).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> v1::ReportMetricsRequest {
        v1::ReportMetricsRequest {
            source: "app-1".into(),
            datasources: vec![v1::DatasourceSnapshot {
                name: "db".into(),
                active: 1,
                max: 2,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn refused(request: v1::ReportMetricsRequest) -> FieldError {
        from_wire(request, &Limits::default(), SystemTime::now()).unwrap_err()
    }

    #[test]
    fn durations_with_mixed_signs_or_nanos_out_of_range_are_refused() {
        for (seconds, nanos) in [(1, -1), (-1, 1), (5, 1_000_000_000), (0, -999_999_999)] {
            let error = refused(v1::ReportMetricsRequest {
                ttl: Some(prost_types::Duration { seconds, nanos }),
                ..request()
            });
            assert_eq!(error.field, "ttl", "{seconds}s {nanos}ns");
        }
    }

    #[test]
    fn the_host_source_name_is_reserved() {
        let error = refused(v1::ReportMetricsRequest {
            source: crate::core::ingest::HOST_SOURCE.into(),
            ..request()
        });
        assert_eq!(error.field, "source");
    }

    #[test]
    fn too_many_entities_are_refused_before_any_is_converted() {
        let limits = Limits {
            max_entities_per_request: 1,
            ..Limits::default()
        };
        let mut big = request();
        big.caches = vec![v1::CacheSnapshot::default()];
        // The cache has no name: converting it would fail on `caches[0].name`.
        let error = from_wire(big, &limits, SystemTime::now()).unwrap_err();
        assert_eq!(error.field, "entities");
    }
}
