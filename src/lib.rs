//! healthscore: explainable health reports for a service's subsystems.
//!
//! The module list is the data flow: `sources` turn inputs into validated pushes; the `engine`
//! owns the `store` and publishes states built by the pure `core`; `faces` serve those states
//! and `alerts` posts their issues; `app` wires them together; `cli` and `config` are the
//! binary's. Below every part: `setting` (durations, the error that names a config key),
//! `http_client` and [`proto`], the contract's generated types.
//!
//! Every module is private. What is exported is what the binary, the tests and the benchmarks
//! use, in three groups: [`service`] to run it, [`model`] to drive the core, the store and the
//! engine without a server, and [`inputs`] to feed the decoders directly. Anything else that
//! nothing uses is found by the dead-code lint.

mod alerts;
mod allocator;
mod app;
mod cli;
mod config;
mod core;
mod engine;
mod faces;
mod history;
mod http_client;
pub mod proto;
mod setting;
mod sources;
mod store;
mod telemetry;

/// Running the service: the binary's entry point, the config (with the types its sections
/// hold), and [`run`](service::run), which serves a config on listeners the caller has bound.
pub mod service {
    pub use crate::{
        allocator::tune_for_server,
        app::{run, AppError, Listeners},
        cli::main,
        config::Config,
        core::probes::{GroupConfig, NotServingAt, StartupConfig},
        faces::auth::{Scope, TokenConfig},
        history::HistoryConfig,
        setting::Delay,
        sources::scrape::{Profile, Target},
    };
}

/// The model and what builds it: pushes, the store, the engine, the scoring functions, the
/// catalog, the history and the JSON shape of a report.
pub mod model {
    pub use crate::{
        core::{
            ingest::{FieldError, Limits, Push, PushBuilder},
            json::report as json_report,
            published::View,
            scoring::{
                catalog::CATALOG,
                policy::Thresholds,
                snapshot::{CacheSnapshot, DatasourceSnapshot, WebServerSnapshot},
                subsystem_report, system_report, Code, HealthReport, Observed, Policy, Severity,
                Snapshot, Status, Subsystem,
            },
        },
        engine::Engine,
        history::{History, Transition},
        store::Store,
    };
}

/// The inputs' decoders, called without a server: the exposition parser, the scrape mapping,
/// node_exporter's host entities, the ReportMetrics conversion, the host sampler and the JSON
/// snapshot file of `healthscore push`.
pub mod inputs {
    pub use crate::{
        cli::push::snapshots,
        sources::{
            exposition::parse as parse_exposition, host::Sampler, mapping::Mapping,
            node_exporter::host_entities, push::from_wire,
        },
    };
}
