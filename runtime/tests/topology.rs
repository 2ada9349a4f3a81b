//! Topology validation: every problem is reported, each naming what is wrong.

mod common;

use aiot_runtime::prelude::*;
use aiot_runtime::{TopologyError, TopologyErrors};
use common::*;

fn errors(t: aiot_runtime::TopologyBuilder) -> Vec<TopologyError> {
    match t.build() {
        Ok(_) => panic!("expected the topology to be refused"),
        Err(TopologyErrors(errors)) => errors,
    }
}

#[test]
fn a_valid_tree_builds_with_children_in_declaration_order() {
    let log = log();
    let mut t = Topology::builder();
    t.supervisor("/plant", SupervisorSpec::one_for_all());
    t.push("/plant/b", Worker::spec("b", &log)).requires("tier=inference").prefers("mem=4g");
    t.push("/plant/a", Worker::spec("a", &log)).link::<Cmd>("peer", "/plant/b");
    t.push("/solo", Worker::spec("solo", &log)).requires("accel=* | tier=platform");
    let topology = t.build().unwrap();
    assert_eq!(topology.len(), 4);
    let roots: Vec<&str> = topology.roots().iter().map(|s| s.path().as_str()).collect();
    assert_eq!(roots, ["/plant", "/solo"]);
    let plant = &topology.roots()[0];
    let children: Vec<&str> = plant.children().iter().map(|s| s.path().as_str()).collect();
    assert_eq!(children, ["/plant/b", "/plant/a"]);
    let solo = topology.get(&ActorPath::parse("/solo").unwrap()).unwrap();
    assert_eq!(solo.placement().requires.to_string(), "accel=* | tier=platform");
}

#[test]
fn reports_unknown_names_duplicates_and_impossible_trees_all_at_once() {
    let log = log();
    let mut t = Topology::builder();
    t.push("/a", Worker::spec("a", &log)).link::<Cmd>("peer", "/ghost");
    t.push("/a", Worker::spec("a2", &log));
    t.push("/missing/child", Worker::spec("c", &log));
    t.push("no-slash", Worker::spec("x", &log));
    t.push("/", Worker::spec("root", &log));
    let found = errors(t);
    assert_eq!(
        found,
        vec![
            TopologyError::DuplicatePath("/a".into()),
            TopologyError::InvalidPath { path: "no-slash".into(), reason: "must start with '/'" },
            TopologyError::RootDeclared,
            TopologyError::UnknownLink { from: "/a".into(), name: "peer".into(), to: "/ghost".into() },
            TopologyError::MissingParent { path: "/missing/child".into(), parent: "/missing".into() },
        ]
    );
}

#[test]
fn reports_link_type_mismatch_bad_tags_empty_mailbox_and_zero_period() {
    let log = log();
    let mut t = Topology::builder();
    t.push("/a", Worker::spec("a", &log)).link::<u64>("peer", "/b").requires("tier");
    t.push("/b", Worker::spec("b", &log)).mailbox(0, Overflow::Reject);
    t.supervisor("/s", SupervisorSpec::one_for_one().intensity(3, std::time::Duration::ZERO));
    let found = errors(t);
    let text: Vec<String> = found.iter().map(|e| e.to_string()).collect();
    assert_eq!(found.len(), 4, "{text:#?}");
    assert!(text[0].contains("/a: link \"peer\" expects /b to take u64"), "{}", text[0]);
    assert!(text[1].contains("/a: bad tag expression \"tier\""), "{}", text[1]);
    assert!(text[2].contains("/b: mailbox capacity must be at least 1"), "{}", text[2]);
    assert!(text[3].contains("/s: restart intensity period must be positive"), "{}", text[3]);
}

#[test]
fn links_resolve_in_factories_and_a_missing_link_is_a_start_failure_with_its_name() {
    use aiot_runtime::EventKind;
    let mut t = Topology::builder();
    t.actor("/needs", |init| {
        let _peer: ActorRef<Cmd> = init.link("peer");
        aiot_runtime::Supervisor
    })
    .restart(Restart::Temporary);
    let mut system = DetSystem::with_seed(1);
    system.start(&t.build().unwrap()).unwrap();
    system.run_until_idle();
    let failed = events_of(&system.core().events(), "/needs");
    assert!(
        failed
            .iter()
            .any(|k| matches!(k, EventKind::Failed { reason } if reason.contains("no link named \"peer\""))),
        "{failed:?}"
    );
}
