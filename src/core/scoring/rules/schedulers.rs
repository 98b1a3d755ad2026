//! Scheduler rules: SCHEDULER_*.


use crate::core::{
    refusal::FieldError,
    scoring::{
        catalog::Code,
        policy::Thresholds,
        snapshot::{not_above, Evaluation, SchedulerSnapshot, Snapshot},
    },
};

impl Snapshot for SchedulerSnapshot {
    fn check(&self) -> Result<(), FieldError> {
        not_above(
            "paused_tasks",
            self.paused_tasks.into(),
            "tasks",
            self.tasks.into(),
        )
    }

    fn evaluate(&self, _previous: Option<&Self>, _t: &Thresholds) -> Evaluation {
        let name = &self.name;
        let mut e = Evaluation::default();
        e.metrics.set("started", f64::from(u8::from(self.started)));
        e.metrics.set("tasks", f64::from(self.tasks));
        e.metrics.set("pausedTasks", f64::from(self.paused_tasks));
        if !self.started {
            e.fire(
                Code::SchedulerNotStarted,
                format!("Scheduler '{name}' has not started"),
                &["started"],
            );
        }
        if self.tasks > 0 && self.paused_tasks >= self.tasks {
            e.fire(
                Code::SchedulerAllTasksPaused,
                format!("Scheduler '{name}' has all {} tasks paused", self.tasks),
                &["tasks", "pausedTasks"],
            );
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_task_bands() {
        for (started, tasks, paused, expected) in [
            (true, 0, 0, vec![]),
            (true, 3, 2, vec![]),
            (true, 3, 3, vec![Code::SchedulerAllTasksPaused]),
            (false, 0, 0, vec![Code::SchedulerNotStarted]),
        ] {
            let s = SchedulerSnapshot {
                name: "jobs".into(),
                started,
                tasks,
                paused_tasks: paused,
            };
            assert_eq!(s.evaluate(None, &Thresholds::default()).codes(), expected);
        }
    }
}
