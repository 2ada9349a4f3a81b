//! One run of a pipeline as pure state: which steps are waiting, running, retrying, done,
//! refused, failed or skipped, and the outputs of those done. The coordinator asks it what to
//! start (`start_due`) and tells it each answer (`finish`); it decides retries and what a
//! failure skips.
//!
//! A step's answer is one of three: done (with its output), refused (it looked and said no,
//! such as a model that validates worse than the one in service: not retried) or failed (an
//! error or a timeout: retried by the step's policy). A refused or finally failed step skips
//! everything after it; the run ends when no step can move.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dag::Dag;

/// Where one step of a run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    /// Its predecessors are not all done yet.
    Waiting,
    Running {
        attempt: u32,
        since_ms: u64,
    },
    /// Attempt `attempt` starts at `at_ms`; the one before failed with `error`.
    Retrying {
        attempt: u32,
        at_ms: u64,
        error: String,
    },
    Done {
        attempts: u32,
        at_ms: u64,
        summary: String,
    },
    Refused {
        reason: String,
    },
    Failed {
        attempts: u32,
        error: String,
    },
    /// A step it depends on was refused or failed.
    Skipped {
        because: String,
    },
}

impl StepState {
    fn is_open(&self) -> bool {
        matches!(self, StepState::Waiting | StepState::Running { .. } | StepState::Retrying { .. })
    }
}

/// What a step's actor answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StepResult<A> {
    Done { summary: String, output: A },
    Refused(String),
    Failed(String),
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Running,
    Succeeded,
    /// A step refused; nothing failed.
    Refused,
    Failed,
}

/// A run as people and scripts see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    pub id: u64,
    pub reason: String,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    pub outcome: Outcome,
    /// Every step in the pipeline's order.
    pub steps: Vec<(String, StepState)>,
}

impl RunView {
    /// One line: the run, its outcome, and its steps' states in short.
    pub fn line(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(name, state)| match state {
                StepState::Waiting => format!("{name} waiting"),
                StepState::Running { attempt, .. } => format!("{name} running (attempt {attempt})"),
                StepState::Retrying { attempt, error, .. } => format!("{name} retrying ({attempt}; {error})"),
                StepState::Done { attempts: 1, .. } => format!("{name} done"),
                StepState::Done { attempts, .. } => format!("{name} done after {attempts} attempts"),
                StepState::Refused { reason } => format!("{name} refused ({reason})"),
                StepState::Failed { attempts, error } => format!("{name} failed {attempts}x ({error})"),
                StepState::Skipped { .. } => format!("{name} skipped"),
            })
            .collect();
        format!("run {} ({}) {:?}: {}", self.id, self.reason, self.outcome, steps.join(", "))
    }
}

/// A step to start: its index, attempt number, and the outputs it takes, by step name.
#[derive(Debug, Clone)]
pub struct Launch<A> {
    pub step: usize,
    pub attempt: u32,
    pub inputs: BTreeMap<String, A>,
}

/// One run in progress (or finished).
#[derive(Debug, Clone)]
pub struct Run<A> {
    view: RunView,
    outputs: Vec<Option<A>>,
}

impl<A: Clone> Run<A> {
    pub fn new(dag: &Dag, id: u64, reason: String, now_ms: u64) -> Run<A> {
        let steps = dag.steps().iter().map(|s| (s.name.clone(), StepState::Waiting)).collect();
        let view =
            RunView { id, reason, started_ms: now_ms, finished_ms: None, outcome: Outcome::Running, steps };
        Run { view, outputs: vec![None; dag.steps().len()] }
    }

    pub fn view(&self) -> &RunView {
        &self.view
    }

    pub fn id(&self) -> u64 {
        self.view.id
    }

    /// The output of the step named `name`, once done.
    pub fn output(&self, dag: &Dag, name: &str) -> Option<&A> {
        self.outputs[dag.index(name)?].as_ref()
    }

