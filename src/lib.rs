//! healthscore: explainable health reports for a service's subsystems.
//!
//! The module list is the data flow: [`sources`] turn inputs into validated pushes; the
//! [`engine`] owns the [`store`] and publishes states built by the pure [`core`]; [`faces`]
//! serve those states; [`app`] wires them together; [`cli`] and [`config`] are the binary's.

pub mod alerts;
pub mod allocator;
pub mod app;
pub mod cli;
pub mod config;
pub mod core;
pub mod engine;
pub mod faces;
pub mod history;
pub mod http_client;
pub mod sources;
pub mod store;
pub mod telemetry;

/// The contract's generated types, for Rust clients and services that mount the engine.
pub use faces::grpc::proto;
