//! The engine: one task owns the store, recomputes the reports an input changed, and publishes
//! an immutable state (with a revision) through a `tokio::sync::watch`. Readers never block it.
//! As it publishes it records each status transition in the history, and decides the
//! probe-facing statuses by the probe policy: NOT_SERVING once a name's reports have failed for
//! `fail_after`, SERVING again once they have served for `recover_after`, every readiness name
//! NOT_SERVING while the startup sources have not reported and from the start of shutdown.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    core::{
        fleet::{self, FleetView, Guard, Verdict},
        ingest::{FieldError, Push},
        probes::{matches_source, ProbeName, ProbePolicy, LIVENESS_SERVICE},
        published::{verdict, FleetState, Gate, Hold, Probes, Published, Serving, Stamp},
        scoring::{
            score::with_issues, system_report, Code, HealthReport, Issue, Status, Subsystem,
            SystemHealthReport,
        },
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
    /// The readiness names and how each turns.
    pub probes: ProbePolicy,
    /// The fleet guard, when `[fleet]` is set.
    pub fleet: Option<Guard>,
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
    Fleet(FleetView),
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
    /// The engine, running on a thread of its own; an error when that thread or its runtime
    /// cannot be made.
    pub fn start(store: Store, settings: Settings) -> std::io::Result<Self> {
        let mut task = Task::new(store, settings, Instant::now());
        let history = task.history.clone();
        let first = Arc::new(task.recompute(&Subsystem::ALL, Now::current()));
        let (publish, state) = watch::channel(first);
        let (commands, inbox) = mpsc::channel(1024);
        // Evaluating a push and reassembling reports from every source takes a millisecond
        // with a thousand sources: on a thread of its own, so that it never holds an async
        // worker a probe is waiting for (scripts/discovery-load.sh). The runtime is made on
        // that thread, and its error sent back.
        let (started, start) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("healthscore-engine".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => {
                        let _ = started.send(Ok(()));
                        runtime.block_on(task.run(inbox, publish));
                    }
                    Err(error) => {
                        let _ = started.send(Err(error));
                    }
                }
            })?;
        start
            .recv()
            .map_err(|_| std::io::Error::other("the engine's thread ended as it started"))??;
        Ok(Self {
            commands,
            state,
            history,
        })
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
        self.state.borrow().probes.serving.get(service).copied()
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

    /// Hands the engine the fleet guard's newest view of the peers.
    pub async fn fleet_view(&self, view: FleetView) -> Result<(), EngineError> {
        self.send(Command::Fleet(view)).await
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
    reports: BTreeMap<Subsystem, Arc<HealthReport>>,
    verdicts: BTreeMap<Subsystem, u64>,
    revision: u64,
    shutting_down: bool,
    /// Until the startup sources have reported, or its `max_wait` has passed.
    starting: Option<Starting>,
    system_status: Option<Status>,
    history: Arc<Mutex<History>>,
    journal: Option<Journal>,
    policy: Arc<ProbePolicy>,
    /// One per readiness name, in the policy's order.
    damping: Vec<Damping>,
    guard: Option<Guard>,
    view: FleetView,
    /// `LIVENESS_SERVICE`, made once: every state lists it.
    liveness: Arc<str>,
    /// The subsystems whose published reports carry the guard's issues.
    decorated: BTreeSet<Subsystem>,
}

/// The startup gate: the source patterns no source has matched yet, and when it opens anyway.
struct Starting {
    waiting_for: Vec<String>,
    deadline: Instant,
}

/// One readiness name's status as last published, and since when its reports have been
/// failing (while they are) or serving again (while it is held NOT_SERVING).
#[derive(Default)]
struct Damping {
    published: Option<Serving>,
    failing_since: Option<Instant>,
    serving_since: Option<Instant>,
    /// Since when the fleet guard has held it SERVING.
    held_since: Option<SystemTime>,
}

