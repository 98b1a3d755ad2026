//! One module per subsystem: its `Snapshot` implementation, i.e. the catalog's rules for it.
//! Where two rules read the same measure, only the stronger fires.

mod caches;
mod datasources;
mod executors;
pub mod host;
mod performance;
mod runtime;
mod schedulers;
mod watchers;
mod web_server;
