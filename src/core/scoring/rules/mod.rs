//! One module per subsystem: its `Snapshot` implementation (the catalog's rules for it, and the
//! checks its values must pass) and its thresholds. Where two rules read the same measure, only
//! the stronger fires.

pub mod caches;
pub mod datasources;
pub mod executors;
pub mod host;
pub mod performance;
pub mod runtime;
pub mod schedulers;
pub mod watchers;
pub mod web_server;