    /// The steps that can start at `now_ms` (predecessors done, or a retry due), marked running.
    pub fn start_due(&mut self, dag: &Dag, now_ms: u64) -> Vec<Launch<A>> {
        let mut launches = Vec::new();
        for i in 0..self.view.steps.len() {
            let attempt = match &self.view.steps[i].1 {
                StepState::Waiting if dag.after(i).iter().all(|&p| self.outputs[p].is_some()) => 1,
                StepState::Retrying { attempt, at_ms, .. } if *at_ms <= now_ms => *attempt,
                _ => continue,
            };
            self.view.steps[i].1 = StepState::Running { attempt, since_ms: now_ms };
            let inputs = dag
                .inputs(i)
                .iter()
                .map(|&p| (dag.steps()[p].name.clone(), self.outputs[p].clone().expect("inputs are done")))
                .collect();
            launches.push(Launch { step: i, attempt, inputs });
        }
        launches
    }

    /// Step `step`'s answer to attempt `attempt`; an answer to an attempt no longer running (a
    /// late one) is ignored and `false` returned.
    pub fn finish(
        &mut self,
        dag: &Dag,
        step: usize,
        attempt: u32,
        result: StepResult<A>,
        now_ms: u64,
    ) -> bool {
        if !self
            .view
            .steps
            .get(step)
            .is_some_and(|(_, s)| matches!(s, StepState::Running { attempt: a, .. } if *a == attempt))
        {
            return false;
        }
        let spec = &dag.steps()[step];
        let state = match result {
            StepResult::Done { summary, output } => {
                self.outputs[step] = Some(output);
                StepState::Done { attempts: attempt, at_ms: now_ms, summary }
            }
            StepResult::Refused(reason) => StepState::Refused { reason },
            StepResult::Failed(error) if attempt < spec.retry.attempts => {
                let at_ms = now_ms.saturating_add(spec.retry.wait_after(attempt).as_millis() as u64);
                StepState::Retrying { attempt: attempt + 1, at_ms, error }
            }
            StepResult::Failed(error) => StepState::Failed { attempts: attempt, error },
        };
        if matches!(state, StepState::Refused { .. } | StepState::Failed { .. }) {
            let because = format!("{} did not finish", spec.name);
            for d in dag.descendants(step) {
                self.view.steps[d].1 = StepState::Skipped { because: because.clone() };
            }
        }
        self.view.steps[step].1 = state;
        self.settle(now_ms);
        true
    }

    /// When the earliest retry is due.
    pub fn next_retry_ms(&self) -> Option<u64> {
        self.view
            .steps
            .iter()
            .filter_map(|(_, s)| match s {
                StepState::Retrying { at_ms, .. } => Some(*at_ms),
                _ => None,
            })
            .min()
    }

    pub fn outcome(&self) -> Outcome {
        self.view.outcome
    }

