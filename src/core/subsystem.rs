//! The one list of subsystems. Everything that enumerates them expands [`for_each_subsystem!`],
//! naming the columns it reads: the `Subsystem` enum, the rules modules, the catalog's codes,
//! the thresholds in config, the pushed snapshot types and their `Entity` impls, the lists of a
//! push, the store's slots, the wire conversions of pushes and scrapes, the report RPCs, the MCP
//! tools and the CLI. A new subsystem is one row here and its rules file in `scoring/rules/`
//! (and, in the contract, its proto messages).
//!
//! Pure: no I/O, no clock.

use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};

/// Calls `$then!` with the columns it names of every subsystem's row, in report order:
/// `for_each_subsystem!(then: variant key pushed)` hands `then!` one `variant key pushed;` group
/// per row. A row is `Variant { key, field, snapshot, rules, report, tool, thresholds, pushed,
/// codes }`, and each column reaches `$then!` as follows:
///
/// - `variant` (ident): its `Subsystem` variant;
/// - `key` (literal): the name in maps, issue-code prefixes and grpc.health.v1 service names;
/// - `field` (ident): the name of its list in a push, in the store and in `ReportMetricsRequest`;
/// - `snapshot` (ident): the core snapshot type (in `core::scoring::snapshot`); for pushed
///   subsystems also the name of the wire message in `healthscore.v1`;
/// - `rules` (ident): its module in `core::scoring::rules`, declared from this column;
/// - `report` (`[rpc Request Response]`): its report RPC in `healthscore.v1.HealthReports`;
/// - `tool` (`[name "about"]`): its MCP tool, and what the tool tells an agent;
/// - `thresholds` (`[name Type]` or `[]`): its table under `[thresholds]` and its type in its
///   rules module; empty when its rules have nothing to configure;
/// - `pushed` (`[field { name: kind, ... }]` or `[]`, `field` as above): the snapshot's fields,
///   when apps send it (the host is sampled, not pushed). Kinds: `flag` (an `optional bool`
///   whose absence is the normal state, `true`), `u32` and `u64` (counts; counters are `u64` and
///   cumulative), or a core enum. `or unknown` / `or unbounded` marks a capacity where 0 means
///   that, as does a negative value in a scrape. A pushed row's snapshot struct and its
///   [`Entity`] impl are generated; a sampled subsystem writes its snapshot type (the host's is
///   in `scoring/snapshot.rs`) and, in its rules module, its `Entity` impl;
/// - `codes` (`[Code => "NAME", Severity, "trigger", "suggested action"; ...]`): its catalog
///   rows.
///
/// [`Entity`]: crate::core::scoring::snapshot::Entity
macro_rules! for_each_subsystem {
    ($then:ident: $($column:ident)+) => {
        $crate::core::subsystem::rows! { $then [$($column)+]
            Datasources {
                key: "datasources",
                field: datasources,
                snapshot: DatasourceSnapshot,
                rules: datasources,
                report: get_datasource_health(GetDatasourceHealthRequest) -> GetDatasourceHealthResponse,
                tool: datasource_get_health "Database connection pools: pools that did not start, utilization (active/max) and saturation, threads waiting for a connection.",
                thresholds: datasources: DatasourceThresholds,
                pushed: {
                    started: flag,
                    active: u32,
                    idle: u32,
                    max: u32 or unknown,
                    threads_awaiting: u32,
                },
                codes: {
                    DsPoolNotStarted => "DS_POOL_NOT_STARTED", Warning,
                        "pool not started",
                        "Check the datasource configuration and startup logs; the pool never started";
                    DsPoolHighUtilization => "DS_POOL_HIGH_UTILIZATION", Warning,
                        "active/max > 80%",
                        "Monitor pool utilization and consider increasing pool size";
                    DsPoolSaturated => "DS_POOL_SATURATED", Critical,
                        "active/max >= 95%",
                        "Increase the pool size or find the slow or leaked connections holding it";
                    DsPoolThreadsAwaiting => "DS_POOL_THREADS_AWAITING", Warning,
                        "threads waiting for a connection > 0",
                        "Increase the pool size or shorten the transactions that hold connections";
                },
            }
            Caches {
                key: "caches",
                field: caches,
                snapshot: CacheSnapshot,
                rules: caches,
                report: get_cache_health(GetCacheHealthRequest) -> GetCacheHealthResponse,
                tool: cache_get_health "Caches: disabled caches, the hit rate over the window, and evictions that show thrashing.",
                thresholds: caches: CacheThresholds,
                pushed: {
                    enabled: flag,
                    hits: u64,
                    misses: u64,
                    evictions: u64,
                    size: u64,
                    max_size: u64 or unbounded,
                },
                codes: {
                    CacheDisabled => "CACHE_DISABLED", Warning,
                        "cache not enabled",
                        "Enable the cache or remove it from the configuration";
                    CacheLowHitRate => "CACHE_LOW_HIT_RATE", Warning,
                        "hit rate < 30% over at least 100 lookups",
                        "Review cache TTL settings or increase cache size";
                    CacheHighEvictions => "CACHE_HIGH_EVICTIONS", Warning,
                        "evictions in the window >= cache size (thrashing)",
                        "Increase the cache's maximum size or narrow what it holds; it is thrashing";
                },
            }
            Watchers {
                key: "watchers",
                field: watchers,
                snapshot: WatcherSnapshot,
                rules: watchers,
                report: get_watcher_health(GetWatcherHealthRequest) -> GetWatcherHealthResponse,
                tool: watcher_get_health "File and resource watchers: watchers that stopped, and consecutive errors.",
                thresholds: watchers: WatcherThresholds,
                pushed: {
                    running: flag,
                    consecutive_errors: u32,
                },
                codes: {
                    WatcherStopped => "WATCHER_STOPPED", Warning,
                        "watcher not running",
                        "Restart the watcher and check its logs for why it stopped";
                    WatcherErrors => "WATCHER_ERRORS", Warning,
                        "consecutive errors > 0",
                        "Check the watcher's logs and the resource it watches";
                    WatcherHighErrors => "WATCHER_HIGH_ERRORS", Critical,
                        "consecutive errors >= 10",
                        "The watcher keeps failing: fix the resource it watches or restart it";
                },
            }
            Schedulers {
                key: "schedulers",
                field: schedulers,
                snapshot: SchedulerSnapshot,
                rules: schedulers,
                report: get_scheduler_health(GetSchedulerHealthRequest) -> GetSchedulerHealthResponse,
                tool: scheduler_get_health "Task schedulers: schedulers that did not start, and those whose every task is paused.",
                pushed: {
                    started: flag,
                    tasks: u32,
                    paused_tasks: u32,
                },
                codes: {
                    SchedulerNotStarted => "SCHEDULER_NOT_STARTED", Warning,
                        "scheduler not started",
                        "Start the scheduler and check its configuration";
                    SchedulerAllTasksPaused => "SCHEDULER_ALL_TASKS_PAUSED", Warning,
                        "has tasks and all are paused",
                        "Resume the paused tasks if the pause was not intended";
                },
            }
            Executors {
                key: "executors",
                field: executors,
                snapshot: ExecutorSnapshot,
                rules: executors,
                report: get_executor_health(GetExecutorHealthRequest) -> GetExecutorHealthResponse,
                tool: executor_get_health "Thread pools and executors: unhealthy or degraded states, thread and queue use near saturation, and a queue backlog.",
                thresholds: executors: ExecutorThresholds,
                pushed: {
                    state: ExecutorState,
                    active: u32,
                    max_threads: u32 or unknown,
                    queued: u32,
                    queue_capacity: u32 or unbounded,
                },
                codes: {
                    ExecutorUnhealthy => "EXECUTOR_UNHEALTHY", Critical,
                        "state shutdown, terminated or critical",
                        "Restart the executor or the service; it no longer runs tasks";
                    ExecutorDegraded => "EXECUTOR_DEGRADED", Warning,
                        "state degraded, draining or idle",
                        "Check why the executor is not running normally";
                    ExecutorNearSaturation => "EXECUTOR_NEAR_SATURATION", Warning,
                        "max(active/max threads, queued/queue capacity) >= 90%",
                        "Scale up the executor's threads or queue, or reduce the work submitted";
                    ExecutorQueueBacklog => "EXECUTOR_QUEUE_BACKLOG", Warning,
                        "queued tasks > 50",
                        "Scale up process pool or optimize task processing";
                },
            }
            WebServer {
                key: "webServer",
                field: web_servers,
                snapshot: WebServerSnapshot,
                rules: web_server,
                report: get_web_server_health(GetWebServerHealthRequest) -> GetWebServerHealthResponse,
                tool: undertow_get_health "The web server (Undertow and the like): busy workers against the maximum, the request queue, the error rate over the window, connections per worker.",
                thresholds: web_server: WebServerThresholds,
                pushed: {
                    busy_workers: u32,
                    max_workers: u32 or unknown,
                    queued: u32,
                    queue_capacity: u32 or unknown,
                    requests: u64,
                    errors: u64,
                    connections: u32,
                },
                codes: {
                    WebWorkerSaturated => "WEB_WORKER_SATURATED", Critical,
                        "busy workers >= max workers",
                        "Add workers or instances; every worker is busy and requests will queue";
                    WebWorkerHighLoad => "WEB_WORKER_HIGH_LOAD", Warning,
                        "busy/max workers >= 80%",
                        "Plan more workers or instances before the pool saturates";
                    WebQueueHigh => "WEB_QUEUE_HIGH", Critical,
                        "queued > 50% of queue capacity",
                        "Scale out or shed load; requests are waiting for workers";
                    WebListenerHighErrorRate => "WEB_LISTENER_HIGH_ERROR_RATE", Warning,
                        "errors/requests in the window > 5%",
                        "Check the application logs for the failing requests";
                    WebHighConnectionRatio => "WEB_HIGH_CONNECTION_RATIO", Info,
                        "connections > 10 x max workers",
                        "Check keep-alive settings and idle clients holding connections";
                },
            }
            Runtime {
                key: "runtime",
                field: runtimes,
                snapshot: RuntimeSnapshot,
                rules: runtime,
                report: get_runtime_health(GetRuntimeHealthRequest) -> GetRuntimeHealthResponse,
                tool: runtime_get_health "The language runtime: heap use against its maximum, and blocked threads.",
                thresholds: runtime: RuntimeThresholds,
                pushed: {
                    heap_used_bytes: u64,
                    heap_max_bytes: u64 or unknown,
                    blocked_threads: u32,
                },
                codes: {
                    JvmHeapCritical => "JVM_HEAP_CRITICAL", Critical,
                        "heap used/max > 95%",
                        "Increase the heap or find the leak now; out-of-memory errors are imminent";
                    JvmHeapPressure => "JVM_HEAP_PRESSURE", Warning,
                        "heap used/max > 85%",
                        "Review memory use and garbage collection; consider a larger heap";
                    JvmBlockedThreads => "JVM_BLOCKED_THREADS", Warning,
                        "blocked threads > 0",
                        "Take a thread dump and look for lock contention";
                },
            }
            Performance {
                key: "performance",
                field: performance,
                snapshot: PerformanceSnapshot,
                rules: performance,
                report: get_performance_health(GetPerformanceHealthRequest) -> GetPerformanceHealthResponse,
                tool: performance_get_health "Slow calls: slow queries, slow requests and slow outbound HTTP calls counted in the window.",
                pushed: {
                    slow_queries: u64,
                    slow_requests: u64,
                    slow_http_calls: u64,
                },
                codes: {
                    PerfSlowQueries => "PERF_SLOW_QUERIES", Info,
                        "slow queries in the window > 0",
                        "Review the slow query log and add indexes or cache results";
                    PerfSlowRequests => "PERF_SLOW_REQUESTS", Info,
                        "slow requests in the window > 0",
                        "Profile the slow endpoints";
                    PerfSlowHttp => "PERF_SLOW_HTTP", Info,
                        "slow outbound HTTP calls in the window > 0",
                        "Check the remote services' latency and set timeouts";
                },
            }
            Host {
                key: "host",
                field: host,
                snapshot: HostSnapshot,
                rules: host,
                report: get_host_health(GetHostHealthRequest) -> GetHostHealthResponse,
                tool: host_get_health "The host: CPU (averaged over a window), memory and each disk of the machine healthscore runs on, and of the nodes it scrapes.",
                thresholds: host: HostThresholds,
                codes: {
                    HostCpuCritical => "HOST_CPU_CRITICAL", Critical,
                        "CPU > 95% averaged over the window",
                        "Reduce concurrent processes, scale out or move to a larger machine now";
                    HostCpuHigh => "HOST_CPU_HIGH", Warning,
                        "CPU > 80% averaged over the window",
                        "Consider reducing concurrent processes or upgrading CPU";
                    HostMemoryCritical => "HOST_MEMORY_CRITICAL", Critical,
                        "memory > 95%",
                        "Free memory now (stop processes, clear caches) or the kernel will start killing them";
                    HostMemoryHigh => "HOST_MEMORY_HIGH", Warning,
                        "memory > 85%",
                        "Clear caches or increase available memory";
                    HostDiskCritical => "HOST_DISK_CRITICAL", Critical,
                        "a mount > 98% full",
                        "Free space on this filesystem now; writes are about to fail";
                    HostDiskHigh => "HOST_DISK_HIGH", Warning,
                        "a mount > 90% full",
                        "Clean up old files and logs or grow the filesystem";
                    HostCollectorError => "HOST_COLLECTOR_ERROR", Warning,
                        "the host sampler failed to read a value",
                        "Check healthscore's permissions and logs; host values may be missing";
                },
            }
        }
    };
}
pub(crate) use for_each_subsystem;

