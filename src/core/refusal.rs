//! The one error a refused input gets: which field, what is wrong, and what kind of refusal it
//! is. Below the rest of the core: snapshot checks, the push builder and the published views
//! all return it.

/// Why an input was refused: the request is malformed; or it is valid but a limit of the
/// server's (sources, entities, pushes a second) is full; or its token may not write there.
/// Ordered by weight: an answer that sums up several refusals names the heaviest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// The input is wrong: gRPC INVALID_ARGUMENT, HTTP 400.
    Invalid,
    /// The input is fine but the server is full: gRPC RESOURCE_EXHAUSTED, HTTP 429.
    Exhausted,
    /// The caller's token does not allow it: gRPC PERMISSION_DENIED, HTTP 403.
    Denied,
}

/// A field of an input or config that cannot be accepted: `field` is the path to it
/// (`datasources[2] "mainDB".active`, `limits.max_sources`), `problem` says what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub refusal: Refusal,
    pub field: String,
    pub problem: String,
}

impl FieldError {
    /// The input is wrong.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            refusal: Refusal::Invalid,
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The input is fine but a server limit is full.
    pub fn exhausted(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            refusal: Refusal::Exhausted,
            ..Self::new(field, problem)
        }
    }

    /// The caller may not do this.
    pub fn denied(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            refusal: Refusal::Denied,
            ..Self::new(field, problem)
        }
    }
}
