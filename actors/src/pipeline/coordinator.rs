//! The pipeline coordinator: the actor that runs a DAG of step actors declared in code.
//!
//! - **Declaring:** [`PipelineBuilder::step`] names a step, what it comes after, its timeout
//!   and retries, and the actor (by path) that does it; that actor takes [`StepRequest`]s (its
//!   message type converts from one) and answers a [`StepResult`]. Steps are placed like any
//!   actor, so the heavy one (training) can go to a node with an accelerator.
//! - **Running:** a run starts on [`PipelineMsg::Run`] (a command, such as the drift monitor's)
//!   or on the schedule (`first_after` the coordinator's start, then `every` after each run's
//!   start). One run at a time: a request during a run is queued, and requests queued together
//!   become one run with their reasons joined. Each step gets the outputs of every step it
//!   depends on; a step that fails (an error, a timeout, an actor that cannot be reached) is
//!   tried again by its retry policy; `run::Run` decides.
//! - **Status:** [`PipelineMsg::Status`] answers the run in progress, the queue, the last runs
//!   and the counts; the same is shared with the host (`PipelineStats`) for status lines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, ActorRef, Ctx, Message, ReplyTo};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::dag::{Dag, StepSpec};
use super::run::{Outcome, Run, RunView, StepResult, StepState};

/// Finished runs the status keeps.
pub const KEEP_RUNS: usize = 10;

/// What a step's actor is asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRequest<A> {
    pub run: u64,
    /// Why the run started (the drift monitor's evidence, "scheduled", ...).
    pub reason: String,
    pub step: String,
    pub attempt: u32,
    /// The outputs of every step this one depends on, by step name.
    pub inputs: BTreeMap<String, A>,
    pub reply: ReplyTo<StepResult<A>>,
}

/// What the coordinator takes.
#[derive(Debug, Serialize, Deserialize)]
pub enum PipelineMsg<A> {
    /// Start a run for this reason (queued behind a run in progress).
    Run {
        reason: String,
    },
    Status(ReplyTo<PipelineStatus>),
    /// A step's answer (an error: it could not be asked, or did not answer in time).
    Answered {
        run: u64,
        step: usize,
        attempt: u32,
        result: Result<StepResult<A>, String>,
    },
    /// A retry or a scheduled run may be due (the cluster time the wake was set for).
    Wake {
        at_ms: u64,
    },
}

/// The pipeline's state for people and scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineStatus {
    /// The steps in order, each with what it comes after.
    pub steps: Vec<(String, Vec<String>)>,
    pub runs: u64,
    pub succeeded: u64,
    pub refused: u64,
    pub failed: u64,
    /// Attempts that failed and were made again.
    pub retries: u64,
    pub current: Option<RunView>,
    /// The reasons of a run waiting for the current one.
    pub queued: Vec<String>,
    /// The last finished runs, oldest first.
    pub recent: Vec<RunView>,
    /// Cluster time of the next scheduled run.
    pub next_scheduled_ms: Option<u64>,
}

impl PipelineStatus {
    /// One line for a node's status.
    pub fn line(&self) -> String {
        let last = match (&self.current, self.recent.last()) {
            (Some(run), _) | (None, Some(run)) => run.line(),
            (None, None) => "no run yet".into(),
        };
        format!(
            "pipeline: {} runs ({} succeeded, {} refused, {} failed, {} retries); {last}",
            self.runs, self.succeeded, self.refused, self.failed, self.retries
        )
    }
}

/// The status, shared with the host.
pub type PipelineStats = Arc<Mutex<PipelineStatus>>;

/// When runs start without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Cluster time from the coordinator's start to the first run (none: only on request).
    pub first_after: Option<Duration>,
    /// Cluster time from one run's start to the next scheduled one.
    pub every: Option<Duration>,
}