impl Damping {
    /// The status of `probe`, whose reports say `raw` at `now`.
    fn damp(&mut self, probe: &ProbeName, raw: Serving, now: Instant) -> Serving {
        let was = self.published.unwrap_or(raw);
        let damped = match raw {
            Serving::NotServing => {
                self.serving_since = None;
                let since = *self.failing_since.get_or_insert(now);
                let lasted = now.saturating_duration_since(since) >= probe.fail_after;
                if was == Serving::NotServing || lasted {
                    Serving::NotServing
                } else {
                    Serving::Serving
                }
            }
            Serving::Serving => {
                self.failing_since = None;
                match was {
                    Serving::Serving => Serving::Serving,
                    Serving::NotServing => {
                        let since = *self.serving_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= probe.recover_after {
                            self.serving_since = None;
                            Serving::Serving
                        } else {
                            Serving::NotServing
                        }
                    }
                }
            }
        };
        self.published = Some(damped);
        damped
    }

    fn hold(&self, probe: &ProbeName) -> Option<Hold> {
        match (self.failing_since, self.serving_since) {
            (Some(since), _) => Some(Hold::Failing {
                since,
                not_serving_at: since + probe.fail_after,
            }),
            (None, Some(since)) => Some(Hold::Recovering {
                serving_at: since + probe.recover_after,
            }),
            (None, None) => None,
        }
    }

