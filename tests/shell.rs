//! `aiot shell` against a three-node cluster of `aiot node` processes running the `ping`
//! topology: the scripted mode's JSON answers (members, actors asked of every node, placement,
//! counters) agree with where the nodes say they host what; a bad command fails the script
//! with its reason; a node's Prometheus endpoint agrees with the shell; and the REPL, driven
//! through a pseudo-terminal, completes a command, answers it, and keeps its history.
//! Against the `counter` topology: the shell moves a stateful counter under load, drains and
//! uncordons its node, and traces it; and a counter whose node is killed starts on the other
//! node from the last checkpoint its platform node kept.

mod common;

use common::{aiot, http_get, run_ok, write_config_with, Node};
use serde_json::Value;

struct Cluster {
    dir: tempfile::TempDir,
    addr: String,
    /// inference-1's metrics endpoint.
    metrics: String,
    _nodes: Vec<Node>,
}

/// A CA in `dir/ca` with a certificate for each (node, tier) and for the admin `ops`.
fn certificates(dir: &std::path::Path, nodes: [(&str, &str); 3]) {
    let ca = dir.join("ca");
    let ca = ca.to_str().unwrap();
    run_ok(&["ca", "init", "--dir", ca]);
    for (name, tier) in nodes {
        run_ok(&["ca", "issue", "--dir", ca, "--node", name, "--tags", &format!("tier={tier}")]);
    }
    run_ok(&["ca", "issue", "--dir", ca, "--admin", "ops"]);
}

/// platform-1 (the seed), things-1 and inference-1 running `ping`, each hosting its subtree.
fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    certificates(
        dir.path(),
        [("platform-1", "platform"), ("things-1", "things"), ("inference-1", "inference")],
    );
    let config = |name: &str, seeds: &str, tier: &str| {
        let extra = "topology = \"ping\"\nmetrics = \"127.0.0.1:0\"";
        write_config_with(dir.path(), name, seeds, &format!("tier = \"{tier}\""), extra)
    };
    let platform = Node::start(&config("platform-1", "", "platform"));
    let addr = platform.wait_for("listening on ").trim_start_matches("listening on ").to_string();
    let seeds = format!("\"platform-1@{addr}\"");
    let things = Node::start(&config("things-1", &seeds, "things"));
    let inference = Node::start(&config("inference-1", &seeds, "inference"));
    let line = inference.wait_for("metrics on http://");
    let metrics = line.trim_start_matches("metrics on http://").trim_end_matches("/metrics").to_string();
    platform.wait_for("hosting /tally");
    things.wait_for("hosting /probe");
    inference.wait_for("hosting /echo");
    // The probe asks the echo once a second: wait until it has been answered.
    things.wait_for("probe: answers from inference-1");
    Cluster { dir, addr, metrics, _nodes: vec![platform, things, inference] }
}

fn shell_args(cluster: &Cluster) -> Vec<String> {
    let ca = cluster.dir.path().join("ca");
    ["shell", "--connect", &cluster.addr, "--ca-dir", ca.to_str().unwrap(), "--admin", "ops"]
        .map(String::from)
        .to_vec()
}

fn field<'a>(rows: &'a Value, key: &str, value: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {rows}"))
}

