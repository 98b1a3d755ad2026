//! healthscore: explainable health reports for a service's subsystems, served over gRPC.
//!
//! The data flow is the module list: the pure [`scoring`] core, the generated [`proto`] types
//! and their conversions.

pub mod allocator;
pub mod cli;
pub mod config;
pub mod engine;
pub mod host;
pub mod proto;
pub mod scoring;
pub mod server;
pub mod store;