/// Reads the table as it is written, makes each row one group of its ten columns in a fixed
/// order, and hands the rows to [`select!`] with the columns asked for.
macro_rules! rows {
    ($then:ident $columns:tt $(
        $variant:ident {
            key: $key:literal,
            field: $field:ident,
            snapshot: $snapshot:ident,
            rules: $rules:ident,
            report: $rpc:ident($request:ident) -> $response:ident,
            tool: $tool:ident $about:literal,
            $(thresholds: $thresholds:ident: $thresholds_type:ident,)?
            $(pushed: { $($fields:tt)* },)?
            codes: { $($codes:tt)* },
        }
    )+) => {
        $crate::core::subsystem::select! { $then $columns [] $(
            {
                $variant $key $field $snapshot $rules [$rpc $request $response] [$tool $about]
                [$($thresholds $thresholds_type)?] [$($field { $($fields)* })?] [$($codes)*]
            }
        )+ }
    };
}
pub(crate) use rows;

/// Picks the named columns of each row, in the order named, and calls `$then!` with the rows
/// so cut, each ended by `;`. `[$($columns)*]` is what was asked, `[$($done)*]` the rows cut so
/// far; each step takes one column of the first row.
macro_rules! select {
    // Every row cut.
    ($then:ident $columns:tt [$($done:tt)*]) => {
        $then! { $($done)* }
    };
    ($then:ident $columns:tt $done:tt $row:tt $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done $row $columns [] $($rows)* }
    };
    // The first row's columns all taken.
    (@row $then:ident $columns:tt [$($done:tt)*] $row:tt [] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { $then $columns [$($done)* $($cut)*;] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [variant $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $variant] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [key $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $key] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [field $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $field] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [snapshot $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $snapshot] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [rules $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $rules] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [report $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $report] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [tool $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $tool] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [thresholds $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $thresholds] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [pushed $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $pushed] $($rows)* }
    };
    (@row $then:ident $columns:tt $done:tt
        {$variant:tt $key:tt $field:tt $snapshot:tt $rules:tt
            $report:tt $tool:tt $thresholds:tt $pushed:tt $codes:tt}
        [codes $($left:ident)*] [$($cut:tt)*] $($rows:tt)*) => {
        $crate::core::subsystem::select! { @row $then $columns $done
            {$variant $key $field $snapshot $rules $report $tool $thresholds $pushed $codes}
            [$($left)*] [$($cut)* $codes] $($rows)* }
    };
}
pub(crate) use select;

