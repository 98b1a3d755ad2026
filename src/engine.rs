//! The engine: one task owns the store, recomputes the reports an input changed, and publishes
//! an immutable state (with a revision) through a `tokio::sync::watch`. Readers never block it.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    config::NotServingAt,
    core::{
        ingest::{FieldError, Push},
        published::{verdict, Published, Serving, Stamp, LIVENESS_SERVICE},
        scoring::{system_report, HealthReport, Status, Subsystem, SystemHealthReport},
    },
    store::{Applied, Store},
};

/// Why the engine could not take a command.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("healthscore is shutting down")]
    Stopped,
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
    pub fn start(store: Store, not_serving_at: NotServingAt) -> Self {
        let mut task = Task {
            store,
            not_serving_at,
            reports: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            revision: 0,
            shutting_down: false,
        };
        let first = Arc::new(task.recompute(&Subsystem::ALL));
        let (publish, state) = watch::channel(first);
        let (commands, inbox) = mpsc::channel(1024);
        tokio::spawn(task.run(inbox, publish));
        Self { commands, state }
    }

    /// The current state.
    pub fn state(&self) -> Arc<Published> {
        self.state.borrow().clone()
    }

    /// The probe-facing status of `service` in the current state, `None` if the name is
    /// unknown. Borrows the state without cloning anything: this is the probe's hot path.
    pub fn serving(&self, service: &str) -> Option<Serving> {
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
    not_serving_at: NotServingAt,
    reports: BTreeMap<Subsystem, Arc<HealthReport>>,
    verdicts: BTreeMap<Subsystem, u64>,
    revision: u64,
    shutting_down: bool,
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
                .next_deadline()
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
                    let changed = self.store.expire(Instant::now());
                    publish.send_replace(Arc::new(self.recompute(&changed)));
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
                        let published = self.recompute(&changed);
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
                    publish.send_replace(Arc::new(self.recompute(&changed)));
                }
                let _ = reply.send((known, self.revision));
            }
            Command::BeginShutdown(reply) => {
                self.shutting_down = true;
                publish.send_replace(Arc::new(self.recompute(&[])));
                let _ = reply.send(());
            }
            Command::Stop => unreachable!("the run loop handles Stop"),
        }
    }

    /// Rebuilds the reports of `changed` and the system report, bumping the revision when any
    /// report's status, score or issue set changed.
    fn recompute(&mut self, changed: &[Subsystem]) -> Published {
        let mut moved = false;
        for &subsystem in changed {
            let report = Arc::new(self.store.report(subsystem));
            let verdict = verdict([&report], None);
            moved |= self.verdicts.insert(subsystem, verdict) != Some(verdict);
            self.reports.insert(subsystem, report);
        }
        if moved || self.revision == 0 {
            self.revision += 1;
        }
        let system = system_report(self.reports.values());
        let serving = self.serving(&system);
        let stamp = Stamp {
            revision: self.revision,
            generated_at: SystemTime::now(),
        };
        Published::new(stamp, system, serving)
    }

    fn serving(&self, system: &SystemHealthReport) -> BTreeMap<&'static str, Serving> {
        let status_of = |status: Status| {
            if !self.shutting_down && self.not_serving_at.serves(status) {
                Serving::Serving
            } else {
                Serving::NotServing
            }
        };
        let mut serving: BTreeMap<&'static str, Serving> = system
            .subsystems
            .iter()
            .map(|(key, report)| (*key, status_of(report.status)))
            .collect();
        serving.insert("", status_of(system.status));
        serving.insert(LIVENESS_SERVICE, status_of(Status::Healthy));
        serving
    }
}
