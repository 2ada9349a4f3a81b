//! The protocol bridge's downlink: commands from the `commands` stream to the motes.
//!
//! `/command-relay` (platform tier) consumes `commands` in a consumer group, asks the gateway to
//! send each command (`GatewayMsg::Command`: QoS 1, tracked until the mote's features report
//! shows it accepted it) and commits a partition's offset only past commands that are settled,
//! delivered or given up by the gateway. A command whose answer does not come within
//! `SETTLE_TIMEOUT` (the gateway moved, or its node crashed) is asked again, under its id (its
//! partition and offset), which the gateway uses to join a command still pending; after a rebalance or a restart
//! the group's committed offset makes the relay read unsettled commands again. So delivery is
//! at least once; a mote applies a command once per send it accepts, and commands are written to
//! be idempotent (configuration values, OTA chunks by offset).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, ActorRef, AskError, Ctx, PortRef};
use serde::{Deserialize, Serialize};

use super::progress::Holdings;
use super::{CommandRecord, COMMANDS, PARTITIONS};
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{ConsumerEvent, StoredRecord, Subscription, TopicPartition};
use crate::things::gateway::GatewayMsg;

/// The consumer group of the relays.
pub const GROUP: &str = "aiot-command-relay";
/// How long to wait for the gateway to settle a command before asking again (motes report
/// once a minute; a lost command is sent again at the next report). Asking about a command
/// still pending joins it at the gateway, so this only bounds how long a command is forgotten
/// by a gateway that restarted.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// Wait before asking again after a failed ask, or subscribing again after a refusal.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Commands being settled at most (the consumer's credit).
pub const IN_FLIGHT: u32 = 256;

/// The relay's counters, shared with the host.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub read: AtomicU64,
    pub delivered: AtomicU64,
    pub given_up: AtomicU64,
    /// Records in the stream that are not command records (skipped, committed past).
    pub invalid: AtomicU64,
    /// Asks that failed or timed out, asked again.
    pub retries: AtomicU64,
    /// Commands being settled now.
    pub in_flight: AtomicU64,
}

/// What the relay takes.
#[derive(Debug, Serialize, Deserialize)]
pub enum RelayMsg {
    Log(LogEvent),
    Settled {
        partition: TopicPartition,
        offset: u64,
        outcome: Result<bool, AskError>,
    },
    /// Ask the gateway again about this command.
    Retry {
        partition: TopicPartition,
        offset: u64,
    },
    Subscribe,
    /// Commit every partition's position again (a commit was refused: the log was down).
    Recommit,
}

pub struct CommandRelay {
    gateway: ActorRef<GatewayMsg>,
    stats: Arc<RelayStats>,
    log: Option<PortRef<Log>>,
    /// Per assigned partition: the commands being settled.
    partitions: Holdings<CommandRecord>,
    /// A `Recommit` is scheduled.
    recommit_due: bool,
}

impl CommandRelay {
    pub fn new(gateway: ActorRef<GatewayMsg>, stats: Arc<RelayStats>) -> Self {
        CommandRelay { gateway, stats, log: None, partitions: Holdings::default(), recommit_due: false }
    }

    fn request(&self, request: LogRequest, ctx: &mut Ctx<'_, RelayMsg>) -> Result<(), ActorError> {
        match &self.log {
            Some(log) => Ok(ctx.port_request(log, request)?),
            None => Ok(()),
        }
    }

    fn subscribe(&self, ctx: &mut Ctx<'_, RelayMsg>) -> Result<(), ActorError> {
        let subscription =
            Subscription { credit: IN_FLIGHT, ..Subscription::in_group(&[COMMANDS], GROUP, "relay") };
        self.request(LogRequest::Subscribe(subscription), ctx)
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, RelayMsg>,
    ) -> Result<(), ActorError> {
        for stored in records {
            self.stats.read.fetch_add(1, Ordering::Relaxed);
            let progress = self.partitions.entry(&stored.partition);
            match CommandRecord::decode(&stored.record.payload) {
                Ok(command) => {
                    progress.read(stored.offset, command);
                    self.ask(stored.partition, stored.offset, ctx);
                }
                Err(why) => {
                    progress.skip(stored.offset);
                    self.stats.invalid.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("command relay: {}@{}: {why}", stored.partition, stored.offset);
                    self.settle(&stored.partition, ctx)?;
                }
            }
        }
        self.count_in_flight();
        Ok(())
    }

