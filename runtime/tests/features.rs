//! Timers, request/reply, watches and ports, under both executors.

mod common;

use std::time::Duration;

use aiot_runtime::prelude::*;
use aiot_runtime::{Port, PortCall, PortRef};
use common::*;
use serde::{Deserialize, Serialize};

/// Exercises timers and asks; logs what happens with the virtual time.
struct Clockwork {
    log: Log,
    target: ActorRef<Cmd>,
    tick: Option<aiot_runtime::TimerId>,
    ticks: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Cw {
    Tick,
    Once(String),
    Ask,
    Answer(Result<u64, AskError>),
    Watch,
    Down(Down),
}

impl Actor for Clockwork {
    type Msg = Cw;

    fn started(&mut self, ctx: &mut Ctx<'_, Cw>) -> Result<(), ActorError> {
        self.tick = Some(ctx.schedule_every(Duration::from_secs(10), Cw::Tick));
        ctx.schedule_once(Duration::from_secs(15), Cw::Once("fifteen".into()));
        let cancelled = ctx.schedule_once(Duration::from_secs(5), Cw::Once("never".into()));
        assert!(ctx.cancel_timer(cancelled));
        Ok(())
    }

    fn handle(&mut self, msg: Cw, ctx: &mut Ctx<'_, Cw>) -> Result<(), ActorError> {
        let at = ctx.now().since_start().as_secs();
        match msg {
            Cw::Tick => {
                self.ticks += 1;
                self.log.lock().push(format!("{at}s tick{}", self.ticks));
                if self.ticks == 3 {
                    let tick = self.tick.take().unwrap();
                    ctx.cancel_timer(tick);
                }
            }
            Cw::Once(what) => self.log.lock().push(format!("{at}s {what}")),
            Cw::Ask => {
                if let Err(e) = ctx.ask(&self.target, Cmd::Get, Duration::from_secs(2), Cw::Answer) {
                    self.log.lock().push(format!("{at}s ask refused: {e}"));
                }
            }
            Cw::Answer(answer) => self.log.lock().push(format!("{at}s answer {answer:?}")),
            Cw::Watch => ctx.watch(&self.target, Cw::Down),
            Cw::Down(down) => self.log.lock().push(format!("{at}s down {} {}", down.path, down.reason)),
        }
        Ok(())
    }
}

fn clockwork(log: &Log, target: &str) -> ActorSpec<Clockwork> {
    let (log, target) = (log.clone(), ActorRef::parse(target).unwrap());
    ActorSpec::new(move |_| Clockwork { log: log.clone(), target: target.clone(), tick: None, ticks: 0 })
}

#[test]
fn timers_fire_at_their_virtual_times_and_cancel() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    system.spawn("cw", clockwork(&log, "/nobody")).unwrap();
    system.run_for(Duration::from_secs(100));
    assert_eq!(*log.lock(), ["10s tick1", "15s fifteen", "20s tick2", "30s tick3"]);
    assert_eq!(system.now().since_start(), Duration::from_secs(100));
}

#[test]
fn asks_are_answered_and_asks_to_nobody_are_refused() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    system.spawn("w", Worker::spec("w", &log)).unwrap();
    let cw = system.spawn("cw", clockwork(&log, "/w")).unwrap();
    let lost = system.spawn("lost", clockwork(&log, "/nobody-home")).unwrap();
    system.run_for(Duration::from_secs(1));
    system.tell(&worker("/w"), Cmd::Add(7)).unwrap();
    system.tell(&cw, Cw::Ask).unwrap();
    system.tell(&lost, Cw::Ask).unwrap();
    system.run_for(Duration::from_secs(1));
    let lines = log.lock().clone();
    assert!(lines.contains(&"1s answer Ok(7)".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"1s ask refused: no actor at /nobody-home (dead letter)".to_string()),
        "{lines:?}"
    );
}

/// Never answers: keeps asks waiting.
struct Silent;
impl Actor for Silent {
    type Msg = Cmd;
    fn handle(&mut self, _: Cmd, _: &mut Ctx<'_, Cmd>) -> Result<(), ActorError> {
        Ok(())
    }
}