type Dispatch<A> = Arc<
    dyn Fn(&mut Ctx<'_, PipelineMsg<A>>, StepRequestParts<A>, Duration) -> Result<(), String> + Send + Sync,
>;

/// A request before its reply address exists.
pub struct StepRequestParts<A> {
    run: u64,
    reason: String,
    step: usize,
    name: String,
    attempt: u32,
    inputs: BTreeMap<String, A>,
}

/// A pipeline declared in code.
pub struct PipelineBuilder<A: Message + Clone> {
    steps: Vec<(StepSpec, Dispatch<A>)>,
}

impl<A: Message + Clone> Default for PipelineBuilder<A> {
    fn default() -> Self {
        PipelineBuilder { steps: Vec::new() }
    }
}

impl<A: Message + Clone> PipelineBuilder<A> {
    /// Step `spec`, done by the actor at `actor`, whose messages `M` take step requests.
    pub fn step<M: Message + From<StepRequest<A>>>(mut self, spec: StepSpec, actor: &str) -> Self {
        let path = actor.to_string();
        let dispatch: Dispatch<A> = Arc::new(move |ctx, parts, timeout| {
            let to = ActorRef::<M>::parse(&path).map_err(|e| format!("{path}: {e:?}"))?;
            let StepRequestParts { run, reason, step, name, attempt, inputs } = parts;
            let request = |reply| M::from(StepRequest { run, reason, step: name, attempt, inputs, reply });
            let answered = move |result: Result<StepResult<A>, aiot_runtime::AskError>| {
                PipelineMsg::Answered { run, step, attempt, result: result.map_err(|e| e.to_string()) }
            };
            ctx.ask(&to, request, timeout, answered).map(|_| ()).map_err(|e| format!("{path}: {e}"))
        });
        self.steps.push((spec, dispatch));
        self
    }

    /// The pipeline, once its shape checks out.
    pub fn build(self) -> Result<Pipeline<A>, String> {
        let dag = Dag::new(self.steps.iter().map(|(spec, _)| spec.clone()).collect())?;
        let mut by_name: BTreeMap<String, Dispatch<A>> =
            self.steps.into_iter().map(|(spec, dispatch)| (spec.name, dispatch)).collect();
        let dispatch =
            dag.steps().iter().map(|s| by_name.remove(&s.name).expect("every step declared")).collect();
        Ok(Pipeline { dag, dispatch })
    }
}

/// A checked pipeline: its shape and how each step's actor is asked.
pub struct Pipeline<A: Message + Clone> {
    dag: Dag,
    dispatch: Vec<Dispatch<A>>,
}

impl<A: Message + Clone> Clone for Pipeline<A> {
    fn clone(&self) -> Self {
        Pipeline { dag: self.dag.clone(), dispatch: self.dispatch.clone() }
    }
}

impl<A: Message + Clone> Pipeline<A> {
    /// A coordinator for it. Again after a restart: run numbers go on from the shared status,
    /// and the reasons of the run that was in progress (counted as failed) and of those queued
    /// are queued again.
    pub fn coordinator(&self, schedule: Schedule, stats: PipelineStats) -> Coordinator<A> {
        let steps = self.dag.steps().iter().map(|s| (s.name.clone(), s.after.clone())).collect();
        let (next_id, queued) = {
            let mut status = stats.lock();
            status.steps = steps;
            let mut queued = std::mem::take(&mut status.queued);
            if let Some(lost) = status.current.take() {
                status.failed += 1;
                queued.insert(0, lost.reason);
            }
            (status.runs + 1, queued)
        };
        Coordinator { pipeline: self.clone(), schedule, stats, run: None, queued, next_id, armed: None }
    }
}

/// The coordinator actor.
pub struct Coordinator<A: Message + Clone> {
    pipeline: Pipeline<A>,
    schedule: Schedule,
    stats: PipelineStats,
    run: Option<Run<A>>,
    queued: Vec<String>,
    next_id: u64,
    /// The cluster time a `Wake` is scheduled for.
    armed: Option<u64>,
}

impl<A: Message + Clone> Coordinator<A> {
    fn request(&mut self, reason: String, ctx: &mut Ctx<'_, PipelineMsg<A>>) {
        if !self.queued.contains(&reason) {
            self.queued.push(reason);
        }
        self.advance(ctx);
    }

    /// Starts a queued run if none is going, starts every step that is due, and arms the timer
    /// for the next retry or scheduled run.
    fn advance(&mut self, ctx: &mut Ctx<'_, PipelineMsg<A>>) {
        let now_ms = ctx.cluster_ms();
        if self.stats.lock().next_scheduled_ms.is_some_and(|at| at <= now_ms) {
            if !self.queued.iter().any(|r| r == "scheduled") {
                self.queued.push("scheduled".into());
            }
            self.stats.lock().next_scheduled_ms = None;
        }
        // A run can end at once (its first step not reachable, with one attempt): then the
        // next queued one starts.
        loop {
            if self.run.is_none() {
                if self.queued.is_empty() {
                    break;
                }
                let reason = std::mem::take(&mut self.queued).join("; ");
                self.run = Some(Run::new(&self.pipeline.dag, self.next_id, reason, now_ms));
                self.next_id += 1;
                let mut stats = self.stats.lock();
                stats.runs += 1;
                if let Some(every) = self.schedule.every {
                    stats.next_scheduled_ms = Some(now_ms.saturating_add(every.as_millis() as u64));
                }
            }
            self.start_due(now_ms, ctx);
            if self.run.is_some() {
                break;
            }
        }
        self.publish();
        let next = [self.run.as_ref().and_then(Run::next_retry_ms), self.stats.lock().next_scheduled_ms];
        if let Some(at) = next.into_iter().flatten().min() {
            if self.armed.is_none_or(|armed| at < armed) {
                self.armed = Some(at);
                let after = ctx.executor_duration(Duration::from_millis(at.saturating_sub(now_ms)));
                ctx.schedule_once(after, PipelineMsg::Wake { at_ms: at });
            }
        }
    }

    fn start_due(&mut self, now_ms: u64, ctx: &mut Ctx<'_, PipelineMsg<A>>) {
        let Some(run) = &mut self.run else { return };
        loop {
            let dag = &self.pipeline.dag;
            let launches = run.start_due(dag, now_ms);
            if launches.is_empty() {
                break;
            }
            for launch in launches {
                let spec = &dag.steps()[launch.step];
                let parts = StepRequestParts {
                    run: run.id(),
                    reason: run.view().reason.clone(),
                    step: launch.step,
                    name: spec.name.clone(),
                    attempt: launch.attempt,
                    inputs: launch.inputs,
                };
                let timeout = ctx.executor_duration(spec.timeout);
                if let Err(why) = (self.pipeline.dispatch[launch.step])(ctx, parts, timeout) {
                    tracing::warn!("pipeline: run {} step {}: {why}", run.id(), spec.name);
                    let failed = StepResult::Failed(format!("not asked: {why}"));
                    Self::finish(dag, &self.stats, run, launch.step, launch.attempt, failed, now_ms);
                }
            }
        }
        if run.outcome() != Outcome::Running {
            let done = self.run.take().expect("checked above");
            let mut stats = self.stats.lock();
            match done.outcome() {
                Outcome::Succeeded => stats.succeeded += 1,
                Outcome::Refused => stats.refused += 1,
                Outcome::Failed => stats.failed += 1,
                Outcome::Running => unreachable!("checked above"),
            }
            tracing::info!("pipeline: {}", done.view().line());
            stats.recent.push(done.view().clone());
            let excess = stats.recent.len().saturating_sub(KEEP_RUNS);
            stats.recent.drain(..excess);
        }
    }

    fn finish(
        dag: &Dag,
        stats: &PipelineStats,
        run: &mut Run<A>,
        step: usize,
        attempt: u32,
        result: StepResult<A>,
        now_ms: u64,
    ) {
        if run.finish(dag, step, attempt, result, now_ms)
            && matches!(run.view().steps[step].1, StepState::Retrying { .. })
        {
            stats.lock().retries += 1;
        }
    }

    fn on_answer(
        &mut self,
        id: u64,
        step: usize,
        attempt: u32,
        result: Result<StepResult<A>, String>,
        ctx: &mut Ctx<'_, PipelineMsg<A>>,
    ) {
        let Some(run) = self.run.as_mut().filter(|run| run.id() == id) else { return };
        let result = result.unwrap_or_else(StepResult::Failed);
        Self::finish(&self.pipeline.dag, &self.stats, run, step, attempt, result, ctx.cluster_ms());
        self.advance(ctx);
    }

    /// Copies the run in progress and the queue into the shared status.
    fn publish(&self) {
        let mut stats = self.stats.lock();
        stats.current = self.run.as_ref().map(|run| run.view().clone());
        stats.queued = self.queued.clone();
    }
}

impl<A: Message + Clone> Actor for Coordinator<A> {
    type Msg = PipelineMsg<A>;

    fn started(&mut self, ctx: &mut Ctx<'_, PipelineMsg<A>>) -> Result<(), ActorError> {
        let now_ms = ctx.cluster_ms();
        self.stats.lock().next_scheduled_ms =
            self.schedule.first_after.map(|after| now_ms.saturating_add(after.as_millis() as u64));
        self.armed = None;
        self.advance(ctx);
        Ok(())
    }

    fn handle(&mut self, msg: PipelineMsg<A>, ctx: &mut Ctx<'_, PipelineMsg<A>>) -> Result<(), ActorError> {
        match msg {
            PipelineMsg::Run { reason } => self.request(reason, ctx),
            PipelineMsg::Status(reply) => {
                let status = self.stats.lock().clone();
                ctx.reply(&reply, status)?;
            }
            PipelineMsg::Answered { run, step, attempt, result } => {
                self.on_answer(run, step, attempt, result, ctx)
            }
            // Only the wake armed last re-arms: an earlier one, overtaken, does nothing more.
            PipelineMsg::Wake { at_ms } => {
                if self.armed == Some(at_ms) {
                    self.armed = None;
                }
                self.advance(ctx);
            }
        }
        Ok(())
    }
}