    fn ask(&mut self, partition: TopicPartition, offset: u64, ctx: &mut Ctx<'_, RelayMsg>) {
        let Some(record) = self.partitions.get_mut(&partition).and_then(|p| p.get_mut(offset)) else {
            return;
        };
        let (mote, command) = (record.mote, record.command.clone());
        let id = (u64::from(partition.partition) << 48) | offset;
        let asked = ctx.ask(
            &self.gateway,
            |delivered| GatewayMsg::Command { mote, id, command, delivered },
            SETTLE_TIMEOUT,
            {
                let partition = partition.clone();
                move |outcome| RelayMsg::Settled { partition, offset, outcome }
            },
        );
        if asked.is_err() {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            ctx.schedule_once(RETRY_AFTER, RelayMsg::Retry { partition, offset });
        }
    }

    fn on_settled(
        &mut self,
        partition: TopicPartition,
        offset: u64,
        outcome: Result<bool, AskError>,
        ctx: &mut Ctx<'_, RelayMsg>,
    ) -> Result<(), ActorError> {
        // A settlement for a partition no longer ours (revoked) or a command settled already.
        let Some(progress) = self.partitions.get_mut(&partition) else { return Ok(()) };
        if progress.get_mut(offset).is_none() {
            return Ok(());
        }
        match outcome {
            Ok(delivered) => {
                progress.done(offset);
                let counter = if delivered { &self.stats.delivered } else { &self.stats.given_up };
                counter.fetch_add(1, Ordering::Relaxed);
                self.settle(&partition, ctx)?;
            }
            Err(_) => {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                ctx.schedule_once(RETRY_AFTER, RelayMsg::Retry { partition, offset });
            }
        }
        self.count_in_flight();
        Ok(())
    }

    /// One more record is done with: commits the partition up to its first unsettled command
    /// and gives the consumer one more credit.
    fn settle(&mut self, partition: &TopicPartition, ctx: &mut Ctx<'_, RelayMsg>) -> Result<(), ActorError> {
        for request in self.partitions.done(partition) {
            self.request(request, ctx)?;
        }
        Ok(())
    }

    /// Forgets the partitions no longer ours and gives their unsettled commands' credit back.
    fn release(
        &mut self,
        gone: impl Fn(&TopicPartition) -> bool,
        ctx: &mut Ctx<'_, RelayMsg>,
    ) -> Result<(), ActorError> {
        let credit = self.partitions.release(gone);
        self.count_in_flight();
        match credit {
            Some(request) => self.request(request, ctx),
            None => Ok(()),
        }
    }

    fn count_in_flight(&self) {
        let n = self.partitions.pending();
        self.stats.in_flight.store(n as u64, Ordering::Relaxed);
    }
}

impl Actor for CommandRelay {
    type Msg = RelayMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, RelayMsg>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(RelayMsg::Log));
        self.request(LogRequest::CreateTopic { topic: COMMANDS.into(), partitions: PARTITIONS }, ctx)?;
        self.subscribe(ctx)
    }

    fn handle(&mut self, msg: RelayMsg, ctx: &mut Ctx<'_, RelayMsg>) -> Result<(), ActorError> {
        match msg {
            RelayMsg::Log(LogEvent::Consumer(ConsumerEvent::Records(records))) => {
                self.on_records(records, ctx)?
            }
            RelayMsg::Log(LogEvent::Consumer(ConsumerEvent::Revoked(partitions))) => {
                // Their unsettled commands are read again by the partitions' next owner.
                self.release(|p| partitions.contains(p), ctx)?;
            }
            RelayMsg::Log(LogEvent::Consumer(ConsumerEvent::Assigned(partitions))) => {
                self.release(|p| !partitions.contains(p), ctx)?;
            }
            RelayMsg::Log(LogEvent::Refused { request, error }) => {
                tracing::warn!("command relay: the log refused to {request}: {error}");
                if request == "subscribe" {
                    ctx.schedule_once(RETRY_AFTER, RelayMsg::Subscribe);
                } else if request.starts_with("commit") && !self.recommit_due {
                    // Otherwise the position stays uncommitted, and a restarted relay would
                    // send every command since the last commit again.
                    self.recommit_due = true;
                    ctx.schedule_once(RETRY_AFTER, RelayMsg::Recommit);
                }
            }
            RelayMsg::Log(_) => {}
            RelayMsg::Settled { partition, offset, outcome } => {
                self.on_settled(partition, offset, outcome, ctx)?
            }
            RelayMsg::Retry { partition, offset } => self.ask(partition, offset, ctx),
            RelayMsg::Subscribe => self.subscribe(ctx)?,
            RelayMsg::Recommit => {
                self.recommit_due = false;
                for request in self.partitions.recommit() {
                    self.request(request, ctx)?;
                }
            }
        }
        Ok(())
    }
}
