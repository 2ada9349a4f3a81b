//! What the actors that read streams without a group share (the trainer, the drift monitor,
//! the deployer): their log events sorted into records to handle, errors logged, and a refused
//! subscription noted so that the next tick subscribes again; and credit granted back for the
//! records handled.

use aiot_runtime::{ActorError, Ctx, Message, PortRef};

use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{ConsumerEvent, StoredRecord};

/// The records in `event`, if it brings some. A consumer error is logged under `who`; a
/// refused subscription is logged and sets `resubscribe`; other events are ignored.
pub fn records(event: LogEvent, who: &str, resubscribe: &mut bool) -> Option<Vec<StoredRecord>> {
    match event {
        LogEvent::Consumer(ConsumerEvent::Records(records)) => return Some(records),
        LogEvent::Consumer(ConsumerEvent::Error(error)) => tracing::warn!("{who}: consumer: {error}"),
        LogEvent::Refused { request, error } => {
            tracing::warn!("{who}: the log refused to {request}: {error}");
            *resubscribe |= request == "subscribe";
        }
        _ => {}
    }
    None
}

/// Gives the consumer back `count` records of credit (nothing without the port).
pub fn grant<M: Message>(
    log: Option<&PortRef<Log>>,
    count: u32,
    ctx: &mut Ctx<'_, M>,
) -> Result<(), ActorError> {
    match log {
        Some(log) => Ok(ctx.port_request(log, LogRequest::Grant(count))?),
        None => Ok(()),
    }
}
