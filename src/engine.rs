//! The engine: one task owns the store, recomputes the reports an input changed, and publishes
//! an immutable state (with a revision) through a `tokio::sync::watch`. Readers never block it.

use std::{
    collections::{hash_map::DefaultHasher, BTreeMap},
    hash::{Hash, Hasher},
    sync::{Arc, OnceLock},
    time::{Duration, Instant, SystemTime},
};

use prost::{bytes::Bytes, Message};

use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    config::NotServingAt,
    proto::{self, health::health_check_response::ServingStatus, FieldError, Push, Stamp, View},
    scoring::{
        snapshot::HostSnapshot, system_report, HealthReport, Policy, Severity, Status, Subsystem,
        SystemHealthReport,
    },
    store::{Applied, Store},
};

/// The grpc.health.v1 name that is SERVING while the process is up (a liveness target).
pub const LIVENESS_SERVICE: &str = "healthscore.v1.HealthReports";

/// One computed state of every report. Immutable; replaced as a whole.
#[derive(Debug)]
pub struct Published {
    pub stamp: Stamp,
    /// Every subsystem's report, under `system.subsystems`.
    pub system: SystemHealthReport,
    /// The grpc.health.v1 status of every known service name.
    pub serving: BTreeMap<&'static str, ServingStatus>,
    /// `verdict` of every subsystem with no severity filter, computed once for every watcher.
    pub system_verdict: u64,
    /// The system report's encoding, with entities and without, made on first use.
    encoded: [OnceLock<Bytes>; 2],
}

impl Published {
    /// The encoded system report (every issue; with or without the entity lists), built once
    /// per state on first use and shared by every later reader.
    pub fn system_bytes(&self, omit_entities: bool) -> Bytes {
        self.encoded[usize::from(omit_entities)]
            .get_or_init(|| {
                let view = View {
                    min_severity: None,
                    omit_entities,
                };
                proto::system_report(&self.system, self.stamp, view)
                    .encode_to_vec()
                    .into()
            })
            .clone()
    }

    pub fn report(&self, subsystem: Subsystem) -> &Arc<HealthReport> {
        self.system
            .subsystems
            .get(subsystem.key())
            .expect("every subsystem has a report")
    }
}

/// A fingerprint of what a watcher is told about: the aggregate status and score of `reports`
/// and the identities of their issues at or above `min`. Metric values are left out on purpose.
pub fn verdict<'a>(
    reports: impl IntoIterator<Item = &'a Arc<HealthReport>>,
    min: Option<Severity>,
) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut status = Status::Healthy;
    let mut score: Option<u32> = None;
    for report in reports {
        status = status.max(report.status);
        if report.available {
            score = Some(score.map_or(report.score, |s| s.min(report.score)));
        }
        for issue in &report.issues {
            if min.is_none_or(|min| issue.severity >= min) {
                issue.identity().hash(&mut hasher);
            }
        }
    }
    (status, score).hash(&mut hasher);
    hasher.finish()
}

/// Why the engine could not take a command.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("healthscore is shutting down")]
    Stopped,
}

impl From<EngineError> for tonic::Status {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid(field) => field.into(),
            EngineError::Stopped => tonic::Status::unavailable(error.to_string()),
        }
    }
}

/// What a push did, with the state it led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    pub applied: bool,
    pub system_status: Status,
    pub revision: u64,
}

enum Command {
    Push(Box<Push>, oneshot::Sender<Result<PushOutcome, FieldError>>),
    Forget(Arc<str>, oneshot::Sender<(bool, u64)>),
    Host(Vec<HostSnapshot>),
    BeginShutdown(oneshot::Sender<()>),
    Stop,
}

/// A handle to the engine task. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<Arc<Published>>,
}

impl Engine {
    /// Starts the engine task on the current runtime.
    pub fn start(store: Store, policy: Policy, not_serving_at: NotServingAt) -> Self {
        let mut task = Task {
            store,
            policy,
            not_serving_at,
            reports: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            revision: 0,
            shutting_down: false,
            checked_at: Instant::now(),
        };
        let first = Arc::new(task.recompute(&Subsystem::ALL, Instant::now()));
        let (publish, state) = watch::channel(first);
        let (commands, inbox) = mpsc::channel(1024);
        tokio::spawn(task.run(inbox, publish));
        Self { commands, state }
    }

    /// The current state.
    pub fn state(&self) -> Arc<Published> {
        self.state.borrow().clone()
    }

    /// The grpc.health.v1 status of `service` in the current state, `None` if the name is
    /// unknown. Borrows the state without cloning anything: this is the probe's hot path.
    pub fn serving(&self, service: &str) -> Option<ServingStatus> {
        self.state.borrow().serving.get(service).copied()
    }