#[test]
fn an_unanswered_ask_times_out_at_its_deadline() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    system.spawn("w", ActorSpec::new(|_| Silent)).unwrap();
    let cw = system.spawn("cw", clockwork(&log, "/w")).unwrap();
    system.run_for(Duration::from_secs(1));
    system.tell(&cw, Cw::Ask).unwrap();
    system.run_for(Duration::from_secs(5));
    assert!(log.lock().contains(&"3s answer Err(Timeout)".to_string()), "{:?}", log.lock());
}

#[test]
fn watchers_get_a_death_notice() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    let w = system.spawn("w", Worker::spec("w", &log).restart(Restart::Temporary)).unwrap();
    let cw = system.spawn("cw", clockwork(&log, "/w")).unwrap();
    system.run_for(Duration::from_secs(1));
    system.tell(&cw, Cw::Watch).unwrap();
    system.run_for(Duration::from_secs(1));
    system.tell(&w, Cmd::Fail).unwrap();
    system.run_for(Duration::from_secs(1));
    let lines = log.lock().clone();
    assert!(lines.contains(&"2s down /w failed: w told to fail".to_string()), "{lines:?}");
    // Watching nothing: an immediate notice.
    system.tell(&cw, Cw::Watch).unwrap();
    system.run_for(Duration::from_secs(1));
    assert!(log.lock().contains(&"3s down /w no actor at the path".to_string()), "{:?}", log.lock());
}

/// A port that upper-cases text: the host's adapter answers with an event.
struct Upper;
impl Port for Upper {
    const NAME: &'static str = "upper";
    type Request = String;
    type Event = String;
}

/// The adapter for `Upper`.
struct UpperAdapter;
impl Actor for UpperAdapter {
    type Msg = PortCall<Upper>;
    fn handle(&mut self, call: PortCall<Upper>, _: &mut Ctx<'_, PortCall<Upper>>) -> Result<(), ActorError> {
        call.client.emit(call.request.to_uppercase())?;
        Ok(())
    }
}

/// Uses the port.
struct PortUser {
    port: Option<PortRef<Upper>>,
    log: Log,
}

#[derive(Debug, Serialize, Deserialize)]
enum Pu {
    Say(String),
    Heard(String),
}

impl Actor for PortUser {
    type Msg = Pu;
    fn started(&mut self, ctx: &mut Ctx<'_, Pu>) -> Result<(), ActorError> {
        self.port = Some(ctx.open_port::<Upper>(Pu::Heard));
        Ok(())
    }
    fn handle(&mut self, msg: Pu, ctx: &mut Ctx<'_, Pu>) -> Result<(), ActorError> {
        match msg {
            Pu::Say(text) => ctx.port_request(self.port.as_ref().unwrap(), text)?,
            Pu::Heard(text) => self.log.lock().push(text),
        }
        Ok(())
    }
}

fn port_user(log: &Log) -> ActorSpec<PortUser> {
    let log = log.clone();
    ActorSpec::new(move |_| PortUser { port: None, log: log.clone() })
}

#[test]
fn ports_carry_requests_to_the_host_adapter_and_events_back() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    system.install_port::<Upper, _>(ActorSpec::new(|_| UpperAdapter)).unwrap();
    let user = system.spawn("user", port_user(&log)).unwrap();
    system.run_until_idle();
    system.tell(&user, Pu::Say("hello".into())).unwrap();
    system.run_until_idle();
    assert_eq!(*log.lock(), ["HELLO"]);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let log = common::log();
        let system = TokioSystem::start(SystemConfig::with_seed(1));
        system.install_port::<Upper, _>(ActorSpec::new(|_| UpperAdapter)).unwrap();
        let user = system.spawn("user", port_user(&log)).unwrap();
        while system.core().paths().len() < 2 {
            tokio::task::yield_now().await;
        }
        system.tell(&user, Pu::Say("tokio".into())).unwrap();
        while log.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(*log.lock(), ["TOKIO"]);
        system.shutdown().await;
    });
}

