//! Supervision, case by case against OTP's documented behaviour (supervisor(3) in the Erlang/OTP
//! docs): each strategy with each restart type, restart intensity and escalation, panics.
//! Run under the deterministic executor, so every case is exact and repeatable.

mod common;

use std::time::Duration;

use aiot_runtime::prelude::*;
use aiot_runtime::EventKind;
use common::*;

/// A supervisor `/sup` with workers a, b, c (started in that order), all of `restart` type.
fn tree(strategy: SupervisorSpec, restart: Restart, log: &Log) -> DetSystem {
    let mut t = Topology::builder();
    t.supervisor("/sup", strategy);
    for name in ["a", "b", "c"] {
        t.push(&format!("/sup/{name}"), Worker::spec(name, log)).restart(restart);
    }
    let mut system = DetSystem::with_seed(7);
    system.start(&t.build().unwrap()).unwrap();
    system.run_until_idle();
    system
}

fn generous(spec: SupervisorSpec) -> SupervisorSpec {
    spec.intensity(10, Duration::from_secs(5))
}

fn count(system: &mut DetSystem, path: &str) -> u64 {
    let mut pending = system.ask(&worker(path), Cmd::Get, Duration::from_secs(1)).unwrap();
    system.run_until_idle();
    pending.try_take().expect("answered").expect("no timeout")
}

fn fail_b_and_settle(system: &mut DetSystem, log: &Log) -> Vec<String> {
    system.tell(&worker("/sup/a"), Cmd::Add(5)).unwrap();
    system.run_until_idle();
    log.lock().clear();
    system.tell(&worker("/sup/b"), Cmd::Fail).unwrap();
    system.run_until_idle();
    log.lock().clone()
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let log = log();
    let mut system = tree(generous(SupervisorSpec::one_for_one()), Restart::Permanent, &log);
    let lines = fail_b_and_settle(&mut system, &log);
    assert_eq!(lines, ["stop:b", "start:b:1"]);
    assert_eq!(count(&mut system, "/sup/a"), 5, "a kept its state");
    let events = system.core().events();
    assert_eq!(restarts_of(&events, "/sup/b"), 1);
    assert_eq!(restarts_of(&events, "/sup/a") + restarts_of(&events, "/sup/c"), 0);
}

#[test]
fn one_for_all_stops_siblings_in_reverse_order_then_restarts_all_in_order() {
    let log = log();
    let mut system = tree(generous(SupervisorSpec::one_for_all()), Restart::Permanent, &log);
    let lines = fail_b_and_settle(&mut system, &log);
    assert_eq!(lines, ["stop:b", "stop:c", "stop:a", "start:a:1", "start:b:1", "start:c:1"]);
    assert_eq!(count(&mut system, "/sup/a"), 0, "a restart builds a fresh actor from its factory");
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let log = log();
    let mut system = tree(generous(SupervisorSpec::rest_for_one()), Restart::Permanent, &log);
    let lines = fail_b_and_settle(&mut system, &log);
    assert_eq!(lines, ["stop:b", "stop:c", "start:b:1", "start:c:1"]);
    assert_eq!(count(&mut system, "/sup/a"), 5, "a was started before b: untouched");
}

#[test]
fn each_strategy_with_each_restart_type_on_failure_and_on_normal_exit() {
    let strategies =
        [SupervisorSpec::one_for_one(), SupervisorSpec::one_for_all(), SupervisorSpec::rest_for_one()];
    for strategy in strategies {
        for restart in [Restart::Permanent, Restart::Transient, Restart::Temporary] {
            for (cmd, abnormal) in [(Cmd::Fail, true), (Cmd::Panic, true), (Cmd::Stop, false)] {
                let log = log();
                let mut system = tree(generous(strategy), restart, &log);
                log.lock().clear();
                let label = format!("{:?} {restart:?} {cmd:?}", strategy.strategy);
                system.tell(&worker("/sup/b"), cmd).unwrap();
                system.run_until_idle();
                let restarted = match restart {
                    Restart::Permanent => true,
                    Restart::Transient => abnormal,
                    Restart::Temporary => false,
                };
                let events = system.core().events();
                assert_eq!(restarts_of(&events, "/sup/b"), usize::from(restarted), "{label}");
                let b_alive = system.core().lookup(&ActorPath::parse("/sup/b").unwrap()).is_some();
                assert_eq!(b_alive, restarted, "{label}");
                // Siblings go down only when b is restarted, by strategy (OTP).
                let siblings_restarted = restarts_of(&events, "/sup/a") + restarts_of(&events, "/sup/c");
                let expected = match (restarted, strategy.strategy) {
                    (false, _) | (true, Strategy::OneForOne) => 0,
                    (true, Strategy::OneForAll) => 2,
                    (true, Strategy::RestForOne) => 1,
                };
                // Temporary siblings are stopped but never restarted; here all share one type.
                let expected = if restart == Restart::Temporary { 0 } else { expected };
                assert_eq!(siblings_restarted, expected, "{label}");
                assert_eq!(system.core().exit_reason(), None, "{label}: the system keeps running");
            }
        }
    }
}

