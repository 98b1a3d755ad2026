//! The push source: `ReportMetrics` requests, validated into the core's [`Push`]. The gRPC face
//! hosts the RPC and hands the request here; nothing past this module sees a bad value.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    core::{
        ingest::{self, name, FieldError, Limits, Push, HOST_SOURCE},
        scoring::snapshot as core,
        subsystem::for_each_subsystem,
    },
    proto::v1,
};

/// A wire snapshot the core has a type for.
trait FromWire: Sized {
    type Core;

    fn name(&self) -> &str;

    /// The core snapshot, or the first field that cannot be accepted; `path(key)` names a
    /// field of this snapshot in errors.
    fn into_core(
        self,
        name: Arc<str>,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError>;
}

macro_rules! push_from_wire {
    ($($variant:ident $key:literal $field:ident $snapshot:ident
        $rpc:ident($request:ident) -> $response:ident $(pushed as $wire:ident)?;)+) => {
        /// Validates a request: names, numbers, the entity count (before any per-entity work),
        /// TTL bounds and `started_at` against `now`. Limits that depend on the state (sources)
        /// are the store's to check.
        pub fn from_wire(
            request: v1::ReportMetricsRequest,
            limits: &Limits,
            now: SystemTime,
        ) -> Result<Push, FieldError> {
            let source = name("source", &request.source, limits.max_name_bytes)?;
            if &*source == HOST_SOURCE {
                return Err(FieldError::new(
                    "source",
                    format!("{HOST_SOURCE:?} is reserved for the host sampler"),
                ));
            }
            limits.entity_count(entity_count(&request))?;
            let ttl = request.ttl.map(ttl).transpose()?;
            limits.ttl(ttl)?;
            let started_at = request
                .started_at
                .map(|at| {
                    let at = timestamp(at)?;
                    ingest::started_at(at, now, Duration::from_secs(limits.max_clock_skew_secs))
                })
                .transpose()?;
            let mut push = Push {
                source,
                started_at,
                sequence: (request.sequence > 0).then_some(request.sequence),
                ttl,
                ..Push::default()
            };
            $($(
                push.$field = snapshots(request.$wire, stringify!($wire), limits.max_name_bytes)?;
            )?)+
            Ok(push)
        }
    };
}
for_each_subsystem!(push_from_wire);

/// Entities a request carries, counted before any is converted.
pub fn entity_count(request: &v1::ReportMetricsRequest) -> usize {
    macro_rules! count {
        ($($variant:ident $key:literal $field:ident $snapshot:ident
            $rpc:ident($request:ident) -> $response:ident $(pushed as $wire:ident)?;)+) => {
            0 $($(+ request.$wire.len())?)+
        };
    }
    for_each_subsystem!(count)
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

/// Converts one repeated snapshot field, checking names (valid, unique) and each snapshot.
fn snapshots<W: FromWire>(
    list: Vec<W>,
    field: &str,
    max_name_bytes: usize,
) -> Result<Option<Vec<W::Core>>, FieldError> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut seen = HashSet::with_capacity(list.len());
    let mut out = Vec::with_capacity(list.len());
    for (index, snapshot) in list.into_iter().enumerate() {
        let name = name(
            &format!("{field}[{index}].name"),
            snapshot.name(),
            max_name_bytes,
        )?;
        if !seen.insert(name.clone()) {
            return Err(FieldError::new(
                format!("{field}[{index}].name"),
                format!("duplicate entity name {name:?}"),
            ));
        }
        let path = |key: &str| format!("{field}[{index}] {name:?}.{key}");
        out.push(snapshot.into_core(name.clone(), &path)?);
    }
    Ok(Some(out))
}

/// `value <= max`, unless `max` is 0 (unknown).
fn at_most(
    path: &dyn Fn(&str) -> String,
    key: &str,
    value: u64,
    max_key: &str,
    max: u64,
) -> Result<(), FieldError> {
    if max > 0 && value > max {
        Err(FieldError::new(
            path(key),
            format!("{value} is above {max_key} ({max})"),
        ))
    } else {
        Ok(())
    }
}

impl FromWire for v1::DatasourceSnapshot {
    type Core = core::DatasourceSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        at_most(path, "active", self.active.into(), "max", self.max.into())?;
        Ok(core::DatasourceSnapshot {
            name,
            started: self.started.unwrap_or(true),
            active: self.active,
            idle: self.idle,
            max: self.max,
            threads_awaiting: self.threads_awaiting,
        })
    }
}

