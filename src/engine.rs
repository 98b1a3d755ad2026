//! The engine: one task owns the store, recomputes the reports an input changed, and publishes
//! an immutable state (with a revision) through a `tokio::sync::watch`. Readers never block it.
//! As it publishes it records each status transition in the history, and damps the
//! probe-facing statuses: NOT_SERVING at once, SERVING again only after `recover_after`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    config::NotServingAt,
    core::{
        ingest::{FieldError, Push},
        published::{verdict, Published, Serving, Stamp, LIVENESS_SERVICE},
        scoring::{system_report, Code, HealthReport, Status, Subsystem, SystemHealthReport},
    },
    history::{journal::Journal, Answer, History, Query, Transition},
    store::{Applied, Store},
};

/// The engine's clock reading: monotonic for deadlines, wall time for what is published.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn current() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// How the engine publishes, beyond the store.
pub struct Settings {
    pub not_serving_at: NotServingAt,
    /// How long a name's report must have been serving before its probe-facing status is
    /// SERVING again; zero turns damping off.
    pub recover_after: Duration,
    /// `recover_after` for particular names (`""` is the system).
    pub recover_after_by_name: BTreeMap<String, Duration>,
    /// The history to record into (possibly loaded from the journal).
    pub history: History,
    /// Where transitions are also kept, when `history.path` is set.
    pub journal: Option<Journal>,
}

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
    history: Arc<Mutex<History>>,
}

impl Engine {
    /// Starts the engine task on the current runtime.
    pub fn start(store: Store, settings: Settings) -> Self {
        let mut task = Task::new(store, settings);
        let history = task.history.clone();
        let first = Arc::new(task.recompute(&Subsystem::ALL, Now::current()));
        let (publish, state) = watch::channel(first);
        let (commands, inbox) = mpsc::channel(1024);
        tokio::spawn(task.run(inbox, publish));
        Self {
            commands,
            state,
            history,
        }
    }

    /// Answers `query` from the history and the current state.
    pub fn history_answer(&self, query: &Query) -> Answer {
        let state = self.state();
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        Answer::of(&history, &state, query, SystemTime::now())
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
    system_status: Option<Status>,
    history: Arc<Mutex<History>>,
    journal: Option<Journal>,
    damping: Damping,
}

/// The probe-facing statuses as last published, and since when each name that is
/// NOT_SERVING has had a serving report.
struct Damping {
    recover_after: Duration,
    by_name: BTreeMap<String, Duration>,
    published: BTreeMap<&'static str, Serving>,
    serving_since: BTreeMap<&'static str, Instant>,
}

impl Damping {
    fn delay(&self, name: &str) -> Duration {
        self.by_name
            .get(name)
            .copied()
            .unwrap_or(self.recover_after)
    }

    /// The damped status of `name` whose report says `raw` at `now`.
    fn damp(&mut self, name: &'static str, raw: Serving, now: Instant) -> Serving {
        let was = self.published.get(name).copied().unwrap_or(raw);
        let delay = self.delay(name);
        let damped = match (was, raw) {
            (_, Serving::NotServing) => Serving::NotServing,
            (Serving::Serving, Serving::Serving) => Serving::Serving,
            (Serving::NotServing, Serving::Serving) => {
                let since = *self.serving_since.entry(name).or_insert(now);
                if now.saturating_duration_since(since) >= delay {
                    Serving::Serving
                } else {
                    Serving::NotServing
                }
            }
        };
        if !(damped == Serving::NotServing && raw == Serving::Serving) {
            self.serving_since.remove(name);
        }
        self.published.insert(name, damped);
        damped
    }

    /// When each recovering name turns SERVING if nothing changes.
    fn recovering(&self) -> BTreeMap<&'static str, Instant> {
        self.serving_since
            .iter()
            .map(|(name, since)| (*name, *since + self.delay(name)))
            .collect()
    }
}

/// The distinct issue codes of `reports`.
fn codes<'a>(reports: impl IntoIterator<Item = &'a Arc<HealthReport>>) -> BTreeSet<Code> {
    reports
        .into_iter()
        .flat_map(|report| report.issues.iter().map(|issue| issue.code))
        .collect()
}

fn transition(
    at: SystemTime,
    name: Option<Subsystem>,
    statuses: (Status, Status),
    score: u32,
    (before, after): (BTreeSet<Code>, BTreeSet<Code>),
) -> Transition {
    let added: Vec<Code> = after.difference(&before).copied().collect();
    let removed: Vec<Code> = before.difference(&after).copied().collect();
    Transition::new(at, name, statuses, score, &added, &removed)
}

