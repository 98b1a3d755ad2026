//! The one list of subsystems. Everything that enumerates them (the `Subsystem` enum, the
//! snapshot lists of a push, the store's slots, the wire conversions, the report RPCs, the CLI's
//! JSON) expands [`for_each_subsystem!`], so a new subsystem is one row here plus its rules file.
//!
//! Pure: no I/O, no clock.

use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};

/// Calls `$then!` with every subsystem's row:
///
/// `Variant "key" field Snapshot rpc(Request) -> Response [pushed as wire_field];`
///
/// - `key`: the name in maps, issue-code prefixes and grpc.health.v1 service names;
/// - `field`: the name of its list in a push and in the store;
/// - `Snapshot`: the core snapshot type (in `core::scoring::snapshot`); for pushed subsystems
///   also the name of the wire message in `healthscore.v1`;
/// - `rpc(Request) -> Response`: its report RPC in `healthscore.v1.HealthReports`;
/// - `pushed as wire_field`: apps send it in `ReportMetricsRequest.<wire_field>` (the host
///   subsystem is sampled, not pushed).
macro_rules! for_each_subsystem {
    ($then:ident) => {
        $then! {
            Datasources "datasources" datasources DatasourceSnapshot
                get_datasource_health(GetDatasourceHealthRequest) -> GetDatasourceHealthResponse pushed as datasources;
            Caches "caches" caches CacheSnapshot
                get_cache_health(GetCacheHealthRequest) -> GetCacheHealthResponse pushed as caches;
            Watchers "watchers" watchers WatcherSnapshot
                get_watcher_health(GetWatcherHealthRequest) -> GetWatcherHealthResponse pushed as watchers;
            Schedulers "schedulers" schedulers SchedulerSnapshot
                get_scheduler_health(GetSchedulerHealthRequest) -> GetSchedulerHealthResponse pushed as schedulers;
            Executors "executors" executors ExecutorSnapshot
                get_executor_health(GetExecutorHealthRequest) -> GetExecutorHealthResponse pushed as executors;
            WebServer "webServer" web_servers WebServerSnapshot
                get_web_server_health(GetWebServerHealthRequest) -> GetWebServerHealthResponse pushed as web_servers;
            Runtime "runtime" runtimes RuntimeSnapshot
                get_runtime_health(GetRuntimeHealthRequest) -> GetRuntimeHealthResponse pushed as runtimes;
            Performance "performance" performance PerformanceSnapshot
                get_performance_health(GetPerformanceHealthRequest) -> GetPerformanceHealthResponse pushed as performance;
            Host "host" host HostSnapshot
                get_host_health(GetHostHealthRequest) -> GetHostHealthResponse;
        }
    };
}
pub(crate) use for_each_subsystem;

macro_rules! subsystem_enum {
    ($($variant:ident $key:literal $field:ident $snapshot:ident
        $rpc:ident($request:ident) -> $response:ident $(pushed as $wire:ident)?;)+) => {
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
for_each_subsystem!(subsystem_enum);

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