#[test]
fn the_shell_asks_every_node_in_a_script_and_answers_in_its_repl() {
    let cluster = cluster();

    // The scripted mode: one JSON line per command.
    let mut args = shell_args(&cluster);
    args.extend(["--json", "-c", "nodes; actors; place; stats; tags"].map(String::from));
    let out = aiot().args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let [nodes, actors, place, stats, tags] = answers.as_slice() else { panic!("five answers: {answers:?}") };

    let names: Vec<&str> = nodes.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["inference-1", "platform-1", "things-1"]);
    assert!(nodes.as_array().unwrap().iter().all(|n| n["status"] == "Up"), "{nodes}");
    assert_eq!(field(nodes, "name", "platform-1")["answering"], true);
    assert_eq!(field(nodes, "name", "inference-1")["hosts"], serde_json::json!(["/echo"]));

    // Actors come from each node that hosts them, with their live counters.
    for (path, node) in [("/tally", "platform-1"), ("/probe", "things-1"), ("/echo", "inference-1")] {
        let row = field(actors, "path", path);
        assert_eq!(row["node"], node, "{row}");
        // The echo answered the probe (awaited above), whose timer ticks it.
        if path != "/tally" {
            assert!(row["handled"].as_u64().unwrap() >= 1, "{path} handled nothing: {row}");
        }
        // Placement, as the entry node's directory has it, agrees with the node that answered.
        assert_eq!(field(place, "root", path)["node"], node);
    }
    assert_eq!(field(place, "root", "/echo")["fits"], serde_json::json!(["inference-1"]));
    assert_eq!(field(place, "root", "/echo")["requires"], serde_json::json!(["/echo: tier=inference"]));

    let reports = stats.as_array().unwrap();
    assert_eq!(reports.len(), 3, "{stats}");
    for report in reports {
        assert_eq!(report["lease"], true, "{report}");
        // A node's actor count is the rows it answered `actors` with.
        let listed = actors.as_array().unwrap().iter().filter(|a| a["node"] == report["node"]).count();
        assert_eq!(report["actors"], listed, "{report} against {actors}");
    }
    assert!(field(stats, "node", "inference-1")["remote"]["remote_received"].as_u64().unwrap() >= 1);
    assert_eq!(field(tags, "node", "things-1")["tags"]["tier"], "things");

    // inference-1's metrics endpoint, scraped after the shell's answer, counts at least what
    // the shell saw the echo handle (a counter only grows), and its actors are the shell's.
    let metrics = http_get(&cluster.metrics, "/metrics");
    let handled_by_shell = field(actors, "path", "/echo")["handled"].as_u64().unwrap();
    let scraped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aiot_messages_handled_total{node=\"inference-1\",actor=\"/echo\"} "))
        .unwrap_or_else(|| panic!("no /echo counter in\n{metrics}"));
    assert!(scraped.parse::<u64>().unwrap() >= handled_by_shell, "{scraped} < {handled_by_shell}");
    for row in actors.as_array().unwrap().iter().filter(|a| a["node"] == "inference-1") {
        let depth = format!(
            "aiot_mailbox_depth{{node=\"inference-1\",actor=\"{}\"}} ",
            row["path"].as_str().unwrap()
        );
        assert!(metrics.lines().any(|l| l.starts_with(&depth)), "no {depth:?} in\n{metrics}");
    }
    assert!(metrics.contains("aiot_lease_held{node=\"inference-1\"} 1"), "{metrics}");

    // A command the shell does not know fails the script, saying why.
    let mut args = shell_args(&cluster);
    args.extend(["-c", "nodes; frobnicate"].map(String::from));
    let out = aiot().args(&args).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown command \"frobnicate\""), "{stderr}");
    // A node named in a filter that does not exist is refused by name.
    let mut args = shell_args(&cluster);
    args.extend(["-c", "actors --node nowhere"].map(String::from));
    let out = aiot().args(&args).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node nowhere"), "{out:?}");
    // The ping topology answers no application questions: `models` says so; `loop` has nothing
    // to show from any node.
    let mut args = shell_args(&cluster);
    args.extend(["--json", "-c", "loop; models"].map(String::from));
    let out = aiot().args(&args).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("models: this node's topology answers no questions"), "{stderr}");

    // The REPL through a pseudo-terminal: tab completes "sta" to "stats", which answers.
    let home = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aiot"));
    command.args(shell_args(&cluster)).env("HOME", home.path()).env("TERM", "xterm");
    let mut repl = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    repl.exp_string("connected to platform-1").unwrap();
    repl.send("sta\t").unwrap();
    repl.send_line("").unwrap();
    repl.exp_string("REFUSED CONNECTIONS").unwrap();
    repl.exp_string("inference-1").unwrap();
    repl.send_line("help actors").unwrap();
    repl.exp_string("actors [--node NODE] [--tier TIER] [PATH-PREFIX]").unwrap();
    repl.send_line("quit").unwrap();
    repl.exp_eof().unwrap();
    let history = std::fs::read_to_string(home.path().join(".aiot_shell_history")).unwrap();
    assert!(history.contains("stats") && history.contains("help actors"), "{history}");
}