impl FromWire for v1::CacheSnapshot {
    type Core = core::CacheSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        at_most(path, "size", self.size, "max_size", self.max_size)?;
        Ok(core::CacheSnapshot {
            name,
            enabled: self.enabled.unwrap_or(true),
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
            size: self.size,
            max_size: self.max_size,
        })
    }
}

impl FromWire for v1::WatcherSnapshot {
    type Core = core::WatcherSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        _: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        Ok(core::WatcherSnapshot {
            name,
            running: self.running.unwrap_or(true),
            consecutive_errors: self.consecutive_errors,
        })
    }
}

impl FromWire for v1::SchedulerSnapshot {
    type Core = core::SchedulerSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        if self.paused_tasks > self.tasks {
            return Err(FieldError::new(
                path("paused_tasks"),
                format!("{} is above tasks ({})", self.paused_tasks, self.tasks),
            ));
        }
        Ok(core::SchedulerSnapshot {
            name,
            started: self.started.unwrap_or(true),
            tasks: self.tasks,
            paused_tasks: self.paused_tasks,
        })
    }
}

impl FromWire for v1::ExecutorSnapshot {
    type Core = core::ExecutorSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        at_most(
            path,
            "active",
            self.active.into(),
            "max_threads",
            self.max_threads.into(),
        )?;
        let state = match v1::ExecutorState::try_from(self.state) {
            Ok(v1::ExecutorState::Unspecified | v1::ExecutorState::Running) => {
                core::ExecutorState::Running
            }
            Ok(v1::ExecutorState::Idle) => core::ExecutorState::Idle,
            Ok(v1::ExecutorState::Degraded) => core::ExecutorState::Degraded,
            Ok(v1::ExecutorState::Draining) => core::ExecutorState::Draining,
            Ok(v1::ExecutorState::Critical) => core::ExecutorState::Critical,
            Ok(v1::ExecutorState::Shutdown) => core::ExecutorState::Shutdown,
            Ok(v1::ExecutorState::Terminated) => core::ExecutorState::Terminated,
            Err(_) => {
                return Err(FieldError::new(
                    path("state"),
                    format!("unknown executor state {}", self.state),
                ))
            }
        };
        Ok(core::ExecutorSnapshot {
            name,
            state,
            active: self.active,
            max_threads: self.max_threads,
            queued: self.queued,
            queue_capacity: self.queue_capacity,
        })
    }
}

impl FromWire for v1::WebServerSnapshot {
    type Core = core::WebServerSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        at_most(
            path,
            "busy_workers",
            self.busy_workers.into(),
            "max_workers",
            self.max_workers.into(),
        )?;
        if self.errors > self.requests {
            return Err(FieldError::new(
                path("errors"),
                format!("{} is above requests ({})", self.errors, self.requests),
            ));
        }
        Ok(core::WebServerSnapshot {
            name,
            busy_workers: self.busy_workers,
            max_workers: self.max_workers,
            queued: self.queued,
            queue_capacity: self.queue_capacity,
            requests: self.requests,
            errors: self.errors,
            connections: self.connections,
        })
    }
}

impl FromWire for v1::RuntimeSnapshot {
    type Core = core::RuntimeSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        path: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        at_most(
            path,
            "heap_used_bytes",
            self.heap_used_bytes,
            "heap_max_bytes",
            self.heap_max_bytes,
        )?;
        Ok(core::RuntimeSnapshot {
            name,
            heap_used_bytes: self.heap_used_bytes,
            heap_max_bytes: self.heap_max_bytes,
            blocked_threads: self.blocked_threads,
        })
    }
}

impl FromWire for v1::PerformanceSnapshot {
    type Core = core::PerformanceSnapshot;

    fn name(&self) -> &str {
        &self.name
    }

    fn into_core(
        self,
        name: Arc<str>,
        _: &dyn Fn(&str) -> String,
    ) -> Result<Self::Core, FieldError> {
        Ok(core::PerformanceSnapshot {
            name,
            slow_queries: self.slow_queries,
            slow_requests: self.slow_requests,
            slow_http_calls: self.slow_http_calls,
        })
    }
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
            source: HOST_SOURCE.into(),
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
