//! Three nodes in one process, over real mutual-TLS QUIC on loopback: subtrees placed by
//! attested tags; tells and asks through the same `ActorRef`s across nodes, in order, exactly
//! once even when the connection is cut mid-stream; remote asks time out; unknown paths are
//! dead letters; a message too long for a frame is refused at its sender; unattested tag claims are counted and ignored; malformed, oversized and
//! unknown-version frames close the offending connection while the node keeps serving; an
//! admin (the shell's connection) asks any node what it knows, and a node certificate cannot
//! pose as an admin.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aiot_cluster::admin::{AdminRequest, AdminResponse};
use aiot_cluster::config::Seed;
use aiot_cluster::control::ControlMsg;
use aiot_cluster::identity::{init_ca, issue, parse_tags, Subject, Validity};
use aiot_cluster::membership::{MembershipConfig, Status};
use aiot_cluster::node::{Node, NodeEvent, NodeSetup};
use aiot_cluster::transport::admin::AdminClient;
use aiot_cluster::transport::quic::{connect, open_control, open_lane, send_frame, write_frames, NodeTls};
use aiot_runtime::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    Push(u64),
    Len(ReplyTo<u64>),
}

/// Records every number it is sent, in arrival order.
struct Counter(Arc<Mutex<Vec<u64>>>);