#[test]
fn timers_and_asks_under_tokio_on_a_paused_clock() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    rt.block_on(async {
        let log = log();
        let system = TokioSystem::start(SystemConfig::with_seed(1));
        system.spawn("w", ActorSpec::new(|_| Silent)).unwrap();
        let cw = system.spawn("cw", clockwork(&log, "/w")).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        system.tell(&cw, Cw::Ask).unwrap();
        tokio::time::sleep(Duration::from_secs(40)).await;
        let lines = log.lock().clone();
        assert_eq!(lines, ["2s answer Err(Timeout)", "10s tick1", "15s fifteen", "20s tick2", "30s tick3"]);
        system.shutdown().await;
    });
}

/// Many asks answered in time: their cancelled timeouts never fire, and the timers set among
/// them still fire at their times (one timer task per system holds them all).
#[test]
fn answered_asks_leave_no_timeouts_behind_under_tokio() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    rt.block_on(async {
        let log = log();
        let system = TokioSystem::start(SystemConfig::with_seed(1));
        system.spawn("w", Worker::spec("w", &log)).unwrap();
        let cw = system.spawn("cw", clockwork(&log, "/w")).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..500 {
            system.tell(&cw, Cw::Ask).unwrap();
        }
        tokio::time::sleep(Duration::from_secs(40)).await;
        let lines = log.lock().clone();
        let answers = lines.iter().filter(|l| l.as_str() == "0s answer Ok(0)").count();
        assert_eq!(answers, 500, "{lines:?}");
        let rest: Vec<&String> = lines.iter().filter(|l| !l.contains("answer Ok")).collect();
        assert_eq!(rest, ["start:w:0", "10s tick1", "15s fifteen", "20s tick2", "30s tick3"]);
        system.shutdown().await;
    });
}

/// Blocks its thread until told to go on (a stand-in for a long training step).
struct Blocker {
    go_on: std::sync::Arc<parking_lot::Mutex<std::sync::mpsc::Receiver<()>>>,
    log: Log,
}

#[derive(Debug, Serialize, Deserialize)]
struct Block;

impl Actor for Blocker {
    type Msg = Block;
    fn handle(&mut self, _: Block, _: &mut Ctx<'_, Block>) -> Result<(), ActorError> {
        let outcome = self.go_on.lock().recv_timeout(Duration::from_secs(20));
        self.log.lock().push(format!("blocker released: {}", outcome.is_ok()));
        Ok(())
    }
}

fn blocker(go_on: std::sync::mpsc::Receiver<()>, log: &Log) -> ActorSpec<Blocker> {
    let (go_on, log) = (std::sync::Arc::new(parking_lot::Mutex::new(go_on)), log.clone());
    ActorSpec::new(move |_| Blocker { go_on: go_on.clone(), log: log.clone() })
}

#[test]
fn a_heavy_actor_cannot_starve_the_others_under_tokio() {
    // One worker thread: if the blocked handler held it, the worker below could not answer
    // until the blocker gave up after 20 s, and the blocker would report it was not released.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let log = log();
        let (release, go_on) = std::sync::mpsc::channel();
        let system = TokioSystem::start(SystemConfig::with_seed(1));
        let blocker = system.spawn("blocker", blocker(go_on, &log).heavy()).unwrap();
        let w = system.spawn("w", Worker::spec("w", &log)).unwrap();
        system.tell(&w, Cmd::Add(3)).unwrap();
        system.tell(&blocker, Block).unwrap();
        let answer = system.ask(&w, Cmd::Get, Duration::from_secs(10)).await;
        assert_eq!(answer, Ok(3), "the worker answered while the heavy actor was blocked");
        release.send(()).unwrap();
        while !log.lock().iter().any(|l| l.starts_with("blocker released")) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(log.lock().contains(&"blocker released: true".to_string()), "{:?}", log.lock());
        system.shutdown().await;
    });
}