macro_rules! subsystem_enum {
    ($($variant:ident $key:literal;)+) => {
        /// The subsystems a report can be about.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Subsystem { $($variant),+ }

        impl Subsystem {
            /// Every subsystem, in report order.
            pub const ALL: [Subsystem; [$(Subsystem::$variant),+].len()] = [$(Self::$variant),+];

            /// The key used in maps, issue-code prefixes and grpc.health.v1 service names.
            pub fn key(self) -> &'static str {
                match self { $(Self::$variant => $key),+ }
            }
        }
    };
}
for_each_subsystem!(subsystem_enum: variant key);

/// At most one value per subsystem, iterated in report order: a map keyed by `Subsystem`
/// itself, so that no lookup goes through a key string and nothing needs sorting.
#[derive(Clone, Debug, PartialEq)]
pub struct BySubsystem<T>([Option<T>; Subsystem::ALL.len()]);

impl<T> Default for BySubsystem<T> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| None))
    }
}

impl<T> BySubsystem<T> {
    pub fn get(&self, subsystem: Subsystem) -> Option<&T> {
        self.0[subsystem as usize].as_ref()
    }

    pub fn get_mut(&mut self, subsystem: Subsystem) -> Option<&mut T> {
        self.0[subsystem as usize].as_mut()
    }