#[test]
fn temporary_sibling_stopped_by_one_for_all_is_not_restarted() {
    let log = log();
    let mut t = Topology::builder();
    t.supervisor("/sup", generous(SupervisorSpec::one_for_all()));
    t.push("/sup/a", Worker::spec("a", &log)).restart(Restart::Temporary);
    t.push("/sup/b", Worker::spec("b", &log));
    let mut system = DetSystem::with_seed(1);
    system.start(&t.build().unwrap()).unwrap();
    system.run_until_idle();
    log.lock().clear();
    system.tell(&worker("/sup/b"), Cmd::Fail).unwrap();
    system.run_until_idle();
    assert_eq!(*log.lock(), ["stop:b", "stop:a", "start:b:1"]);
    assert!(system.core().lookup(&ActorPath::parse("/sup/a").unwrap()).is_none());
}

#[test]
fn panic_in_a_handler_is_caught_and_is_a_failure() {
    let log = log();
    let mut system = tree(generous(SupervisorSpec::one_for_one()), Restart::Permanent, &log);
    system.tell(&worker("/sup/c"), Cmd::Panic).unwrap();
    system.run_until_idle();
    let kinds = events_of(&system.core().events(), "/sup/c");
    assert!(kinds.contains(&EventKind::Failed { reason: "panicked: c told to panic".into() }), "{kinds:?}");
    assert_eq!(restarts_of(&system.core().events(), "/sup/c"), 1);
    assert_eq!(count(&mut system, "/sup/c"), 0);
}

#[test]
fn intensity_exceeded_escalates_to_the_parent() {
    let log = log();
    let mut t = Topology::builder();
    t.supervisor("/top", SupervisorSpec::one_for_one().intensity(5, Duration::from_secs(60)));
    t.supervisor("/top/sup", SupervisorSpec::one_for_one().intensity(2, Duration::from_secs(5)));
    t.push("/top/sup/w", Worker::spec("w", &log));
    let mut system = DetSystem::with_seed(3);
    system.start(&t.build().unwrap()).unwrap();
    system.run_until_idle();
    for round in 0..3 {
        system.tell(&worker("/top/sup/w"), Cmd::Fail).unwrap();
        system.run_until_idle();
        let events = system.core().events();
        let escalated =
            events_of(&events, "/top/sup").iter().any(|k| matches!(k, EventKind::Escalated { .. }));
        assert_eq!(escalated, round == 2, "round {round}: the third restart within 5 s breaks intensity 2");
    }
    let events = system.core().events();
    assert_eq!(restarts_of(&events, "/top/sup"), 1, "/top restarted the escalating supervisor");
    assert_eq!(restarts_of(&events, "/top/sup/w"), 2);
    assert!(
        system.core().lookup(&ActorPath::parse("/top/sup/w").unwrap()).is_some(),
        "rebuilt with its parent"
    );
}

#[test]
fn restarts_spread_beyond_the_period_do_not_escalate() {
    let log = log();
    let mut t = Topology::builder();
    t.supervisor("/sup", SupervisorSpec::one_for_one().intensity(1, Duration::from_secs(5)));
    t.push("/sup/w", Worker::spec("w", &log));
    let mut system = DetSystem::with_seed(3);
    system.start(&t.build().unwrap()).unwrap();
    for _ in 0..4 {
        system.tell(&worker("/sup/w"), Cmd::Fail).unwrap();
        system.run_until_idle();
        system.run_for(Duration::from_secs(6));
    }
    let events = system.core().events();
    assert_eq!(restarts_of(&events, "/sup/w"), 4);
    assert!(!events_of(&events, "/sup").iter().any(|k| matches!(k, EventKind::Escalated { .. })));
}

#[test]
fn escalation_to_the_root_stops_the_system_with_the_reason() {
    let log = log();
    let mut config = SystemConfig::with_seed(9);
    config.root = SupervisorSpec::one_for_one().intensity(0, Duration::from_secs(1));
    let mut system = DetSystem::new(config);
    let mut t = Topology::builder();
    t.push("/w", Worker::spec("w", &log));
    system.start(&t.build().unwrap()).unwrap();
    system.run_until_idle();
    system.tell(&worker("/w"), Cmd::Fail).unwrap();
    system.run_until_idle();
    match system.core().exit_reason() {
        Some(ExitReason::Failed(why)) => assert!(why.contains("restart intensity exceeded"), "{why}"),
        other => panic!("expected an escalated failure, got {other:?}"),
    }
    assert_eq!(system.live_actors(), 0);
}

