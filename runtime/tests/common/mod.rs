//! Test actors shared by the runtime's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use aiot_runtime::prelude::*;
use aiot_runtime::{EventKind, SystemEvent};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A shared, ordered record of what test actors did.
pub type Log = Arc<Mutex<Vec<String>>>;

pub fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// Commands a `Worker` obeys.
#[derive(Debug, Serialize, Deserialize)]
pub enum Cmd {
    /// Add to the worker's count.
    Add(u64),
    /// Return an error from the handler.
    Fail,
    /// Panic in the handler.
    Panic,
    /// Stop normally.
    Stop,
    /// Reply with the worker's count.
    Get(ReplyTo<u64>),
}

/// Counts what it is sent; fails, panics or stops on command; logs its life to `log`.
pub struct Worker {
    pub name: String,
    pub count: u64,
    pub log: Log,
}

impl Worker {
    pub fn spec(name: &str, log: &Log) -> ActorSpec<Worker> {
        let (name, log) = (name.to_string(), log.clone());
        ActorSpec::new(move |_| Worker { name: name.clone(), count: 0, log: log.clone() })
    }
}

impl Actor for Worker {
    type Msg = Cmd;

    fn started(&mut self, ctx: &mut Ctx<'_, Cmd>) -> Result<(), ActorError> {
        self.log.lock().push(format!("start:{}:{}", self.name, ctx.incarnation()));
        Ok(())
    }

    fn handle(&mut self, msg: Cmd, ctx: &mut Ctx<'_, Cmd>) -> Result<(), ActorError> {
        match msg {
            Cmd::Add(n) => self.count += n,
            Cmd::Fail => return Err(ActorError::new(format!("{} told to fail", self.name))),
            Cmd::Panic => panic!("{} told to panic", self.name),
            Cmd::Stop => ctx.stop(),
            Cmd::Get(reply_to) => ctx.reply(&reply_to, self.count)?,
        }
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Ctx<'_, Cmd>) {
        self.log.lock().push(format!("stop:{}", self.name));
    }
}

/// The kinds of the events recorded for `path`, in order.
pub fn events_of(events: &[SystemEvent], path: &str) -> Vec<EventKind> {
    events.iter().filter(|e| e.path.as_str() == path).map(|e| e.kind.clone()).collect()
}

/// How many times `path` was restarted.
pub fn restarts_of(events: &[SystemEvent], path: &str) -> usize {
    events_of(events, path).iter().filter(|k| matches!(k, EventKind::Restarted { .. })).count()
}

pub fn worker(path: &str) -> ActorRef<Cmd> {
    ActorRef::parse(path).unwrap()
}
pub mod fanout;