    /// The value of `subsystem`, made with `T::default()` when there is none yet.
    pub fn get_or_default(&mut self, subsystem: Subsystem) -> &mut T
    where
        T: Default,
    {
        self.0[subsystem as usize].get_or_insert_with(T::default)
    }

    pub fn insert(&mut self, subsystem: Subsystem, value: T) {
        self.0[subsystem as usize] = Some(value);
    }

    pub fn iter(&self) -> impl Iterator<Item = (Subsystem, &T)> + '_ {
        Subsystem::ALL
            .iter()
            .zip(&self.0)
            .filter_map(|(subsystem, value)| Some((*subsystem, value.as_ref()?)))
    }

    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.0.iter().flatten()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.0.iter_mut().flatten()
    }
}

impl<T> FromIterator<(Subsystem, T)> for BySubsystem<T> {
    fn from_iter<I: IntoIterator<Item = (Subsystem, T)>>(pairs: I) -> Self {
        let mut map = Self::default();
        for (subsystem, value) in pairs {
            map.insert(subsystem, value);
        }
        map
    }
}

impl FromStr for Subsystem {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|subsystem| subsystem.key() == s)
            .ok_or_else(|| {
                let keys: Vec<_> = Self::ALL.iter().map(|s| s.key()).collect();
                format!(
                    "unknown subsystem {s:?} (expected one of {})",
                    keys.join(", ")
                )
            })
    }
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl Serialize for Subsystem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subsystem_indexes_its_own_slot() {
        for (place, subsystem) in Subsystem::ALL.iter().enumerate() {
            assert_eq!(*subsystem as usize, place);
        }
        let map: BySubsystem<usize> = [(Subsystem::Host, 1), (Subsystem::Datasources, 2)]
            .into_iter()
            .collect();
        let listed: Vec<_> = map.iter().collect();
        assert_eq!(
            listed,
            [(Subsystem::Datasources, &2), (Subsystem::Host, &1)]
        );
        assert_eq!(map.get(Subsystem::Caches), None);
    }
}