impl Actor for Counter {
    type Msg = CounterMsg;
    fn handle(&mut self, msg: CounterMsg, ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Push(n) => self.0.lock().push(n),
            CounterMsg::Len(reply) => {
                let _ = ctx.reply(&reply, self.0.lock().len() as u64);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum SenderMsg {
    Burst(u64),
}

/// Sends numbered pushes to the counter, wherever it lives.
struct Sender {
    counter: ActorRef<CounterMsg>,
    next: u64,
}

impl Actor for Sender {
    type Msg = SenderMsg;
    fn handle(&mut self, msg: SenderMsg, ctx: &mut Ctx<'_, SenderMsg>) -> Result<(), ActorError> {
        let SenderMsg::Burst(n) = msg;
        for _ in 0..n {
            ctx.send(&self.counter, CounterMsg::Push(self.next))
                .map_err(|e| ActorError::new(e.to_string()))?;
            self.next += 1;
        }
        Ok(())
    }
}

/// Takes asks and never answers.
struct Silent;

impl Actor for Silent {
    type Msg = CounterMsg;
    fn handle(&mut self, _msg: CounterMsg, _ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        Ok(())
    }
}

fn topology(log: &Arc<Mutex<Vec<u64>>>) -> Topology {
    let mut t = Topology::builder();
    let log = log.clone();
    t.actor("/counter", move |_| Counter(log.clone())).requires("tier=inference");
    t.actor("/sender", |_| Sender { counter: ActorRef::parse("/counter").unwrap(), next: 0 })
        .requires("tier=platform")
        // Deep enough for the bursts (a send never blocks; the lane buffers what is in flight).
        .mailbox(16, Overflow::Backpressure);
    t.actor("/silent", |_| Silent).requires("tier=inference");
    t.actor("/needs-gpu", |_| Silent).requires("accel=gpu");
    t.build().unwrap()
}

fn pki(dir: &Path) {
    init_ca(dir, "plant").unwrap();
    for (name, tags) in
        [("a", "tier=platform"), ("b", "tier=inference"), ("c", "tier=things"), ("rogue", "tier=things")]
    {
        let subject = Subject::Node { name: name.into(), tags: parse_tags(tags).unwrap() };
        issue(dir, dir, &subject, Validity::from_now(30)).unwrap();
    }
    issue(dir, dir, &Subject::Admin { name: "ops".into() }, Validity::from_now(30)).unwrap();
}

fn tls(dir: &Path, name: &str) -> NodeTls {
    NodeTls::load(&dir.join("ca.pem"), &dir.join(format!("{name}.pem")), &dir.join(format!("{name}.key")))
        .unwrap()
}

fn start(
    dir: &Path,
    name: &str,
    seeds: Vec<Seed>,
    log: &Arc<Mutex<Vec<u64>>>,
    claimed: &str,
) -> (Node, Events) {
    let setup = NodeSetup {
        tls: tls(dir, name),
        listen: "127.0.0.1:0".parse().unwrap(),
        seeds,
        membership: MembershipConfig::default(),
        topology: topology(log),
        seed: 7,
        incarnation: 1,
        claimed_tags: parse_tags(claimed).unwrap(),
        prepare: None,
        clock: aiot_runtime::ClusterClock::default(),
        clock_read_at: None,
        checkpoint_disk: None,
    };
    let (node, events) = Node::start(setup).unwrap();
    (node, Events { rx: events, seen: Vec::new() })
}

struct Events {
    rx: UnboundedReceiver<NodeEvent>,
    seen: Vec<NodeEvent>,
}

impl Events {
    async fn until(&mut self, what: &str, found: impl Fn(&NodeEvent) -> bool) {
        let wait = async {
            loop {
                let event = self.rx.recv().await.expect("the node runs");
                let hit = found(&event);
                self.seen.push(event);
                if hit {
                    return;
                }
            }
        };
        if tokio::time::timeout(WAIT_MAX, wait).await.is_err() {
            panic!("no event {what} among {:?}", self.seen);
        }
    }

    fn drain(&mut self) -> &[NodeEvent] {
        while let Ok(event) = self.rx.try_recv() {
            self.seen.push(event);
        }
        &self.seen
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let wait = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT_MAX, wait).await.unwrap_or_else(|_| panic!("never: {what}"));
}

fn path(p: &str) -> ActorPath {
    ActorPath::parse(p).unwrap()
}

/// One frame with an arbitrary version and body, as the wire puts it.
fn raw_frame(version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = ((2 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_place_by_tags_and_carry_tells_and_asks_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let log = Arc::new(Mutex::new(Vec::new()));
    let (a, mut a_events) = start(dir.path(), "a", Vec::new(), &log, "tier=platform");
    let seeds = vec![Seed { name: "a".into(), addr: a.addr() }];
    let (b, mut b_events) = start(dir.path(), "b", seeds.clone(), &log, "tier=inference");
    // c claims the platform tier; its certificate says things.
    let (c, mut c_events) = start(dir.path(), "c", seeds, &log, "tier=platform");
    assert_eq!(c.stats().unattested_tags, 1);
    c_events
        .until("unattested tag", |e| matches!(e, NodeEvent::UnattestedTag { key, .. } if key == "tier"))
        .await;

    // Placement by attested tags, and every node's directory agrees.
    for node in [&a, &b, &c] {
        eventually("the directory is replicated", || {
            node.node_of(&path("/counter")).as_deref() == Some("b")
                && node.node_of(&path("/silent")).as_deref() == Some("b")
                && node.node_of(&path("/sender")).as_deref() == Some("a")
        })
        .await;
    }
    assert!(c.hosted().is_empty(), "c's claim of tier=platform counted for nothing");
    a_events
        .until("unplaced /needs-gpu", |e| matches!(e, NodeEvent::Unplaced(w) if w[0].contains("/needs-gpu")))
        .await;

    // Tells from a to b, with the connection cut in the middle of the stream.
    let sender = ActorRef::<SenderMsg>::parse("/sender").unwrap();
    a.system().tell(&sender, SenderMsg::Burst(20_000)).unwrap();
    eventually("some pushes arrived", || !log.lock().is_empty()).await;
    assert!(a.disconnect("b"));
    a.system().tell(&sender, SenderMsg::Burst(20_000)).unwrap();
    eventually("every push arrived", || log.lock().len() >= 40_000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = log.lock().clone();
    let expected: Vec<u64> = (0..40_000).collect();
    assert!(got == expected, "pushes lost, duplicated or reordered: {} received", got.len());

    // An ask from outside any actor on c, to the counter on b, through the same kind of ref.
    let counter = ActorRef::<CounterMsg>::parse("/counter").unwrap();
    assert_eq!(c.system().ask(&counter, CounterMsg::Len, Duration::from_secs(5)).await, Ok(40_000));
    // A remote ask that gets no answer times out.
    let silent = ActorRef::<CounterMsg>::parse("/silent").unwrap();
    let timeout = c.system().ask::<_, u64>(&silent, CounterMsg::Len, Duration::from_millis(300)).await;
    assert_eq!(timeout, Err(AskError::Timeout));
    // A path no node hosts is a dead letter.
    let before = c.system().core().dead_letters();
    let nowhere = ActorRef::<CounterMsg>::parse("/nowhere").unwrap();
    assert!(matches!(c.system().tell(&nowhere, CounterMsg::Push(1)), Err(SendError::NoActor(_))));
    assert_eq!(c.system().core().dead_letters(), before + 1);
    // A message longer than a frame between nodes may be is refused at the sender, saying so,
    // rather than lost on its way.
    let big = ActorRef::<Vec<u8>>::parse("/counter").unwrap();
    match c.system().tell(&big, vec![7u8; 2 << 20]) {
        Err(SendError::TooLarge { len, max, .. }) => assert!(len > 2 << 20 && max < 1 << 20, "{len} {max}"),
        other => panic!("a 2 MiB message between nodes: {other:?}"),
    }
    // The bytes for a path are decoded as that path's type: a wrong type is counted, not handled.
    let stats = b.stats();
    assert_eq!((stats.decode_errors, stats.frames_refused), (0, 0));
    assert!(stats.remote_received >= 40_000);
    assert!(!b_events.drain().iter().any(|e| matches!(e, NodeEvent::ConnectionClosed { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_the_offending_connection_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let log = Arc::new(Mutex::new(Vec::new()));
    let (a, _a_events) = start(dir.path(), "a", Vec::new(), &log, "");
    let seeds = vec![Seed { name: "a".into(), addr: a.addr() }];
    let (b, mut b_events) = start(dir.path(), "b", seeds.clone(), &log, "");
    let (c, _c_events) = start(dir.path(), "c", seeds, &log, "");
    eventually("the counter is placed", || c.node_of(&path("/counter")).as_deref() == Some("b")).await;

    let rogue_tls = tls(dir.path(), "rogue");
    let endpoint = rogue_tls.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let garbage = raw_frame(aiot_cluster::wire::WIRE_VERSION, &[0xff; 16]);
    let oversized = (64u32 << 20).to_be_bytes().to_vec();
    let old_version = raw_frame(99, &[0]);
    for (n, (on_lane, bytes, reason)) in [
        (false, garbage, "malformed frame"),
        (false, oversized, "exceeds the maximum"),
        (true, old_version, "wire version 99"),
    ]
    .into_iter()
    .enumerate()
    {
        let peer = connect(&endpoint, &rogue_tls, b.addr(), "b").await.unwrap();
        let (mut control, _) = open_control(&peer).await.unwrap();
        if on_lane {
            // A well-formed control frame first (as a node's would be), then the bad lane.
            let hello = ControlMsg::Hosting {
                incarnation: 0,
                roots: Vec::new(),
                moving: Vec::new(),
                cordoned: false,
            };
            send_frame(&mut control, &hello).await.unwrap();
            let mut lane = open_lane(&peer.connection).await.unwrap();
            write_frames(&mut lane, &bytes).await.unwrap();
        } else {
            write_frames(&mut control, &bytes).await.unwrap();
        }
        b_events
            .until(reason, |e| matches!(e, NodeEvent::ConnectionClosed { peer, why } if peer == "rogue" && why.contains(reason)))
            .await;
        let closed = tokio::time::timeout(WAIT_MAX, peer.connection.closed()).await.unwrap();
        assert!(closed.to_string().contains(reason), "the rogue is told why: {closed}");
        assert_eq!(b.stats().frames_refused, n as u64 + 1);
    }
    // b still serves the others.
    let counter = ActorRef::<CounterMsg>::parse("/counter").unwrap();
    assert_eq!(c.system().ask(&counter, CounterMsg::Len, Duration::from_secs(5)).await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_asks_any_node_for_members_placement_actors_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let log = Arc::new(Mutex::new(Vec::new()));
    let (a, _a_events) = start(dir.path(), "a", Vec::new(), &log, "tier=platform");
    let seeds = vec![Seed { name: "a".into(), addr: a.addr() }];
    let (b, mut b_events) = start(dir.path(), "b", seeds, &log, "tier=inference");
    for node in [&a, &b] {
        eventually("placed", || {
            node.node_of(&path("/counter")).as_deref() == Some("b")
                && node.node_of(&path("/sender")).as_deref() == Some("a")
        })
        .await;
    }
    a.system().tell(&ActorRef::<SenderMsg>::parse("/sender").unwrap(), SenderMsg::Burst(500)).unwrap();
    eventually("pushes arrived", || log.lock().len() == 500).await;

    let file = |f: &str| dir.path().join(f);
    let admin = AdminClient::load(&file("ca.pem"), &file("ops.pem"), &file("ops.key")).unwrap();
    let to_b = admin.connect(b.addr()).await.unwrap();
    assert_eq!(to_b.node, "b", "the node's name comes from its certificate");
    b_events.until("the admin is announced", |e| matches!(e, NodeEvent::Admin(n) if n == "ops")).await;

    let AdminResponse::Nodes(nodes) = to_b.ask(&AdminRequest::Nodes).await.unwrap() else { panic!("nodes") };
    let names: Vec<(&str, Status, bool)> =
        nodes.iter().map(|n| (n.name.as_str(), n.status, n.answering)).collect();
    assert_eq!(names, [("a", Status::Up, false), ("b", Status::Up, true)]);
    assert_eq!(nodes[0].addr, a.addr().to_string());
    assert_eq!(nodes[0].tags.get("tier").map(String::as_str), Some("platform"));
    assert_eq!(nodes[1].hosts, ["/counter", "/silent"]);

    let AdminResponse::Placement(subtrees) = to_b.ask(&AdminRequest::Placement).await.unwrap() else {
        panic!("placement")
    };
    let gpu = subtrees.iter().find(|s| s.root == "/needs-gpu").unwrap();
    assert_eq!((gpu.node.as_deref(), gpu.fits.len()), (None, 0));
    assert_eq!(gpu.requires, ["/needs-gpu: accel=gpu"]);
    let counter = subtrees.iter().find(|s| s.root == "/counter").unwrap();
    assert_eq!((counter.node.as_deref(), counter.fits.as_slice()), (Some("b"), &["b".to_string()][..]));

    let AdminResponse::Actors(actors) =
        to_b.ask(&AdminRequest::Actors { prefix: "/c".into() }).await.unwrap()
    else {
        panic!("actors")
    };
    assert_eq!(actors.len(), 1, "only the paths under the prefix: {actors:?}");
    assert_eq!((actors[0].path.as_str(), actors[0].node.as_str(), actors[0].handled), ("/counter", "b", 500));

    let AdminResponse::Stats(stats) = to_b.ask(&AdminRequest::Stats).await.unwrap() else { panic!("stats") };
    assert_eq!((stats.node.as_str(), stats.lease, stats.admin_connections), ("b", true, 1));
    assert!(stats.remote.remote_received >= 500, "{stats:?}");
    to_b.close();

    // The same counters in the Prometheus text format.
    let metrics = b.metrics_text();
    for line in [
        "# TYPE aiot_messages_handled_total counter",
        "aiot_messages_handled_total{node=\"b\",actor=\"/counter\"} 500",
        "aiot_lease_held{node=\"b\"} 1",
        "aiot_members{node=\"b\",status=\"up\"} 2",
        "aiot_admin_connections_total{node=\"b\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in\n{metrics}");
    }
    let received = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aiot_remote_bytes_received_total{node=\"b\"} "))
        .map(|v| v.parse::<u64>().unwrap());
    assert!(received.is_some_and(|bytes| bytes >= 500), "{metrics}");

    // A node's certificate is refused as an admin's, on both ends.
    let refused = AdminClient::load(&file("ca.pem"), &file("c.pem"), &file("c.key")).err().unwrap();
    assert!(refused.to_string().contains("where an admin certificate is required"), "{refused}");
    let posing = AdminClient::load_unchecked(&file("ca.pem"), &file("c.pem"), &file("c.key")).unwrap();
    let refused = posing.connect(b.addr()).await.err().expect("refused by the node").to_string();
    assert!(
        refused.contains("c presented a node certificate where an admin certificate is required"),
        "{refused}"
    );
    // Counted once the node's side of the handshake is done (it may end after the client's).
    let refused_role = || b.tls().stats.refused_role.load(std::sync::atomic::Ordering::Relaxed);
    eventually("the node counts the refused role", || refused_role() >= 1).await;
    assert_eq!(refused_role(), 1);
}

#[derive(Debug, Serialize, Deserialize)]
enum LedgerMsg {
    Add(u64),
    Seen(ReplyTo<Vec<u64>>),
}

/// Records every number it is sent, in arrival order; the record is its state, and moves.
#[derive(Default)]
struct Ledger {
    seen: Vec<u64>,
}

impl Actor for Ledger {
    type Msg = LedgerMsg;
    fn handle(&mut self, msg: LedgerMsg, ctx: &mut Ctx<'_, LedgerMsg>) -> Result<(), ActorError> {
        match msg {
            LedgerMsg::Add(n) => self.seen.push(n),
            LedgerMsg::Seen(reply) => {
                let _ = ctx.reply(&reply, self.seen.clone());
            }
        }
        Ok(())
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(aiot_runtime::message::encode(&self.seen))
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.seen = aiot_runtime::message::decode(snapshot).map_err(ActorError::new)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum FeederMsg {
    Tick,
    Stop(ReplyTo<u64>),
}

/// Sends the ledger and its copy (the ledger's child) numbered additions, 20 every
/// millisecond, until stopped.
struct Feeder {
    ledger: ActorRef<LedgerMsg>,
    copy: ActorRef<LedgerMsg>,
    next: u64,
    timer: Option<aiot_runtime::TimerId>,
}

impl Actor for Feeder {
    type Msg = FeederMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, FeederMsg>) -> Result<(), ActorError> {
        self.timer = Some(ctx.schedule_every(Duration::from_millis(1), FeederMsg::Tick));
        Ok(())
    }
    fn handle(&mut self, msg: FeederMsg, ctx: &mut Ctx<'_, FeederMsg>) -> Result<(), ActorError> {
        match msg {
            FeederMsg::Tick if self.timer.is_some() => {
                for _ in 0..20 {
                    // Before the ledger is placed, a send is a dead letter: count only what went.
                    if ctx.send(&self.ledger, LedgerMsg::Add(self.next)).is_err() {
                        break;
                    }
                    let copied = ctx.send(&self.copy, LedgerMsg::Add(self.next));
                    copied.map_err(|e| ActorError::new(e.to_string()))?;
                    self.next += 1;
                }
            }
            FeederMsg::Tick => {}
            FeederMsg::Stop(reply) => {
                if let Some(timer) = self.timer.take() {
                    ctx.cancel_timer(timer);
                }
                let _ = ctx.reply(&reply, self.next);
            }
        }
        Ok(())
    }
}

fn moving_topology() -> Topology {
    let mut t = Topology::builder();
    t.actor("/ledger", |_| Ledger::default()).requires("tier=inference | tier=things");
    t.actor("/ledger/copy", |_| Ledger::default());
    let (ledger, copy) = (ActorRef::parse("/ledger").unwrap(), ActorRef::parse("/ledger/copy").unwrap());
    t.actor("/feeder", move |_| Feeder { ledger: ledger.clone(), copy: copy.clone(), next: 0, timer: None })
        .requires("tier=platform");
    t.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_actor_moves_between_nodes_under_load_without_losing_or_repeating_a_message() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let start = |name: &str, seeds: Vec<Seed>| {
        let setup = NodeSetup {
            tls: tls(dir.path(), name),
            listen: "127.0.0.1:0".parse().unwrap(),
            seeds,
            membership: MembershipConfig::default(),
            topology: moving_topology(),
            seed: 7,
            incarnation: 1,
            claimed_tags: Default::default(),
            prepare: None,
            clock: aiot_runtime::ClusterClock::default(),
            clock_read_at: None,
            checkpoint_disk: None,
        };
        let (node, rx) = Node::start(setup).unwrap();
        (node, Events { rx, seen: Vec::new() })
    };
    let (a, _a_events) = start("a", Vec::new());
    let seeds = vec![Seed { name: "a".into(), addr: a.addr() }];
    let (b, mut b_events) = start("b", seeds.clone());
    let (c, mut c_events) = start("c", seeds);
    let nodes = [&a, &b, &c];
    let ledger = path("/ledger");
    for node in nodes {
        eventually("placed", || node.node_of(&ledger).is_some() && node.node_of(&path("/feeder")).is_some())
            .await;
    }
    let from = a.node_of(&ledger).unwrap();
    let from = from.as_str();
    let (to, to_node) = if from == "b" { ("c", &c) } else { ("b", &b) };
    let from_node = if from == "b" { &b } else { &c };
    // Let the stream flow, then move the ledger while it does.
    eventually("the stream flows", || {
        from_node.system().core().metrics().iter().any(|(p, m)| *p == ledger && m.handled > 2000)
    })
    .await;

    // Sends before the ledger was placed everywhere were dead letters; none may be from here on.
    let dead_before: Vec<u64> = nodes.iter().map(|n| n.system().core().dead_letters()).collect();
    let file = |f: &str| dir.path().join(f);
    let admin = AdminClient::load(&file("ca.pem"), &file("ops.pem"), &file("ops.key")).unwrap();
    let at_a = admin.connect(a.addr()).await.unwrap();
    let refused = at_a.ask(&AdminRequest::Move { root: "/ledger".into(), to: to.into() }).await.unwrap();
    assert!(
        matches!(&refused, AdminResponse::Refused(why) if why.contains("does not run on a")),
        "{refused:?}"
    );
    let at_source = admin.connect(from_node.addr()).await.unwrap();
    let refused =
        at_source.ask(&AdminRequest::Move { root: "/ledger".into(), to: "a".into() }).await.unwrap();
    assert!(
        matches!(&refused, AdminResponse::Refused(why) if why.contains("a cannot host /ledger: /ledger requires")),
        "a target lacking a required tag is refused: {refused:?}"
    );
    let moved = at_source.ask(&AdminRequest::Move { root: "/ledger".into(), to: to.into() }).await.unwrap();
    let AdminResponse::Moved(report) = moved else { panic!("{moved:?}") };
    assert_eq!((report.root.as_str(), report.from.as_str(), report.to.as_str()), ("/ledger", from, to));
    assert_eq!(report.actors, 2, "the ledger and its child");
    assert!(report.bytes > 0, "the state moved: {report:?}");
    println!("moved /ledger {from} -> {to}: {report:?}");
    for node in nodes {
        eventually("every directory has the new place", || node.node_of(&ledger).as_deref() == Some(to))
            .await;
    }
    assert!(from_node.hosted().is_empty() && to_node.hosted() == [ledger.clone()]);
    // The stream goes on at its new place; then it stops, and every number arrived once.
    let handled_there =
        || to_node.system().core().metrics().iter().any(|(p, m)| *p == ledger && m.handled > 2000);
    eventually("the stream flows at the new place", handled_there).await;
    // And straight back, while the first move is still fresh in every directory.
    let at_target = admin.connect(to_node.addr()).await.unwrap();
    let back = at_target.ask(&AdminRequest::Move { root: "/ledger".into(), to: from.into() }).await.unwrap();
    assert!(matches!(&back, AdminResponse::Moved(r) if r.to == from), "{back:?}");
    let handled_back =
        || from_node.system().core().metrics().iter().any(|(p, m)| *p == ledger && m.handled > 2000);
    eventually("the stream flows at its first place again", handled_back).await;
    let feeder = ActorRef::<FeederMsg>::parse("/feeder").unwrap();
    let sent: u64 = a.system().ask(&feeder, FeederMsg::Stop, Duration::from_secs(5)).await.unwrap();
    let system = a.system();
    let ask_seen = |path: &'static str| async move {
        let ledger = ActorRef::<LedgerMsg>::parse(path).unwrap();
        let seen: Vec<u64> = system.ask(&ledger, LedgerMsg::Seen, Duration::from_secs(5)).await.unwrap();
        seen
    };
    // The ledger and its child moved together; each got every number once.
    for path in ["/ledger", "/ledger/copy"] {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        let mut seen = ask_seen(path).await;
        while (seen.len() as u64) < sent && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen = ask_seen(path).await;
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{path}: a number was handled twice");
        let missing: Vec<u64> = (0..sent).filter(|n| sorted.binary_search(n).is_err()).collect();
        assert!(missing.is_empty(), "{path}: lost {missing:?} ({} of {sent} arrived)", seen.len());
        assert_eq!(sorted.last(), Some(&(sent - 1)), "{path}: numbers never sent arrived");
        let out_of_order = seen.windows(2).filter(|w| w[0] > w[1]).count();
        assert_eq!(out_of_order, 0, "{path}: per-sender order broken across the moves");
        println!("{path}: {sent} numbers, each handled once, in the order sent");
    }
    for (node, before) in nodes.iter().zip(dead_before) {
        let core = node.system().core();
        let during = core.dead_letters() - before;
        assert_eq!(during, 0, "{}: dead letters to {:?}", node.name(), core.recent_dead_letters());
    }
    // The source says so, and its metrics count it.
    let source_events = if from == "b" { &mut b_events } else { &mut c_events };
    source_events
        .until(
            "the move is announced",
            |e| matches!(e, NodeEvent::Moved { root, .. } if root.as_str() == "/ledger"),
        )
        .await;
    assert_eq!((from_node.stats().migrations, to_node.stats().migrations), (1, 1), "there and back");
}
