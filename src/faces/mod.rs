//! Outputs: each turns the engine's published state into a protocol and maps the core's errors
//! to that protocol's. Faces read the state; they never write it (inputs go through sources).

pub mod budget;
pub mod grpc;
pub mod listener;