#[test]
fn supervision_behaves_the_same_under_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let log = log();
        let system = TokioSystem::start(SystemConfig::with_seed(1));
        let mut t = Topology::builder();
        t.supervisor("/sup", generous(SupervisorSpec::rest_for_one()));
        for name in ["a", "b", "c"] {
            t.push(&format!("/sup/{name}"), Worker::spec(name, &log));
        }
        system.run(&t.build().unwrap()).await.unwrap();
        let count_of = |path: &'static str| {
            let system = system.clone();
            async move { system.ask(&worker(path), Cmd::Get, Duration::from_secs(5)).await }
        };
        system.tell(&worker("/sup/a"), Cmd::Add(5)).ok();
        assert_eq!(count_of("/sup/c").await, Ok(0), "all started");
        system.tell(&worker("/sup/b"), Cmd::Panic).unwrap();
        // The restarted b answers once it is back.
        let mut answered = None;
        for _ in 0..100 {
            if let Ok(n) = count_of("/sup/c").await {
                if restarts_of(&system.core().events(), "/sup/c") == 1 {
                    answered = Some(n);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(answered, Some(0));
        assert_eq!(count_of("/sup/a").await, Ok(5));
        let events = system.core().events();
        assert_eq!(restarts_of(&events, "/sup/b"), 1);
        assert_eq!(restarts_of(&events, "/sup/a"), 0);
        assert_eq!(system.shutdown().await, ExitReason::Shutdown);
    });
}

/// Spawns workers on demand and reports its running children.
struct Spawner {
    log: Log,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum SpawnerMsg {
    Spawn(String, Restart),
    StopChild(String),
    Children(ReplyTo<Vec<String>>),
}

impl Actor for Spawner {
    type Msg = SpawnerMsg;
    fn handle(&mut self, msg: SpawnerMsg, ctx: &mut Ctx<'_, SpawnerMsg>) -> Result<(), ActorError> {
        match msg {
            SpawnerMsg::Spawn(name, restart) => {
                if let Err(e) = ctx.spawn_child(&name, Worker::spec(&name, &self.log).restart(restart)) {
                    self.log.lock().push(format!("refused: {e}"));
                }
            }
            SpawnerMsg::StopChild(name) => {
                let path = ctx.path().child(&name)?;
                ctx.stop_child(&path);
            }
            SpawnerMsg::Children(reply_to) => {
                let names = ctx.children().iter().map(|p| p.name().to_string()).collect();
                ctx.reply(&reply_to, names)?;
            }
        }
        Ok(())
    }
}

fn children_of(system: &mut DetSystem, spawner: &ActorRef<SpawnerMsg>) -> Vec<String> {
    let mut pending = system.ask(spawner, SpawnerMsg::Children, Duration::from_secs(1)).unwrap();
    system.run_until_idle();
    pending.try_take().unwrap().unwrap()
}

#[test]
fn dynamic_children_are_supervised_stopped_on_request_and_names_stay_unique() {
    let log = log();
    let mut system = DetSystem::with_seed(4);
    let l = log.clone();
    let spawner = system
        .spawn(
            "spawner",
            ActorSpec::new(move |_| Spawner { log: l.clone() })
                .supervise(generous(SupervisorSpec::one_for_one())),
        )
        .unwrap();
    for (name, restart) in [("p", Restart::Permanent), ("t", Restart::Temporary)] {
        system.tell(&spawner, SpawnerMsg::Spawn(name.into(), restart)).unwrap();
    }
    system.tell(&spawner, SpawnerMsg::Spawn("p".into(), Restart::Permanent)).unwrap();
    system.run_until_idle();
    assert!(
        log.lock().iter().any(|l| l == "refused: an actor already lives at /spawner/p"),
        "{:?}",
        log.lock()
    );
    assert_eq!(children_of(&mut system, &spawner), ["p", "t"]);

    system.tell(&worker("/spawner/p"), Cmd::Fail).unwrap();
    system.tell(&worker("/spawner/t"), Cmd::Fail).unwrap();
    system.run_until_idle();
    assert_eq!(
        children_of(&mut system, &spawner),
        ["p"],
        "the temporary child is gone, the permanent one restarted"
    );
    assert_eq!(restarts_of(&system.core().events(), "/spawner/p"), 1);

    system.tell(&spawner, SpawnerMsg::StopChild("p".into())).unwrap();
    system.run_until_idle();
    assert_eq!(children_of(&mut system, &spawner), Vec::<String>::new(), "stopped on request: not restarted");
    assert_eq!(restarts_of(&system.core().events(), "/spawner/p"), 1);
    // The name is free again.
    system.tell(&spawner, SpawnerMsg::Spawn("p".into(), Restart::Permanent)).unwrap();
    system.run_until_idle();
    assert_eq!(children_of(&mut system, &spawner), ["p"]);
}
