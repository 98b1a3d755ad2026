//! Re-reading secrets without a restart: the TLS files and the token files are checked every
//! 2 s and at once on SIGHUP, since cert-manager and the kubelet rewrite mounted Secrets in
//! place. A file that cannot be used keeps what is in use, says why in the log and is counted
//! (`healthscore_secret_reloads_total{secret,result}`).

use std::{sync::Arc, time::Duration, time::SystemTime};

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::telemetry::Telemetry;

/// How often the files are checked for a change.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Something read from files that can be read again.
pub trait Reloadable: Send + Sync {
    /// Its name in `healthscore_secret_reloads_total`.
    fn secret(&self) -> &'static str;

    /// Reads the files again if they changed since the last read, or if `forced`: `None` when
    /// they were not read, else whether what they hold is now in use.
    fn reload(&self, forced: bool) -> Option<bool>;
}

/// Takes over SIGHUP (whose default action ends the process), before anything is served.
pub fn hangups() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP: secrets reload on file changes only");
            None
        }
    }
}

/// Reloads `what` on change and on each of `hangup`'s signals until the runtime ends. Spawned
/// by the app.
pub async fn run(
    what: Vec<Arc<dyn Reloadable>>,
    mut hangup: Option<Signal>,
    telemetry: Arc<Telemetry>,
) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    loop {
        let forced = tokio::select! {
            _ = every.tick() => false,
            Some(()) = async {
                match &mut hangup {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        for item in &what {
            if let Some(ok) = item.reload(forced) {
                telemetry.secret_reload(item.secret(), ok);
            }
        }
    }
}

/// The modification times of `paths`: a change in any of them means a reload.
pub fn stamps<'a>(paths: impl Iterator<Item = &'a std::path::Path>) -> Vec<Option<SystemTime>> {
    paths
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}