    /// A receiver that sees every new state (and skips to the newest when read slowly).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Published>> {
        self.state.clone()
    }

    pub async fn push(&self, push: Push) -> Result<PushOutcome, EngineError> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::Push(Box::new(push), reply)).await?;
        Ok(outcome.await.map_err(|_| EngineError::Stopped)??)
    }

    /// Forgets a source; returns whether it was known and the revision after.
    pub async fn forget(&self, source: Arc<str>) -> Result<(bool, u64), EngineError> {
        let (reply, outcome) = oneshot::channel();
        self.send(Command::Forget(source, reply)).await?;
        outcome.await.map_err(|_| EngineError::Stopped)
    }

    pub async fn set_host(&self, entities: Vec<HostSnapshot>) -> Result<(), EngineError> {
        self.send(Command::Host(entities)).await
    }

    /// Turns every grpc.health.v1 name NOT_SERVING; returns once that state is published.
    pub async fn begin_shutdown(&self) -> Result<(), EngineError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::BeginShutdown(reply)).await?;
        done.await.map_err(|_| EngineError::Stopped)
    }

    /// Stops the task: watchers' streams end and later commands fail with `Stopped`.
    pub async fn stop(&self) {
        // A send error means the task is already gone, which is what was asked.
        let _ = self.commands.send(Command::Stop).await;
    }

    async fn send(&self, command: Command) -> Result<(), EngineError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| EngineError::Stopped)
    }
}

struct Task {
    store: Store,
    policy: Policy,
    not_serving_at: NotServingAt,
    reports: BTreeMap<Subsystem, Arc<HealthReport>>,
    verdicts: BTreeMap<Subsystem, u64>,
    revision: u64,
    shutting_down: bool,
    /// When staleness was last checked, so each source is reported stale once.
    checked_at: Instant,
}

impl Task {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Command>,
        publish: watch::Sender<Arc<Published>>,
    ) {
        loop {
            let deadline = self
                .store
                .next_deadline(Instant::now())
                // The store calls a source stale strictly after its deadline.
                .map(|d| tokio::time::Instant::from_std(d + Duration::from_millis(1)));
            let expiry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = inbox.recv() => match command {
                    None | Some(Command::Stop) => return,
                    Some(command) => self.handle(command, &publish),
                },
                () = expiry => {
                    let now = Instant::now();
                    let changed = self.store.expire(self.checked_at, now);
                    self.checked_at = now;
                    publish.send_replace(Arc::new(self.recompute(&changed, now)));
                }
            }
        }
    }

    /// Applies a command and publishes the state it leads to. Replies are sent after the new
    /// state is published, so a caller that reads right after sees its own write.
    fn handle(&mut self, command: Command, publish: &watch::Sender<Arc<Published>>) {
        let now = Instant::now();
        match command {
            Command::Push(push, reply) => {
                let outcome = match self.store.apply(*push, now) {
                    Err(error) => Err(error),
                    Ok(Applied::OldSequence) => {
                        let state = publish.borrow().clone();
                        Ok(PushOutcome {
                            applied: false,
                            system_status: state.system.status,
                            revision: state.stamp.revision,
                        })
                    }
                    Ok(Applied::Changed(changed)) => {
                        let published = self.recompute(&changed, now);
                        let outcome = PushOutcome {
                            applied: true,
                            system_status: published.system.status,
                            revision: published.stamp.revision,
                        };
                        publish.send_replace(Arc::new(published));
                        Ok(outcome)
                    }
                };
                // A caller that went away (a cancelled RPC) does not need its answer.
                let _ = reply.send(outcome);
            }
            Command::Forget(source, reply) => {
                let forgotten = self.store.forget(&source);
                let known = forgotten.is_some();
                if let Some(changed) = forgotten {
                    publish.send_replace(Arc::new(self.recompute(&changed, now)));
                }
                let _ = reply.send((known, self.revision));
            }
            Command::Host(entities) => {
                self.store.set_host(entities);
                publish.send_replace(Arc::new(self.recompute(&[Subsystem::Host], now)));
            }
            Command::BeginShutdown(reply) => {
                self.shutting_down = true;
                publish.send_replace(Arc::new(self.recompute(&[], now)));
                let _ = reply.send(());
            }
            Command::Stop => unreachable!("the run loop handles Stop"),
        }
    }

    /// Rebuilds the reports of `changed` and the system report, bumping the revision when any
    /// report's status, score or issue set changed.
    fn recompute(&mut self, changed: &[Subsystem], now: Instant) -> Published {
        let mut moved = false;
        for &subsystem in changed {
            let report = Arc::new(self.store.report(subsystem, &self.policy, now));
            let verdict = verdict([&report], None);
            moved |= self.verdicts.insert(subsystem, verdict) != Some(verdict);
            self.reports.insert(subsystem, report);
        }
        if moved || self.revision == 0 {
            self.revision += 1;
        }
        let system = system_report(self.reports.values());
        let serving = self.serving(&system);
        let system_verdict = verdict(self.reports.values(), None);
        Published {
            stamp: Stamp {
                revision: self.revision,
                generated_at: SystemTime::now(),
            },
            system,
            serving,
            system_verdict,
            encoded: Default::default(),
        }
    }

    fn serving(&self, system: &SystemHealthReport) -> BTreeMap<&'static str, ServingStatus> {
        let status_of = |status: Status| {
            if !self.shutting_down && self.not_serving_at.serves(status) {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        let mut serving: BTreeMap<&'static str, ServingStatus> = system
            .subsystems
            .iter()
            .map(|(key, report)| (*key, status_of(report.status)))
            .collect();
        serving.insert("", status_of(system.status));
        serving.insert(LIVENESS_SERVICE, status_of(Status::Healthy));
        serving
    }
}
