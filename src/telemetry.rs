//! healthscore's own counters: pushes, host samples, scrapes and OTLP points by result, and
//! watch streams open. The faces that see these
//! events count them here; `/metrics` exposes them next to the reports' series.

use std::sync::Arc;

use crate::{
    core::ingest::Refusal,
    engine::{EngineError, PushOutcome},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

/// What became of a push.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the label values, as Prometheus spells them
pub enum PushResult {
    /// Applied to the state.
    accepted,
    /// Valid but older than the source's last push: not applied.
    not_applied,
    /// Refused as invalid (INVALID_ARGUMENT, HTTP 400).
    invalid,
    /// Refused because a limit was full (RESOURCE_EXHAUSTED, HTTP 429).
    exhausted,
    /// Refused because healthscore was shutting down (UNAVAILABLE, HTTP 503).
    unavailable,
    /// Refused because the token may not write the source (PERMISSION_DENIED, HTTP 403).
    denied,
}

impl PushResult {
    /// The result of a push that the engine answered with `result`.
    pub fn of(result: &Result<PushOutcome, EngineError>) -> Self {
        match result {
            Ok(outcome) if outcome.applied => Self::accepted,
            Ok(_) => Self::not_applied,
            Err(EngineError::Invalid(error)) => match error.refusal {
                Refusal::Invalid => Self::invalid,
                Refusal::Exhausted => Self::exhausted,
                Refusal::Denied => Self::denied,
            },
            Err(EngineError::Stopped) => Self::unavailable,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    result: PushResult,
}

/// What became of a scrape.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the label values, as Prometheus spells them
pub enum ScrapeResult {
    /// Read and applied (or a heartbeat).
    ok,
    /// The target did not answer properly: connection, timeout, HTTP status, size.
    failed,
    /// The answer could not be read or mapped, or was refused as a push would be.
    refused,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScrapeLabels {
    target: String,
    result: ScrapeResult,
}

/// What became of an OTLP data point.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the label values, as Prometheus spells them
pub enum PointResult {
    /// Read into a snapshot that was applied.
    applied,
    /// Of a metric no mapping reads.
    ignored,
    /// Refused with its resource (reported in the partial success).
    rejected,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PointLabels {
    result: PointResult,
}

/// The counters, and the registry that encodes them.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    pushes: Family<PushLabels, Counter>,
    scrapes: Family<ScrapeLabels, Counter>,
    otlp_points: Family<PointLabels, Counter>,
    host_samples: Family<PushLabels, Counter>,
    alerts_sent: Family<AlertLabels, Counter>,
    alerts_dropped: Counter,
    sd_refreshes: Family<SdLabels, Counter>,
    secret_reloads: Family<SecretLabels, Counter>,
    scrape_durations: Family<ScrapeNameLabels, Histogram, fn() -> Histogram>,
    watch_streams: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScrapeNameLabels {
    scrape: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SdLabels {
    scrape: String,
    result: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    secret: String,
    result: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    alertmanager: String,
    result: Outcome,
}

/// What became of an alert sent, a target list read or a secret re-read.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the label values, as Prometheus spells them
enum Outcome {
    ok,
    failed,
}

impl Outcome {
    fn of(ok: bool) -> Self {
        if ok {
            Self::ok
        } else {
            Self::failed
        }
    }
}

/// An open watch stream, counted until dropped.
#[derive(Debug)]
pub struct OpenStream(Gauge);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Telemetry {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let pushes = Family::<PushLabels, Counter>::default();
        let watch_streams = Gauge::default();
        let scrapes = Family::<ScrapeLabels, Counter>::default();
        let otlp_points = Family::<PointLabels, Counter>::default();
        let host_samples = Family::<PushLabels, Counter>::default();
        let alerts_sent = Family::<AlertLabels, Counter>::default();
        let alerts_dropped = Counter::default();
        let sd_refreshes = Family::<SdLabels, Counter>::default();
        let secret_reloads = Family::<SecretLabels, Counter>::default();
        let scrape_durations: Family<_, _, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 15)));
        registry.register(
            "healthscore_scrape_duration_seconds",
            "Time a [[scrape]]'s targets took to answer and be read, from connecting to the pushed snapshot",
            scrape_durations.clone(),
        );
        registry.register(
            "healthscore_sd_refreshes",
            "Reads of a [[scrape]]'s target list (file_sd, http_sd), by result",
            sd_refreshes.clone(),
        );
        registry.register(
            "healthscore_secret_reloads",
            "Re-reads of changed secret files (tls: the certificates, tokens: the token files), by result; a failed one keeps what is in use",
            secret_reloads.clone(),
        );
        registry.register(
            "healthscore_alerts_sent",
            "Alerts posted to each Alertmanager, by result (a retried alert counts per attempt)",
            alerts_sent.clone(),
        );
        registry.register(
            "healthscore_alerts_dropped",
            "Alerts dropped: an Alertmanager queue was full, or a batch failed for a whole resend",
            alerts_dropped.clone(),
        );
        registry.register(
            "healthscore_scrapes",
            "Scrapes of [[scrape]] targets, by target and result",
            scrapes.clone(),
        );
        registry.register(
            "healthscore_otlp_points",
            "OTLP data points received, by result",
            otlp_points.clone(),
        );
        registry.register(
            "healthscore_pushes",
            "Pushes received (ReportMetrics), by result",
            pushes.clone(),
        );
        registry.register(
            "healthscore_host_samples",
            "Host sampler readings handed to the engine, by result (as pushes)",
            host_samples.clone(),
        );
        registry.register(
            "healthscore_watch_streams",
            "Watch streams open: WatchHealth, grpc.health.v1 Watch and /v1/watch",
            watch_streams.clone(),
        );
        // Every result reads 0 from the start rather than appearing with its first push.
        for result in [
            PushResult::accepted,
            PushResult::not_applied,
            PushResult::invalid,
            PushResult::exhausted,
            PushResult::unavailable,
        ] {
            drop(pushes.get_or_create(&PushLabels { result }));
        }
        for result in [
            PushResult::accepted,
            PushResult::invalid,
            PushResult::exhausted,
        ] {
            drop(host_samples.get_or_create(&PushLabels { result }));
        }
        for result in [
            PointResult::applied,
            PointResult::ignored,
            PointResult::rejected,
        ] {
            drop(otlp_points.get_or_create(&PointLabels { result }));
        }
        Arc::new(Self {
            registry,
            pushes,
            scrapes,
            otlp_points,
            host_samples,
            alerts_sent,
            alerts_dropped,
            sd_refreshes,
            secret_reloads,
            scrape_durations,
            watch_streams,
        })
    }

    pub fn push(&self, result: PushResult) {
        self.pushes.get_or_create(&PushLabels { result }).inc();
    }

    pub fn host_sample(&self, result: PushResult) {
        self.host_samples
            .get_or_create(&PushLabels { result })
            .inc();
    }

    /// Counts `count` alerts posted to `alertmanager` (0 makes the series exist).
    pub fn alerts_sent(&self, alertmanager: &str, ok: bool, count: u64) {
        let result = Outcome::of(ok);
        self.alerts_sent
            .get_or_create(&AlertLabels {
                alertmanager: alertmanager.to_owned(),
                result,
            })
            .inc_by(count);
    }

    /// Counts one re-read of `secret`'s changed files.
    pub fn secret_reload(&self, secret: &str, ok: bool) {
        self.secret_reloads
            .get_or_create(&SecretLabels {
                secret: secret.to_owned(),
                result: Outcome::of(ok),
            })
            .inc();
    }

    /// Counts one read of `scrape`'s target list.
    pub fn sd_refresh(&self, scrape: &str, ok: bool) {
        let result = Outcome::of(ok);
        self.sd_refreshes
            .get_or_create(&SdLabels {
                scrape: scrape.to_owned(),
                result,
            })
            .inc();
    }

    pub fn alerts_dropped(&self, count: u64) {
        self.alerts_dropped.inc_by(count);
    }

    pub fn scrape(&self, target: &str, result: ScrapeResult) {
        self.scrapes
            .get_or_create(&ScrapeLabels {
                target: target.to_owned(),
                result,
            })
            .inc();
    }

    /// Observes one answered scrape of a target of `scrape` that took `seconds`.
    pub fn scrape_duration(&self, scrape: &str, seconds: f64) {
        self.scrape_durations
            .get_or_create(&ScrapeNameLabels {
                scrape: scrape.to_owned(),
            })
            .observe(seconds);
    }

    /// Drops the series of a target discovery no longer lists, so pods that come and go do not
    /// grow `/metrics` for ever.
    pub fn forget_target(&self, target: &str) {
        for result in [
            ScrapeResult::ok,
            ScrapeResult::failed,
            ScrapeResult::refused,
        ] {
            self.scrapes.remove(&ScrapeLabels {
                target: target.to_owned(),
                result,
            });
        }
    }

    pub fn otlp_points(&self, result: PointResult, points: u64) {
        self.otlp_points
            .get_or_create(&PointLabels { result })
            .inc_by(points);
    }

    /// Counts a watch stream as open until the returned guard is dropped.
    pub fn stream_opened(&self) -> OpenStream {
        self.watch_streams.inc();
        OpenStream(self.watch_streams.clone())
    }

    /// Appends the counters in OpenMetrics text, without the closing `# EOF`.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
    }
}
