//! The pipeline's `ingest` step (`/ingest`, platform): the training data as the streams hold it.
//!
//! It reads `features` and `maintenance` from the start, every partition, with no group and no
//! commits, and keeps the last [`TrainerConfig::keep_windows`] DSP windows, as many stage-1
//! windows, and every outcome. Copies of a window (the streams are at least once) are kept
//! once, by their frame. After a restart it reads them again: nothing to snapshot. Asked for
//! the step, it answers what it holds now as a [`Snapshot`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, Ctx, PortRef};
use serde::{Deserialize, Serialize};

use super::steps::{Artifact, Snapshot};
use super::windows::WindowStore;
use super::{TrainerConfig, TrainerStats};
use crate::inference::features::{FeatureRecord, FeatureSource, FEATURES};
use crate::maintenance::MaintenanceRecord;
use crate::ml::labels::Outcomes;
use crate::pipeline::coordinator::StepRequest;
use crate::pipeline::run::StepResult;
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{Start, StoredRecord, Subscription};
use crate::streams::reader;
use crate::streams::MAINTENANCE;

/// Records the consumer may deliver before it grants more.
const CREDIT: u32 = 1024;
/// How often a refused subscription is asked for again.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(10);

/// What `/ingest` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum IngestMsg {
    Log(LogEvent),
    Tick,
    Step(StepRequest<Artifact>),
}

impl From<StepRequest<Artifact>> for IngestMsg {
    fn from(request: StepRequest<Artifact>) -> Self {
        IngestMsg::Step(request)
    }
}

/// The ingest actor.
pub struct Ingest {
    stats: Arc<TrainerStats>,
    log: Option<PortRef<Log>>,
    /// DSP vectors (stage 2's training data) and stage-1 vectors (the motes').
    dsp: WindowStore,
    stage1: WindowStore,
    outcomes: Outcomes,
    /// The log refused the subscription: ask again at the next tick.
    resubscribe: bool,
}

impl Ingest {
    pub fn new(config: &TrainerConfig, stats: Arc<TrainerStats>) -> Ingest {
        Ingest {
            stats,
            log: None,
            dsp: WindowStore::new(config.keep_windows),
            stage1: WindowStore::new(config.keep_windows),
            outcomes: Outcomes::default(),
            resubscribe: false,
        }
    }

    fn subscribe(&self, ctx: &mut Ctx<'_, IngestMsg>) -> Result<(), ActorError> {
        let Some(log) = &self.log else { return Ok(()) };
        let topics = [FEATURES, MAINTENANCE];
        let subscription =
            Subscription { credit: CREDIT, ..Subscription::all(&topics, "trainer", Start::Earliest) };
        Ok(ctx.port_request(log, LogRequest::Subscribe(subscription))?)
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, IngestMsg>,
    ) -> Result<(), ActorError> {
        let count = records.len() as u32;
        for stored in records {
            let topic = stored.partition.topic.as_str();
            let taken = if topic == FEATURES {
                FeatureRecord::decode(&stored.record.payload).map(|f| self.keep(f))
            } else if topic == MAINTENANCE {
                MaintenanceRecord::from_json(&stored.record.payload).map(|r| {
                    self.outcomes.record(&r);
                    self.stats.outcomes.fetch_add(1, Ordering::Relaxed);
                })
            } else {
                Ok(())
            };
            if let Err(why) = taken {
                self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("ingest: {}@{}: {why}", stored.partition, stored.offset);
            }
        }
        reader::grant(self.log.as_ref(), count, ctx)
    }

    /// Keeps a DSP or stage-1 window (once per frame), dropping the oldest beyond the limit.
    fn keep(&mut self, features: FeatureRecord) {
        let (store, counter) = match features.source {
            FeatureSource::Dsp => (&mut self.dsp, &self.stats.windows),
            FeatureSource::Stage1 { .. } => (&mut self.stage1, &self.stats.stage1_windows),
        };
        store.keep(features);
        counter.store(store.len() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self, at_ms: u64) -> StepResult<Artifact> {
        let snapshot = Snapshot {
            at_ms,
            dsp: self.dsp.to_vec(),
            stage1: self.stage1.to_vec(),
            outcomes: self.outcomes.clone(),
        };
        let summary = format!(
            "{} DSP and {} stage-1 windows, {} outcomes",
            snapshot.dsp.len(),
            snapshot.stage1.len(),
            self.stats.outcomes.load(Ordering::Relaxed)
        );
        StepResult::Done { summary, output: Artifact::Snapshot(Box::new(snapshot)) }
    }
}

impl Actor for Ingest {
    type Msg = IngestMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, IngestMsg>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(IngestMsg::Log));
        self.subscribe(ctx)?;
        ctx.schedule_every(RESUBSCRIBE_EVERY, IngestMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: IngestMsg, ctx: &mut Ctx<'_, IngestMsg>) -> Result<(), ActorError> {
        match msg {
            IngestMsg::Log(event) => {
                if let Some(records) = reader::records(event, "ingest", &mut self.resubscribe) {
                    self.on_records(records, ctx)?
                }
            }
            IngestMsg::Tick => {
                if std::mem::take(&mut self.resubscribe) {
                    self.subscribe(ctx)?;
                }
            }
            IngestMsg::Step(request) => {
                let result = self.snapshot(ctx.cluster_ms());
                ctx.reply(&request.reply, result)?;
            }
        }
        Ok(())
    }
}