    /// When this name turns if its reports keep saying what they say now.
    fn turns_at(&self, probe: &ProbeName) -> Option<Instant> {
        match self.hold(probe)? {
            Hold::Failing { not_serving_at, .. } => {
                (self.published == Some(Serving::Serving)).then_some(not_serving_at)
            }
            Hold::Recovering { serving_at } => Some(serving_at),
        }
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
    fn new(store: Store, settings: Settings, start: Instant) -> Self {
        let starting = settings.probes.startup.as_ref().map(|startup| Starting {
            waiting_for: startup.sources.clone(),
            deadline: start + startup.max_wait,
        });
        Self {
            store,
            reports: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            revision: 0,
            shutting_down: false,
            starting,
            system_status: None,
            history: Arc::new(Mutex::new(settings.history)),
            journal: settings.journal,
            damping: settings
                .probes
                .names
                .iter()
                .map(|_| Damping::default())
                .collect(),
            policy: Arc::new(settings.probes),
            guard: settings.fleet,
            view: FleetView::Unavailable {
                reason: "not read yet".into(),
            },
            decorated: BTreeSet::new(),
            liveness: LIVENESS_SERVICE.into(),
        }
    }

    /// When the published state changes by itself if no command comes: a source's deadline, a
    /// name's hold running out, the startup gate's `max_wait`.
    fn next_deadline(&self) -> Option<Instant> {
        let holds = self
            .policy
            .names
            .iter()
            .zip(&self.damping)
            .filter_map(|(probe, damping)| damping.turns_at(probe));
        self.store
            .next_deadline()
            // The store calls a source stale strictly after its deadline.
            .map(|d| d + Duration::from_millis(1))
            .into_iter()
            .chain(holds)
            .chain(self.starting.as_ref().map(|s| s.deadline))
            .min()
    }

    /// Notes that `source` has reported; returns whether that opened the startup gate.
    fn reported(&mut self, source: &str) -> bool {
        let Some(starting) = &mut self.starting else {
            return false;
        };
        starting
            .waiting_for
            .retain(|pattern| !matches_source(pattern, source));
        if starting.waiting_for.is_empty() {
            tracing::info!(%source, "startup: every [health.startup] source has reported");
            self.starting = None;
            return true;
        }
        false
    }

    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Command>,
        publish: watch::Sender<Arc<Published>>,
    ) {
        loop {
            let deadline = self.next_deadline().map(tokio::time::Instant::from_std);
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
                let source = push.source.clone();
                let result = self.store.apply(*push, now.instant);
                let opened = result.is_ok() && self.reported(&source);
                let outcome = match result {
                    Err(error) => Err(error),
                    Ok(Applied::OldSequence) => {
                        if opened {
                            publish.send_replace(Arc::new(self.recompute(&[], now)));
                        }
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
            Command::Fleet(view) => {
                self.view = view;
                publish.send_replace(Arc::new(self.recompute(&[], now)));
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
        let mut transitions = Vec::new();
        let mut replaced = BTreeMap::new();
        for &subsystem in changed {
            let report = Arc::new(self.store.report(subsystem));
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
        let (probes, guard_issues) = self.probes(&system, now);
        let decorated: BTreeSet<Subsystem> = guard_issues.keys().copied().collect();
        let system = if guard_issues.is_empty() {
            system
        } else {
            self.with_guard_issues(guard_issues)
        };
        // The guard's issues move verdicts too: a watcher hears that a name is held.
        let mut moved = false;
        let touched: BTreeSet<Subsystem> = changed
            .iter()
            .chain(&decorated)
            .chain(&self.decorated)
            .copied()
            .collect();
        for subsystem in touched {
            if let Some(report) = system.subsystems.get(subsystem) {
                let verdict = verdict([report], None);
                moved |= self.verdicts.insert(subsystem, verdict) != Some(verdict);
            }
        }
        self.decorated = decorated;
        if moved || self.revision == 0 {
            self.revision += 1;
        }
        let stamp = Stamp {
            revision: self.revision,
            generated_at: now.wall,
        };
        Published::new(stamp, system, probes)
    }

    /// The system report with `issues` added to their subsystems' reports.
    fn with_guard_issues(&self, mut issues: BTreeMap<Subsystem, Vec<Issue>>) -> SystemHealthReport {
        let policy = self.store.policy();
        let reports: Vec<Arc<HealthReport>> = self
            .reports
            .iter()
            .map(|(subsystem, report)| match issues.remove(subsystem) {
                Some(extra) => Arc::new(with_issues(report, extra, policy)),
                None => report.clone(),
            })
            .collect();
        system_report(&reports)
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

    /// The probe-facing statuses: each readiness name by its policy, then the gate and the
    /// fleet guard over them; the liveness name serves until the process stops listening. Also
    /// the issues the guard adds to the failing reports.
    fn probes(
        &mut self,
        system: &SystemHealthReport,
        now: Now,
    ) -> (Probes, BTreeMap<Subsystem, Vec<Issue>>) {
        if self
            .starting
            .as_ref()
            .is_some_and(|s| now.instant >= s.deadline)
        {
            tracing::warn!(
                "startup: [health.startup] max_wait passed before every source reported; serving"
            );
            self.starting = None;
        }
        let gate = if self.shutting_down {
            Some(Gate::ShuttingDown)
        } else {
            self.starting.as_ref().map(|_| Gate::Starting)
        };
        let mut serving = BTreeMap::new();
        let mut holds = BTreeMap::new();
        let mut issues: BTreeMap<Subsystem, Vec<Issue>> = BTreeMap::new();
        let mut fleet = self.guard.map(|_| self.fleet_state());
        for (probe, damping) in self.policy.names.iter().zip(&mut self.damping) {
            let failing = probe.failing_members(system);
            let raw = if failing.is_empty() {
                Serving::Serving
            } else {
                Serving::NotServing
            };
            let damped = damping.damp(probe, raw, now.instant);
            if let (Some(fleet), Serving::NotServing) = (&mut fleet, raw) {
                *fleet.failing.entry(probe.name.clone()).or_default() += 1;
            }
            if let Some(hold) = damping.hold(probe) {
                holds.insert(probe.name.clone(), hold);
            }
            let mut status = if gate.is_some() {
                Serving::NotServing
            } else {
                damped
            };
            let verdict = match (&self.guard, &mut fleet) {
                (Some(guard), Some(fleet)) if raw == Serving::NotServing && gate.is_none() => {
                    let verdict = guard.judge(&self.view, &probe.name, now.instant);
                    fleet.verdicts.insert(probe.name.clone(), verdict.clone());
                    Some(verdict)
                }
                _ => None,
            };
            let issue = match verdict {
                Some(Verdict::Held { failing, peers }) if status == Serving::NotServing => {
                    status = Serving::Serving;
                    let since = *damping.held_since.get_or_insert(now.wall);
                    if let Some(fleet) = &mut fleet {
                        fleet.held.insert(probe.name.clone(), since);
                    }
                    let message = fleet::correlated_message(&probe.name, failing, peers, since);
                    Some((Code::FleetCorrelated, message, failing, peers))
                }
                // Still serving by fail_after: nothing to hold yet.
                Some(Verdict::Held { .. }) => {
                    damping.held_since = None;
                    None
                }
                Some(Verdict::Unavailable { reason }) => {
                    damping.held_since = None;
                    let message = format!(
                        "the probe name {:?} fails and the fleet guard cannot tell whether its \
                         peers fail it too ({reason}): deciding locally",
                        &*probe.name
                    );
                    Some((Code::FleetViewUnavailable, message, 0, 0))
                }
                Some(Verdict::Local { .. }) | None => {
                    damping.held_since = None;
                    None
                }
            };
            if let Some((code, message, failing_peers, peers)) = issue {
                for &member in &failing {
                    issues.entry(member).or_default().push(guard_issue(
                        code,
                        &message,
                        &probe.name,
                        member,
                        failing_peers,
                        peers,
                    ));
                }
            }
            serving.insert(probe.name.clone(), status);
        }
        serving.insert(self.liveness.clone(), Serving::Serving);
        let probes = Probes {
            serving,
            holds,
            gate,
            policy: self.policy.clone(),
            fleet,
        };
        (probes, issues)
    }

    /// The view as `/metrics` shows it, before this state's verdicts.
    fn fleet_state(&self) -> FleetState {
        match &self.view {
            FleetView::Seen { names, .. } => FleetState {
                peers: names.values().map(|count| count.peers + 1).max(),
                failing: names
                    .iter()
                    .map(|(name, count)| (Arc::from(name.as_str()), count.failing))
                    .collect(),
                verdicts: BTreeMap::new(),
                held: BTreeMap::new(),
            },
            FleetView::Unavailable { .. } => FleetState::default(),
        }
    }
}

/// One of the fleet guard's issues, on a failing member of the probe name `name`.
fn guard_issue(
    code: Code,
    message: &str,
    name: &str,
    subsystem: Subsystem,
    failing: u32,
    peers: u32,
) -> Issue {
    let entity = if name.is_empty() { "system" } else { name };
    let metrics = match code {
        Code::FleetCorrelated => [
            ("failingInstances", f64::from(failing)),
            ("instances", f64::from(peers)),
        ]
        .into_iter()
        .collect(),
        _ => Default::default(),
    };
    Issue {
        severity: code.severity(),
        code,
        message: message.to_owned(),
        suggested_action: std::borrow::Cow::Borrowed(code.entry().suggested_action),
        entity: entity.into(),
        entity_metrics: metrics,
        subsystem,
        source: "fleet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        core::{
            ingest::Limits,
            probes::HealthConfig,
            scoring::{snapshot::DatasourceSnapshot, Policy},
        },
        history::{HistoryConfig, Query},
        setting::Delay,
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

    fn task(health: &HealthConfig) -> (Task, watch::Sender<Arc<Published>>, Clock) {
        let start = Now::current();
        let settings = Settings {
            probes: health.policy().expect("a valid policy"),
            fleet: None,
            history: History::new(&HistoryConfig::default(), start.wall),
            journal: None,
        };
        let store = Store::new(Limits::default(), Policy::default());
        let mut task = Task::new(store, settings, start.instant);
        let first = task.recompute(&Subsystem::ALL, start);
        (task, watch::channel(Arc::new(first)).0, Clock { start })
    }

    fn push(task: &mut Task, publish: &watch::Sender<Arc<Published>>, push: Push, now: Now) {
        let (reply, _) = oneshot::channel();
        task.handle(Command::Push(Box::new(push), reply), publish, now);
    }

    #[test]
    fn pushes_give_exactly_the_expected_transitions_and_uptime() {
        let (mut task, publish, clock) = task(&HealthConfig::default());
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
        let health = HealthConfig {
            recover_after: Delay(Duration::from_secs(30)),
            ..HealthConfig::default()
        };
        let (mut task, publish, clock) = task(&health);
        let serving = |publish: &watch::Sender<Arc<Published>>, name: &str| {
            publish.borrow().probes.serving[name]
        };
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
        let recovering = publish.borrow().probes.holds[""];
        let serving_at = clock.at(40).instant;
        assert_eq!(recovering, Hold::Recovering { serving_at });
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
        assert!(publish.borrow().probes.holds.is_empty());
        // The reports themselves are never damped.
        assert_eq!(publish.borrow().system.status, Status::Healthy);
    }

    #[test]
    fn fail_after_holds_serving_until_the_failure_has_lasted() {
        let health = HealthConfig {
            fail_after: Delay(Duration::from_secs(30)),
            ..HealthConfig::default()
        };
        let (mut task, publish, clock) = task(&health);
        let serving = |publish: &watch::Sender<Arc<Published>>| publish.borrow().probes.serving[""];
        push(&mut task, &publish, pool(10, 5), clock.at(0));
        assert_eq!(serving(&publish), Serving::Serving, "failing for 0 s of 30");
        let since = clock.at(0).instant;
        let failing = Hold::Failing {
            since,
            not_serving_at: clock.at(30).instant,
        };
        assert_eq!(publish.borrow().probes.holds[""], failing);
        assert_eq!(task.next_deadline(), Some(clock.at(30).instant));
        // A flap inside the window starts it again.
        push(&mut task, &publish, pool(1, 0), clock.at(20));
        assert!(publish.borrow().probes.holds.is_empty());
        push(&mut task, &publish, pool(10, 5), clock.at(25));
        publish.send_replace(Arc::new(task.recompute(&[], clock.at(50))));
        assert_eq!(
            serving(&publish),
            Serving::Serving,
            "failing for 25 s of 30"
        );
        publish.send_replace(Arc::new(task.recompute(&[], clock.at(55))));
        assert_eq!(serving(&publish), Serving::NotServing);
        assert_eq!(
            publish.borrow().probes.serving["healthscore.v1.HealthReports"],
            Serving::Serving
        );
    }

    #[test]
    fn the_fleet_guard_holds_a_shared_failure_and_only_that() {
        let (mut task, publish, clock) = task(&HealthConfig::default());
        task.guard = Some(Guard {
            max_unready_fraction: 0.5,
            stale_after: Duration::from_secs(30),
        });
        let view = |failing, at: Now| {
            let count = fleet::PeerCount { failing, peers: 4 };
            FleetView::Seen {
                at: at.instant,
                names: [("".to_owned(), count), ("datasources".to_owned(), count)].into(),
            }
        };
        let state = |publish: &watch::Sender<Arc<Published>>| publish.borrow().clone();
        let codes = |state: &Published| -> Vec<Code> {
            state
                .report(Subsystem::Datasources)
                .issues
                .iter()
                .map(|issue| issue.code)
                .collect()
        };
        // Every peer fails too: held, and said so.
        task.handle(Command::Fleet(view(4, clock.at(0))), &publish, clock.at(0));
        push(&mut task, &publish, pool(10, 5), clock.at(1));
        let held = state(&publish);
        assert_eq!(held.probes.serving[""], Serving::Serving);
        assert_eq!(held.probes.serving["datasources"], Serving::Serving);
        assert!(
            codes(&held).contains(&Code::FleetCorrelated),
            "{:?}",
            codes(&held)
        );
        let fleet = held.probes.fleet.as_ref().expect("a fleet state");
        assert_eq!(fleet.peers, Some(5));
        assert_eq!(fleet.failing[""], 5);
        // The report's status is its own; only the probe-facing status is held.
        assert_eq!(held.system.status, Status::Critical);
        // One of five: its own failure.
        task.handle(Command::Fleet(view(0, clock.at(2))), &publish, clock.at(2));
        let alone = state(&publish);
        assert_eq!(alone.probes.serving[""], Serving::NotServing);
        assert!(!codes(&alone).contains(&Code::FleetCorrelated));
        assert!(
            alone.stamp.revision > held.stamp.revision,
            "watchers hear it"
        );
        // No view: decided locally, and said so.
        let unavailable = FleetView::Unavailable {
            reason: "connection refused".into(),
        };
        task.handle(Command::Fleet(view(4, clock.at(3))), &publish, clock.at(3));
        assert_eq!(state(&publish).probes.serving[""], Serving::Serving);
        task.handle(Command::Fleet(unavailable), &publish, clock.at(4));
        let local = state(&publish);
        assert_eq!(local.probes.serving[""], Serving::NotServing);
        assert!(codes(&local).contains(&Code::FleetViewUnavailable));
        // A view that stopped coming is no view.
        task.handle(Command::Fleet(view(4, clock.at(5))), &publish, clock.at(5));
        publish.send_replace(Arc::new(task.recompute(&[], clock.at(40))));
        assert_eq!(state(&publish).probes.serving[""], Serving::NotServing);
        // Healthy again: no guard issue stays behind.
        push(&mut task, &publish, pool(1, 0), clock.at(41));
        let healthy = state(&publish);
        assert_eq!(healthy.probes.serving[""], Serving::Serving);
        assert!(codes(&healthy).is_empty(), "{:?}", codes(&healthy));
    }
}
