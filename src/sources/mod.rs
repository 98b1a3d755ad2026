//! Inputs: each turns something outside (the host, a push, a scrape, an OTLP export) into
//! validated [`Push`](crate::core::ingest::Push)es for the engine.
//!
//! Sources that run on their own (the host sampler, scrape targets) implement [`Source`] and are
//! started by the app. Sources that answer a request (push, OTLP) are called by the face that
//! hosts the request.

pub mod discovery;
pub mod exposition;
pub mod fleet;
pub mod host;
pub mod mapping;
pub mod node_exporter;
pub mod otlp;
pub mod push;
pub mod scrape;

use crate::engine::Engine;

/// What a started source leaves to run: it feeds the engine until the engine stops. The app
/// spawns it (and stops it with everything else it runs).
pub type Running = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A source that runs on its own, started once by the app.
pub trait Source {
    /// Starts the source. Returns once its first reading is in the engine, so the reports it
    /// feeds are there when the ports open, with the rest of its work.
    fn start(
        self,
        engine: &Engine,
    ) -> impl std::future::Future<Output = Result<Running, SourceError>> + Send;
}

/// Why a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot start the {0}: {1}")]
    Start(&'static str, #[source] std::io::Error),
    #[error("the {0} stopped before its first reading")]
    Stopped(&'static str),
}

/// What lets a request-driven source's pushes in, by source name: the face's token grant and
/// the source's rate.
pub trait Admit: Sync {
    fn admit<'a>(
        &'a self,
        source: &'a str,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<(), crate::core::ingest::FieldError>>
                + Send
                + 'a,
        >,
    >;
}