impl Task {
    fn new(store: Store, settings: Settings) -> Self {
        Self {
            store,
            not_serving_at: settings.not_serving_at,
            reports: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            revision: 0,
            shutting_down: false,
            system_status: None,
            history: Arc::new(Mutex::new(settings.history)),
            journal: settings.journal,
            damping: Damping {
                recover_after: settings.recover_after,
                by_name: settings.recover_after_by_name,
                published: BTreeMap::new(),
                serving_since: BTreeMap::new(),
            },
        }
    }

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
                .map(|d| d + Duration::from_millis(1))
                .into_iter()
                .chain(self.damping.recovering().into_values())
                .min()
                .map(tokio::time::Instant::from_std);
            let expiry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = inbox.recv() => match command {
                    None | Some(Command::Stop) => return,
                    Some(command) => self.handle(command, &publish, Now::current()),
                },
                () = expiry => {
                    let now = Now::current();
                    let changed = self.store.expire(now.instant);
                    publish.send_replace(Arc::new(self.recompute(&changed, now)));
                }
            }
        }
    }

    /// Applies a command and publishes the state it leads to. Replies are sent after the new
    /// state is published, so a caller that reads right after sees its own write.
    fn handle(&mut self, command: Command, publish: &watch::Sender<Arc<Published>>, now: Now) {
        match command {
            Command::Push(push, reply) => {
                let outcome = match self.store.apply(*push, now.instant) {
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
            Command::BeginShutdown(reply) => {
                self.shutting_down = true;
                publish.send_replace(Arc::new(self.recompute(&[], now)));
                let _ = reply.send(());
            }
            Command::Stop => unreachable!("the run loop handles Stop"),
        }
    }

    /// Rebuilds the reports of `changed` and the system report at `now`, bumping the revision
    /// when any report's status, score or issue set changed, and recording each status change.
    fn recompute(&mut self, changed: &[Subsystem], now: Now) -> Published {
        let mut moved = false;
        let mut transitions = Vec::new();
        let mut replaced = BTreeMap::new();
        for &subsystem in changed {
            let report = Arc::new(self.store.report(subsystem));
            let verdict = verdict([&report], None);
            moved |= self.verdicts.insert(subsystem, verdict) != Some(verdict);
            if let Some(old) = self.reports.insert(subsystem, report.clone()) {
                if old.status != report.status {
                    let codes = (codes([&old]), codes([&report]));
                    let statuses = (old.status, report.status);
                    transitions.push(transition(
                        now.wall,
                        Some(subsystem),
                        statuses,
                        report.score,
                        codes,
                    ));
                }
                replaced.insert(subsystem, old);
            }
        }
        if moved || self.revision == 0 {
            self.revision += 1;
        }
        let system = system_report(self.reports.values());
        if let Some(before) = self.system_status.replace(system.status) {
            if before != system.status {
                let old = self
                    .reports
                    .iter()
                    .map(|(s, r)| replaced.get(s).unwrap_or(r));
                let codes = (codes(old), codes(self.reports.values()));
                transitions.push(transition(
                    now.wall,
                    None,
                    (before, system.status),
                    system.score,
                    codes,
                ));
            }
        }
        self.record(transitions);
        let serving = self.serving(&system, now.instant);
        let stamp = Stamp {
            revision: self.revision,
            generated_at: now.wall,
        };
        Published::new(stamp, system, serving, self.damping.recovering())
    }

    fn record(&mut self, transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        for transition in transitions {
            if let Some(journal) = &self.journal {
                journal.append(&transition);
            }
            history.record(transition);
        }
    }

    /// The probe-facing statuses, damped.
    fn serving(
        &mut self,
        system: &SystemHealthReport,
        now: Instant,
    ) -> BTreeMap<&'static str, Serving> {
        let status_of = |status: Status| {
            if !self.shutting_down && self.not_serving_at.serves(status) {
                Serving::Serving
            } else {
                Serving::NotServing
            }
        };
        let raw: Vec<(&'static str, Serving)> = system
            .subsystems
            .iter()
            .map(|(key, report)| (*key, status_of(report.status)))
            .chain([("", status_of(system.status))])
            .collect();
        let mut serving: BTreeMap<&'static str, Serving> = raw
            .into_iter()
            .map(|(name, raw)| (name, self.damping.damp(name, raw, now)))
            .collect();
        serving.insert(LIVENESS_SERVICE, status_of(Status::Healthy));
        serving
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        core::{ingest::Limits, scoring::snapshot::DatasourceSnapshot},
        history::Query,
    };

    fn pool(active: u32, threads_awaiting: u32) -> Push {
        Push {
            source: "app-1".into(),
            ttl: Some(Duration::from_secs(3600)),
            datasources: Some(vec![DatasourceSnapshot {
                name: "db".into(),
                started: true,
                active,
                idle: 10 - active,
                max: 10,
                threads_awaiting,
            }]),
            ..Push::default()
        }
    }

    /// A task and its clock: `at(secs)` is that many seconds after the start.
    struct Clock {
        start: Now,
    }

    impl Clock {
        fn at(&self, secs: u64) -> Now {
            Now {
                instant: self.start.instant + Duration::from_secs(secs),
                wall: self.start.wall + Duration::from_secs(secs),
            }
        }
    }

    fn task(config: &Config) -> (Task, watch::Sender<Arc<Published>>, Clock) {
        let start = Now::current();
        let mut settings = config.engine();
        settings.history = History::new(&config.history, start.wall);
        let mut task = Task::new(Store::new(Limits::default(), config.policy()), settings);
        let first = task.recompute(&Subsystem::ALL, start);
        (task, watch::channel(Arc::new(first)).0, Clock { start })
    }

    fn push(task: &mut Task, publish: &watch::Sender<Arc<Published>>, push: Push, now: Now) {
        let (reply, _) = oneshot::channel();
        task.handle(Command::Push(Box::new(push), reply), publish, now);
    }

    #[test]
    fn pushes_give_exactly_the_expected_transitions_and_uptime() {
        let (mut task, publish, clock) = task(&Config::default());
        push(&mut task, &publish, pool(1, 0), clock.at(0)); // healthy
        push(&mut task, &publish, pool(2, 0), clock.at(60)); // still healthy: no transition
        push(&mut task, &publish, pool(10, 5), clock.at(600)); // saturated: critical
        push(&mut task, &publish, pool(1, 0), clock.at(900)); // healthy again
        let history = task.history.lock().unwrap();
        let (transitions, omitted) = history.query(None, None, 100);
        assert_eq!(omitted, 0);
        let seen: Vec<(u64, &str, Status, Status)> = transitions
            .iter()
            .map(|t| {
                let secs = t.at.duration_since(clock.start.wall).unwrap().as_secs();
                (secs, t.key(), t.from, t.to)
            })
            .collect();
        use Status::{Critical, Healthy};
        assert_eq!(
            seen,
            vec![
                (900, "system", Critical, Healthy),
                (900, "datasources", Critical, Healthy),
                (600, "system", Healthy, Critical),
                (600, "datasources", Healthy, Critical),
            ]
        );
        let critical = transitions[3];
        let codes = [Code::DsPoolSaturated, Code::DsPoolThreadsAwaiting];
        assert_eq!(critical.added(), &codes);
        assert!(critical.removed().is_empty());
        assert_eq!(transitions[1].removed(), &codes);
        assert!(transitions[1].added().is_empty());

        let state = publish.borrow().clone();
        let query = Query {
            name: Some(Some(Subsystem::Datasources)),
            since: None,
            limit: 10,
        };
        let answer = Answer::of(&history, &state, &query, clock.at(3600).wall);
        let (_, hour) = answer.uptime[0];
        assert_eq!(hour.covered, Duration::from_secs(3600));
        assert_eq!(hour.critical, Duration::from_secs(300));
        assert_eq!(hour.healthy, Duration::from_secs(3300));
        assert_eq!(answer.transitions.len(), 2);
    }

    #[test]
    fn damping_holds_not_serving_until_recovery_has_lasted() {
        let mut config = Config::default();
        config.health.recover_after = crate::config::Delay(Duration::from_secs(30));
        let (mut task, publish, clock) = task(&config);
        let serving =
            |publish: &watch::Sender<Arc<Published>>, name: &str| publish.borrow().serving[name];
        push(&mut task, &publish, pool(10, 5), clock.at(0));
        assert_eq!(
            serving(&publish, "datasources"),
            Serving::NotServing,
            "at once on critical"
        );
        push(&mut task, &publish, pool(1, 0), clock.at(10));
        assert_eq!(
            serving(&publish, ""),
            Serving::NotServing,
            "held: healthy for 0 s"
        );
        let recovering = publish.borrow().recovering[""];
        assert_eq!(recovering, clock.at(40).instant);
        // A flap back to critical restarts the wait.
        push(&mut task, &publish, pool(10, 5), clock.at(20));
        push(&mut task, &publish, pool(1, 0), clock.at(30));
        publish.send_replace(Arc::new(task.recompute(&[], clock.at(50))));
        assert_eq!(
            serving(&publish, ""),
            Serving::NotServing,
            "healthy for 20 s of 30"
        );
        publish.send_replace(Arc::new(task.recompute(&[], clock.at(60))));
        assert_eq!(serving(&publish, ""), Serving::Serving);
        assert_eq!(serving(&publish, "datasources"), Serving::Serving);
        assert!(publish.borrow().recovering.is_empty());
        // The reports themselves are never damped.
        assert_eq!(publish.borrow().system.status, Status::Healthy);
    }
}