    fn settle(&mut self, now_ms: u64) {
        let states = || self.view.steps.iter().map(|(_, s)| s);
        if states().any(StepState::is_open) {
            return;
        }
        self.view.outcome = if states().any(|s| matches!(s, StepState::Failed { .. })) {
            Outcome::Failed
        } else if states().any(|s| matches!(s, StepState::Refused { .. })) {
            Outcome::Refused
        } else {
            Outcome::Succeeded
        };
        self.view.finished_ms = Some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::dag::{Retry, StepSpec};
    use std::time::Duration;

    /// a -> {b, c} -> d, then e after d (taking a's output and d's); b retries twice at most,
    /// 1 s then 2 s apart.
    fn dag() -> Dag {
        let b = StepSpec::new("b", &["a"]).retry(Retry { attempts: 3, backoff: Duration::from_secs(1) });
        Dag::new(vec![
            StepSpec::new("a", &[]),
            b,
            StepSpec::new("c", &["a"]),
            StepSpec::new("d", &["b", "c"]),
            StepSpec::new("e", &["d"]).takes(&["a", "d"]),
        ])
        .unwrap()
    }

    fn started(launches: &[Launch<u32>]) -> Vec<(usize, u32)> {
        launches.iter().map(|l| (l.step, l.attempt)).collect()
    }

    fn done(output: u32) -> StepResult<u32> {
        StepResult::Done { summary: format!("made {output}"), output }
    }

    #[test]
    fn steps_start_when_their_predecessors_are_done_and_are_handed_the_outputs_they_take() {
        let dag = dag();
        let mut run: Run<u32> = Run::new(&dag, 1, "test".into(), 0);
        assert_eq!(started(&run.start_due(&dag, 0)), [(0, 1)]);
        assert!(run.start_due(&dag, 0).is_empty(), "a running step is not started twice");
        assert!(run.finish(&dag, 0, 1, done(10), 5));
        assert_eq!(started(&run.start_due(&dag, 5)), [(1, 1), (2, 1)], "b and c side by side");
        assert!(run.finish(&dag, 2, 1, done(30), 6));
        assert!(run.start_due(&dag, 6).is_empty(), "d waits for b as well");
        assert!(run.finish(&dag, 1, 1, done(20), 7));
        let d = run.start_due(&dag, 7);
        assert_eq!(started(&d), [(3, 1)]);
        assert_eq!(d[0].inputs, BTreeMap::from([("b".into(), 20), ("c".into(), 30)]), "its predecessors'");
        assert!(run.finish(&dag, 3, 1, done(40), 8));
        let e = run.start_due(&dag, 8);
        assert_eq!(e[0].inputs, BTreeMap::from([("a".into(), 10), ("d".into(), 40)]), "what it takes");
        assert_eq!(run.outcome(), Outcome::Running);
        assert!(run.finish(&dag, 4, 1, done(50), 9));
        assert_eq!(run.outcome(), Outcome::Succeeded);
        assert_eq!(run.view().finished_ms, Some(9));
        assert_eq!(run.output(&dag, "e"), Some(&50));
        assert!(run.view().line().contains("Succeeded: a done, b done"), "{}", run.view().line());
    }

    #[test]
    fn a_failed_step_is_retried_with_backoff_and_late_answers_are_ignored() {
        let dag = dag();
        let mut run: Run<u32> = Run::new(&dag, 1, "test".into(), 0);
        run.start_due(&dag, 0);
        run.finish(&dag, 0, 1, done(1), 0);
        run.start_due(&dag, 0);
        run.finish(&dag, 2, 1, done(3), 0);
        assert!(run.finish(&dag, 1, 1, StepResult::Failed("broker down".into()), 100));
        assert_eq!(run.next_retry_ms(), Some(1_100));
        assert!(run.start_due(&dag, 1_099).is_empty(), "not before its backoff");
        assert_eq!(started(&run.start_due(&dag, 1_100)), [(1, 2)]);
        assert!(!run.finish(&dag, 1, 1, done(2), 1_200), "attempt 1's late answer");
        assert!(run.finish(&dag, 1, 2, StepResult::Failed("timed out".into()), 1_300));
        assert_eq!(run.next_retry_ms(), Some(3_300), "twice the backoff");
        run.start_due(&dag, 3_300);
        assert!(run.finish(&dag, 1, 3, done(2), 3_400));
        assert!(matches!(run.view().steps[1].1, StepState::Done { attempts: 3, .. }));
        assert_eq!(started(&run.start_due(&dag, 3_400)), [(3, 1)]);
    }

    #[test]
    fn a_step_that_fails_every_attempt_or_refuses_skips_what_comes_after_it() {
        let dag = dag();
        let mut run: Run<u32> = Run::new(&dag, 1, "test".into(), 0);
        run.start_due(&dag, 0);
        run.finish(&dag, 0, 1, done(1), 0);
        run.start_due(&dag, 0);
        for attempt in 1..=3 {
            assert!(run.finish(&dag, 1, attempt, StepResult::Failed(format!("error {attempt}")), 0));
            run.start_due(&dag, 10_000);
        }
        assert_eq!(run.view().steps[1].1, StepState::Failed { attempts: 3, error: "error 3".into() });
        assert!(matches!(run.view().steps[3].1, StepState::Skipped { .. }));
        assert!(matches!(run.view().steps[4].1, StepState::Skipped { .. }));
        assert_eq!(run.outcome(), Outcome::Running, "c is still running");
        run.finish(&dag, 2, 1, done(3), 20);
        assert_eq!(run.outcome(), Outcome::Failed);

        let mut run: Run<u32> = Run::new(&dag, 2, "test".into(), 0);
        run.start_due(&dag, 0);
        run.finish(&dag, 0, 1, StepResult::Refused("nothing new".into()), 0);
        assert_eq!(run.outcome(), Outcome::Refused, "a refusal is not retried");
        assert!(run.start_due(&dag, 1_000_000).is_empty());
        assert!(run.view().line().contains("a refused (nothing new), b skipped"), "{}", run.view().line());
    }
}
