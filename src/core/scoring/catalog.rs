//! The issue-code catalog: every code's name, subsystem, default severity, trigger and suggested
//! action, written once. Rules refer to codes by `Code`; the strings live only here.

use std::{fmt, str::FromStr};

use super::model::{Severity, Subsystem};

/// One catalog row.
#[derive(Debug)]
pub struct Entry {
    pub code: Code,
    pub name: &'static str,
    /// `None` for codes any pushed subsystem can raise.
    pub subsystem: Option<Subsystem>,
    pub severity: Severity,
    /// When the rule fires, with its default threshold.
    pub trigger: &'static str,
    pub suggested_action: &'static str,
}

macro_rules! catalog {
    ($($code:ident => $name:literal, $subsystem:expr, $severity:ident, $trigger:literal, $action:literal;)+) => {
        /// An issue code. Its string form is the catalog's name (`DS_POOL_SATURATED`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($code),+ }

        /// Every code, in catalog order.
        pub const CATALOG: &[Entry] = &[
            $(Entry {
                code: Code::$code,
                name: $name,
                subsystem: $subsystem,
                severity: Severity::$severity,
                trigger: $trigger,
                suggested_action: $action,
            }),+
        ];
    };
}

use Subsystem::*;

catalog! {
    DsPoolNotStarted => "DS_POOL_NOT_STARTED", Some(Datasources), Warning,
        "pool not started",
        "Check the datasource configuration and startup logs; the pool never started";
    DsPoolHighUtilization => "DS_POOL_HIGH_UTILIZATION", Some(Datasources), Warning,
        "active/max > 80%",
        "Monitor pool utilization and consider increasing pool size";
    DsPoolSaturated => "DS_POOL_SATURATED", Some(Datasources), Critical,
        "active/max >= 95%",
        "Increase the pool size or find the slow or leaked connections holding it";
    DsPoolThreadsAwaiting => "DS_POOL_THREADS_AWAITING", Some(Datasources), Warning,
        "threads waiting for a connection > 0",
        "Increase the pool size or shorten the transactions that hold connections";
    CacheDisabled => "CACHE_DISABLED", Some(Caches), Warning,
        "cache not enabled",
        "Enable the cache or remove it from the configuration";
    CacheLowHitRate => "CACHE_LOW_HIT_RATE", Some(Caches), Warning,
        "hit rate < 30% over at least 100 lookups",
        "Review cache TTL settings or increase cache size";
    CacheHighEvictions => "CACHE_HIGH_EVICTIONS", Some(Caches), Warning,
        "evictions in the window >= cache size (thrashing)",
        "Increase the cache's maximum size or narrow what it holds; it is thrashing";
    WatcherStopped => "WATCHER_STOPPED", Some(Watchers), Warning,
        "watcher not running",
        "Restart the watcher and check its logs for why it stopped";
    WatcherErrors => "WATCHER_ERRORS", Some(Watchers), Warning,
        "consecutive errors > 0",
        "Check the watcher's logs and the resource it watches";
    WatcherHighErrors => "WATCHER_HIGH_ERRORS", Some(Watchers), Critical,
        "consecutive errors >= 10",
        "The watcher keeps failing: fix the resource it watches or restart it";
    SchedulerNotStarted => "SCHEDULER_NOT_STARTED", Some(Schedulers), Warning,
        "scheduler not started",
        "Start the scheduler and check its configuration";
    SchedulerAllTasksPaused => "SCHEDULER_ALL_TASKS_PAUSED", Some(Schedulers), Warning,
        "has tasks and all are paused",
        "Resume the paused tasks if the pause was not intended";
    WebWorkerSaturated => "WEB_WORKER_SATURATED", Some(WebServer), Critical,
        "busy workers >= max workers",
        "Add workers or instances; every worker is busy and requests will queue";
    WebWorkerHighLoad => "WEB_WORKER_HIGH_LOAD", Some(WebServer), Warning,
        "busy/max workers >= 80%",
        "Plan more workers or instances before the pool saturates";
    WebQueueHigh => "WEB_QUEUE_HIGH", Some(WebServer), Critical,
        "queued > 50% of queue capacity",
        "Scale out or shed load; requests are waiting for workers";
    WebListenerHighErrorRate => "WEB_LISTENER_HIGH_ERROR_RATE", Some(WebServer), Warning,
        "errors/requests in the window > 5%",
        "Check the application logs for the failing requests";
    WebHighConnectionRatio => "WEB_HIGH_CONNECTION_RATIO", Some(WebServer), Info,
        "connections > 10 x max workers",
        "Check keep-alive settings and idle clients holding connections";
    ExecutorUnhealthy => "EXECUTOR_UNHEALTHY", Some(Executors), Critical,
        "state shutdown, terminated or critical",
        "Restart the executor or the service; it no longer runs tasks";
    ExecutorDegraded => "EXECUTOR_DEGRADED", Some(Executors), Warning,
        "state degraded, draining or idle",
        "Check why the executor is not running normally";
    ExecutorNearSaturation => "EXECUTOR_NEAR_SATURATION", Some(Executors), Warning,
        "max(active/max threads, queued/queue capacity) >= 90%",
        "Scale up the executor's threads or queue, or reduce the work submitted";
    ExecutorQueueBacklog => "EXECUTOR_QUEUE_BACKLOG", Some(Executors), Warning,
        "queued tasks > 50",
        "Scale up process pool or optimize task processing";
    JvmHeapCritical => "JVM_HEAP_CRITICAL", Some(Runtime), Critical,
        "heap used/max > 95%",
        "Increase the heap or find the leak now; out-of-memory errors are imminent";
    JvmHeapPressure => "JVM_HEAP_PRESSURE", Some(Runtime), Warning,
        "heap used/max > 85%",
        "Review memory use and garbage collection; consider a larger heap";
    JvmBlockedThreads => "JVM_BLOCKED_THREADS", Some(Runtime), Warning,
        "blocked threads > 0",
        "Take a thread dump and look for lock contention";
    PerfSlowQueries => "PERF_SLOW_QUERIES", Some(Performance), Info,
        "slow queries in the window > 0",
        "Review the slow query log and add indexes or cache results";
    PerfSlowRequests => "PERF_SLOW_REQUESTS", Some(Performance), Info,
        "slow requests in the window > 0",
        "Profile the slow endpoints";
    PerfSlowHttp => "PERF_SLOW_HTTP", Some(Performance), Info,
        "slow outbound HTTP calls in the window > 0",
        "Check the remote services' latency and set timeouts";
    HostCpuCritical => "HOST_CPU_CRITICAL", Some(Host), Critical,
        "CPU > 95% averaged over the window",
        "Reduce concurrent processes, scale out or move to a larger machine now";
    HostCpuHigh => "HOST_CPU_HIGH", Some(Host), Warning,
        "CPU > 80% averaged over the window",
        "Consider reducing concurrent processes or upgrading CPU";
    HostMemoryCritical => "HOST_MEMORY_CRITICAL", Some(Host), Critical,
        "memory > 95%",
        "Free memory now (stop processes, clear caches) or the kernel will start killing them";
    HostMemoryHigh => "HOST_MEMORY_HIGH", Some(Host), Warning,
        "memory > 85%",
        "Clear caches or increase available memory";
    HostDiskCritical => "HOST_DISK_CRITICAL", Some(Host), Critical,
        "a mount > 98% full",
        "Free space on this filesystem now; writes are about to fail";
    HostDiskHigh => "HOST_DISK_HIGH", Some(Host), Warning,
        "a mount > 90% full",
        "Clean up old files and logs or grow the filesystem";
    HostCollectorError => "HOST_COLLECTOR_ERROR", Some(Host), Warning,
        "the host sampler failed to read a value",
        "Check healthscore's permissions and logs; host values may be missing";
    SourceStale => "SOURCE_STALE", None, Critical,
        "a source missed its TTL",
        "Check that the reporting application is up and can reach healthscore";
}

impl Code {
    pub fn entry(self) -> &'static Entry {
        // CATALOG is written in declaration order, so the discriminant is the index.
        &CATALOG[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.entry().name
    }

    pub fn severity(self) -> Severity {
        self.entry().severity
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Code {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CATALOG
            .iter()
            .find(|entry| entry.name == s)
            .map(|entry| entry.code)
            .ok_or_else(|| format!("unknown issue code {s:?}"))
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_rows_are_in_declaration_order() {
        for (index, entry) in CATALOG.iter().enumerate() {
            assert_eq!(entry.code as usize, index, "{}", entry.name);
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for entry in CATALOG {
            assert_eq!(entry.name.parse::<Code>(), Ok(entry.code));
        }
        let mut names: Vec<_> = CATALOG.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
    }
}