/// The numbers in a counter line: "counter: [restored] on NODE: K received, every number below
/// M, D duplicates".
fn counter_line(line: &str) -> (u64, u64, u64) {
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| w.parse().ok())
        .collect();
    // The node's name ends in a digit too ("inference-2"): take the last three numbers.
    let [.., received, below, duplicates] = numbers[..] else { panic!("{line}") };
    (received, below, duplicates)
}

/// platform-1 (the seed, running the load) and two inference nodes (one runs the counter)
/// running the `counter` topology.
struct CounterCluster {
    dir: tempfile::TempDir,
    addr: String,
    platform: Node,
    inference: [Node; 2],
    /// Where the inference nodes listen.
    inference_addrs: [String; 2],
}

impl CounterCluster {
    fn start() -> CounterCluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes = [("platform-1", "platform"), ("inference-1", "inference"), ("inference-2", "inference")];
        certificates(dir.path(), nodes);
        let config = |name: &str, seeds: &str, tier: &str| {
            write_config_with(
                dir.path(),
                name,
                seeds,
                &format!("tier = \"{tier}\""),
                "topology = \"counter\"",
            )
        };
        let platform = Node::start(&config("platform-1", "", "platform"));
        let addr = platform.wait_for("listening on ").trim_start_matches("listening on ").to_string();
        let seeds = format!("\"platform-1@{addr}\"");
        let inference = [
            Node::start(&config("inference-1", &seeds, "inference")),
            Node::start(&config("inference-2", &seeds, "inference")),
        ];
        platform.wait_for("hosting /load");
        let inference_addrs = inference
            .each_ref()
            .map(|node| node.wait_for("listening on ").trim_start_matches("listening on ").to_string());
        CounterCluster { dir, addr, platform, inference, inference_addrs }
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca").to_str().unwrap().to_string()
    }

    /// The shell's `--json` answer to `script`, which must succeed.
    fn shell(&self, script: &str) -> Value {
        let ca = self.ca();
        let mut args = ["shell", "--connect", &self.addr, "--ca-dir", &ca, "--admin", "ops", "--json", "-c"]
            .map(String::from)
            .to_vec();
        args.push(script.to_string());
        let out = aiot().args(&args).output().unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    }

    /// Started, with the counter counting (4000 numbers) and `kept` of its checkpoints kept by
    /// platform-1; the index (in `inference`) and name of the node it runs on.
    fn counting(kept: u64) -> (CounterCluster, usize, String) {
        let cluster = CounterCluster::start();
        let (from, host) = cluster.counter_host();
        cluster.inference[from].wait_for(&format!("counter: on {host}: 4000 received"));
        cluster.wait_for_checkpoints_kept(kept);
        (cluster, from, host)
    }

    /// The index (in `inference`) and name of the node the counter runs on, once placed.
    fn counter_host(&self) -> (usize, String) {
        let mut name = String::new();
        common::wait_until("the counter placed", || {
            let nodes = self.shell("nodes");
            let host =
                nodes.as_array().unwrap().iter().find(|n| n["hosts"] == serde_json::json!(["/counter"]));
            if let Some(host) = host {
                name = host["name"].as_str().unwrap().to_string();
            }
            !name.is_empty()
        });
        (if name == "inference-1" { 0 } else { 1 }, name)
    }

    /// How many checkpoints (of the counter) platform-1 kept, and refused as stale, from the
    /// shell's `stats`.
    fn checkpoints_kept(&self) -> (u64, u64) {
        let stats = self.shell("stats");
        let keeper = &field(&stats, "node", "platform-1")["remote"];
        (keeper["checkpoints_kept"].as_u64().unwrap(), keeper["checkpoints_stale"].as_u64().unwrap())
    }

    /// Waits until platform-1 has kept `count` checkpoints.
    fn wait_for_checkpoints_kept(&self, count: u64) {
        common::wait_until("platform-1 keeping a newer checkpoint of the counter", || {
            self.checkpoints_kept().0 >= count
        });
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // test harness code: a wall-clock deadline, a sleep
fn the_shell_moves_a_stateful_counter_under_load_and_nothing_is_lost_or_repeated() {
    // Its checkpoints reach a generation its next node has to go above (see below).
    let (cluster, from, host) = CounterCluster::counting(4);
    let (addr, ca, inference) = (&cluster.addr, &cluster.ca(), &cluster.inference);
    let shell = |script: &str| cluster.shell(script);
    let to = 1 - from;
    let to_name = format!("inference-{}", to + 1);

    // Under load, the counter moves with what it received.
    let moved = shell(&format!("move /counter {to_name}"));
    let report = &moved.as_array().unwrap()[0];
    assert_eq!(
        (report["from"].as_str(), report["to"].as_str()),
        (Some(host.as_str()), Some(to_name.as_str()))
    );
    assert!(report["bytes"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(inference[from].wait_for("moved /counter"), format!("moved /counter to {to_name}"));
    let (kept_at_move, stale_at_move) = cluster.checkpoints_kept();
    let restored = inference[to].wait_for("counter: restored on ");
    let (received_before, below_before, duplicates) = counter_line(&restored);
    assert!(received_before >= 4000, "the state moved: {restored}");
    assert_eq!(duplicates, 0, "{restored}");
    // It goes on counting at its new place: every number arrives, none twice.
    let later = loop {
        let line = inference[to].wait_for("counter: ");
        let (received, ..) = counter_line(&line);
        if received >= received_before + 6000 {
            break line;
        }
    };
    let (received, below, duplicates) = counter_line(&later);
    assert_eq!(duplicates, 0, "a number arrived twice: {later}");
    assert!(below > below_before + 4000, "a number is missing since the move: {restored} / {later}");
    assert!(received - below < 1000, "numbers arrive, but some never did: {later}");
    println!("moved {report}; then {later}");
    // Its new node's checkpoints are kept: the keeper told it its first one was older than
    // those the previous node sent, and it went on above them at once (not one more refusal
    // for each checkpoint the previous node sent).
    cluster.wait_for_checkpoints_kept(kept_at_move + 2);
    let stale = cluster.checkpoints_kept().1 - stale_at_move;
    assert!((1..=2).contains(&stale), "{stale} checkpoints refused as stale after the move");

    // Draining its node takes it back; rebalance then finds nothing to even out.
    let drained = shell(&format!("drain {to_name}"));
    assert_eq!(drained.as_array().unwrap()[0]["to"], host.as_str(), "{drained}");
    let back = inference[from].wait_for("counter: restored on ");
    let (received_back, below_back, duplicates) = counter_line(&back);
    assert!(received_back >= received && below_back >= below && duplicates == 0, "{later} / {back}");
    let after = loop {
        let line = inference[from].wait_for("counter: ");
        if counter_line(&line).0 >= received_back + 4000 {
            break line;
        }
    };
    let (received, below, duplicates) = counter_line(&after);
    assert_eq!(duplicates, 0, "{after}");
    assert!(below > below_back + 2000 && received - below < 1000, "{back} / {after}");
    assert_eq!(shell("rebalance"), serde_json::json!([]));
    // The drained node stays cordoned: a move to it is refused until `uncordon`.
    let cordoned = |nodes: Value| {
        let row = nodes.as_array().unwrap().iter().find(|n| n["name"] == to_name.as_str()).cloned();
        row.unwrap()["cordoned"].as_bool().unwrap()
    };
    assert!(cordoned(shell("nodes")), "drained and cordoned");
    let refused = aiot()
        .args(["shell", "--connect", addr, "--ca-dir", ca, "--admin", "ops", "-c"])
        .arg(format!("move /counter {to_name}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains(&format!("{to_name} is cordoned")), "{stderr}");
    assert_eq!(
        shell(&format!("uncordon {to_name}")),
        serde_json::json!({ "node": to_name, "cordoned": false })
    );
    let deadline = std::time::Instant::now() + common::WAIT_MAX;
    while cordoned(shell("nodes")) {
        assert!(std::time::Instant::now() < deadline, "the entry node never heard of the uncordon");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // `trace` shows the counter's messages as they come, on the node it runs on now.
    let traced = shell("trace /counter --count 50");
    let events = traced.as_array().unwrap();
    assert_eq!(events.len(), 50, "{traced}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["node"], host.as_str(), "{e}");
        assert_eq!((e["kind"].as_str(), e["message"].as_str()), (Some("tell"), Some("Number")), "{e}");
        assert!(i == 0 || e["seq"].as_u64() > events[i - 1]["seq"].as_u64(), "in order: {traced}");
        assert!(i == 0 || e["at_us"].as_u64() >= events[i - 1]["at_us"].as_u64(), "{traced}");
    }
    let refused = aiot()
        .args(["shell", "--connect", addr, "--ca-dir", ca, "--admin", "ops", "-c", "trace /nowhere"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no node runs /nowhere"), "{refused:?}");
}

#[test]
fn a_killed_nodes_counter_starts_elsewhere_from_its_last_checkpoint() {
    // The counter is checkpointed every second; platform-1 keeps its checkpoints.
    let (mut cluster, from, host) = CounterCluster::counting(2);
    let survivor = 1 - from;
    assert!(
        field(&cluster.shell("stats"), "node", &host)["remote"]["checkpoints_sent"].as_u64().unwrap() >= 2
    );

    // kill -9 its node: the counter starts on the other one from the last checkpoint kept.
    cluster.inference[from].child.kill().unwrap();
    let restored = cluster.inference[survivor].wait_for("counter: restored on ");
    let (received, below, duplicates) = counter_line(&restored);
    assert!(received >= 4000 && below >= 4000, "the state kept by the checkpoint: {restored}");
    assert_eq!(duplicates, 0, "{restored}");
    // It counts on from there; what the killed node handled after its last checkpoint is lost.
    let later = loop {
        let line = cluster.inference[survivor].wait_for("counter: ");
        if counter_line(&line).0 >= received + 4000 {
            break line;
        }
    };
    assert_eq!(counter_line(&later).2, 0, "no number twice: {later}");
    let stats = cluster.shell("stats");
    let survivor_name = format!("inference-{}", survivor + 1);
    assert_eq!(field(&stats, "node", &survivor_name)["remote"]["checkpoint_starts"], 1, "{stats}");
    println!("restored: {restored}; then {later}");
}

#[test]
fn a_platform_node_keeps_the_checkpoints_it_kept_across_its_own_restart() {
    let (mut cluster, from, _) = CounterCluster::counting(2);
    let survivor = 1 - from;
    let survivor_name = format!("inference-{}", survivor + 1);
    // kill -9 the keeper, then the counter's node: the survivor alone is no majority, so the
    // counter can start again only once the keeper is back, from what its disk kept.
    cluster.platform.child.kill().unwrap();
    cluster.inference[from].child.kill().unwrap();
    let seeds = format!("\"{survivor_name}@{}\"", cluster.inference_addrs[survivor]);
    let config = write_config_with(
        cluster.dir.path(),
        "platform-1",
        &seeds,
        "tier = \"platform\"",
        "topology = \"counter\"",
    );
    cluster.platform = Node::start(&config);
    let restored = cluster.inference[survivor].wait_for("restored /counter from its checkpoint");
    let line = cluster.inference[survivor].wait_for("counter: restored on ");
    let (received, below, _) = counter_line(&line);
    assert!(received >= 4000 && below >= 4000, "the state the keeper's disk kept: {line}");
    println!("{restored}; {line}");
    // The keeper read every checkpoint it had kept: no file was skipped.
    while let Ok(line) = cluster.platform.lines.try_recv() {
        assert!(!line.starts_with("checkpoint disk"), "{line}");
    }
}
