//! healthscore: explainable health reports for a service's subsystems.
//!
//! The module list is the data flow: [`sources`] turn inputs into validated pushes; the
//! [`engine`] owns the [`store`] and publishes states built by the pure [`core`]; [`faces`]
//! serve those states and [`alerts`] posts their issues; [`app`] wires them together; [`cli`]
//! and [`config`] are the binary's. Below every part: [`setting`] (durations, the error that
//! names a config key), [`http_client`] and [`proto`], the contract's generated types.

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
pub mod proto;
pub mod setting;
pub mod sources;
pub mod store;
pub mod telemetry;
