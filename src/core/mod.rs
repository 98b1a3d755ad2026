//! The pure part: the subsystem table, the scoring core, what inputs hand the engine, and the
//! read model faces serve.
//!
//! Nothing here does I/O, reads a clock, or knows about async, tonic, prost or any wire format:
//! every rule and every check can be tested with a struct literal.

pub mod fleet;
pub mod ingest;
pub mod json;
pub mod probes;
pub mod published;
pub mod refusal;
pub mod scoring;
pub mod subsystem;
