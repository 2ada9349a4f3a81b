//! `aiot node` as separate processes on loopback: nodes authenticate each other through mutual
//! TLS and detect a kill; four nodes run the `ping` topology spread by tags, with asks and tells
//! across nodes, and the inference node hosting the echo is killed: the echo comes back on the
//! other inference node within the lease bound. `--check` reports the identity and ignores
//! unattested tag claims. The things topology: motes through the gateway, proxies and bridge
//! into the embedded log, and into Kafka read back by an independent consumer.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{aiot, http_get, run_ok, wait_for_all, write_config, write_config_with, Node, WAIT_MAX};

#[test]
fn node_processes_join_through_a_seed_see_each_other_and_detect_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    run_ok(&["ca", "init", "--dir", ca]);
    for (name, tags) in [
        ("platform-1", "tier=platform"),
        ("inference-1", "tier=inference"),
        ("inference-2", "tier=inference"),
    ] {
        run_ok(&["ca", "issue", "--dir", ca, "--node", name, "--tags", tags]);
    }
    let seed = Node::start(&write_config(dir.path(), "platform-1", "", "tier = \"platform\""));
    let addr = seed.wait_for("listening on ").trim_start_matches("listening on ").to_string();
    let seeds = format!("\"platform-1@{addr}\"");
    let a = Node::start(&write_config(dir.path(), "inference-1", &seeds, "tier = \"inference\""));
    let mut b = Node::start(&write_config(dir.path(), "inference-2", &seeds, "tier = \"inference\""));
    assert_eq!(a.wait_for("peer platform-1 "), "peer platform-1 authenticated [tier=platform]");
    // inference-1 and inference-2 learn of each other through the seed's heartbeats.
    let up = |names: &[&str]| names.iter().map(|n| format!("member {n} up")).collect::<Vec<_>>();
    wait_for_all(&seed, &up(&["inference-1", "inference-2"]));
    wait_for_all(&a, &up(&["platform-1", "inference-2"]));
    wait_for_all(&b, &up(&["platform-1", "inference-1"]));
    // kill -9: the others' failure detectors declare it down.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    wait_for_all(&seed, &["member inference-2 down".to_string()]);
    wait_for_all(&a, &["member inference-2 down".to_string()]);
}

#[test]
fn check_prints_the_identity_and_ignores_unattested_claims() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    run_ok(&["ca", "init", "--dir", ca]);
    run_ok(&["ca", "issue", "--dir", ca, "--node", "edge-1", "--tags", "tier=things"]);
    let config = write_config(dir.path(), "edge-1", "", "tier = \"platform\", accel = \"gpu\"");
    let out = run_ok(&["node", "--config", &config, "--check"]);
    assert!(out.contains("node edge-1 with attested tags [tier=things]"), "{out}");
    assert!(out.contains("ignored tag tier=platform: claimed in"), "{out}");
    assert!(out.contains("ignored tag accel=gpu: claimed in"), "{out}");

    std::fs::write(dir.path().join("bad.toml"), "listen = \"127.0.0.1:0\"\n").unwrap();
    let bad =
        aiot().args(["node", "--config", dir.path().join("bad.toml").to_str().unwrap()]).output().unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("data_dir"), "{stderr}");

    // A platform node's `[models]` key: the model-signing key loads; another key, or no file,
    // is refused with the file named.
    run_ok(&["ca", "issue", "--dir", ca, "--node", "core-1", "--tags", "tier=platform"]);
    for (key, refusal) in [
        ("ca/model-signing.key", None),
        ("ca/ca.key", Some("not an ed25519 PKCS#8 key")),
        ("ca/none.key", Some("No such file")),
    ] {
        let models = format!("[models]\nsigning_key = \"{key}\"");
        let config = write_config_with(dir.path(), "core-1", "", "tier = \"platform\"", &models);
        let out = aiot().args(["node", "--config", &config, "--check"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match refusal {
            None => assert!(out.status.success(), "{key}: {stderr}"),
            Some(why) => assert!(
                !out.status.success() && stderr.contains(key) && stderr.contains(why),
                "{key}: {stderr}"
            ),
        }
    }
}

/// Every line a node printed so far, kept for checks at the end.
struct Seen {
    lines: Vec<String>,
}

impl Seen {
    /// Reads `node` until a line starts with `prefix`; returns it.
    fn until(&mut self, node: &Node, prefix: &str) -> String {
        loop {
            match node.lines.recv_timeout(WAIT_MAX) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(e) => panic!("no line starting with {prefix:?} after {:?}: {e}", self.lines),
            }
        }
    }

    /// Takes whatever the node printed meanwhile.
    fn drain(&mut self, node: &Node) {
        self.lines.extend(node.lines.try_iter());
    }

    fn hosted(&self) -> Vec<&str> {
        self.lines.iter().filter_map(|l| l.strip_prefix("hosting ")).collect()
    }
}

#[test]
fn four_nodes_spread_the_ping_topology_by_tags_and_fail_over_within_the_lease_bound() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    run_ok(&["ca", "init", "--dir", ca]);
    let nodes = [
        ("platform-1", "tier=platform"),
        ("things-1", "tier=things"),
        ("inference-1", "tier=inference"),
        ("inference-2", "tier=inference"),
    ];
    for (name, tags) in nodes {
        run_ok(&["ca", "issue", "--dir", ca, "--node", name, "--tags", tags]);
    }
    let topology = "topology = \"ping\"";
    let config = |name: &str, seeds: &str, tags: &str| {
        let (k, v) = tags.split_once('=').unwrap();
        write_config_with(dir.path(), name, seeds, &format!("{k} = \"{v}\""), topology)
    };
    let platform = Node::start(&config("platform-1", "", "tier=platform"));
    let addr = platform.wait_for("listening on ").trim_start_matches("listening on ").to_string();
    let seeds = format!("\"platform-1@{addr}\"");
    let things = Node::start(&config("things-1", &seeds, "tier=things"));
    let mut inference = [
        Some(Node::start(&config("inference-1", &seeds, "tier=inference"))),
        Some(Node::start(&config("inference-2", &seeds, "tier=inference"))),
    ];
    let mut seen: Vec<Seen> = (0..4).map(|_| Seen { lines: Vec::new() }).collect();
    // A remote ask: the probe (things) gets answers from the echo (inference).
    let first = seen[1].until(&things, "probe: answers from ");
    let server = first.trim_start_matches("probe: answers from ").to_string();
    let (dead, survivor) = if server == "inference-1" { (0, 1) } else { (1, 0) };
    assert!(server.starts_with("inference-"), "{first}");
    // A remote tell: the tally (platform) counts the probe's answers.
    seen[0].until(&platform, "tally: 10 answers counted");
    // kill -9 the inference node serving the echo.
    let mut victim = inference[dead].take().unwrap();
    seen[2 + dead].drain(&victim);
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    #[allow(clippy::disallowed_methods)] // the test measures wall time; not actor code
    let killed_at = std::time::Instant::now();
    let other = inference[survivor].as_ref().unwrap();
    seen[2 + survivor].until(other, "hosting /echo");
    let failover = killed_at.elapsed();
    let survivor_name = format!("inference-{}", survivor + 1);
    assert_eq!(
        seen[1].until(&things, "probe: answers from "),
        format!("probe: answers from {survivor_name}")
    );
    // Lease bound (BLUEPRINT section 10): lease_ms 5000 + clock_skew_max_ms 500 after the last
    // sign of life, plus the node's 100 ms tick; the slack is for a loaded machine.
    println!("echo back on {survivor_name} {failover:?} after the kill");
    // The last heartbeat may precede the kill by one interval (500 ms) plus a tick.
    assert!(failover >= Duration::from_millis(4500), "re-placed before the lease ran out: {failover:?}");
    assert!(failover <= Duration::from_millis(8000), "failover took {failover:?}");
    // Nothing was ever placed on a node lacking its tag.
    seen[0].drain(&platform);
    seen[1].drain(&things);
    seen[2 + survivor].drain(other);
    assert_eq!(seen[0].hosted(), vec!["/tally"], "platform-1: {:?}", seen[0].lines);
    assert_eq!(seen[1].hosted(), vec!["/probe"], "things-1: {:?}", seen[1].lines);
    for node in &seen[2..] {
        assert!(node.hosted().iter().all(|p| *p == "/echo"), "{:?}", node.lines);
    }
    drop(victim);
}

/// A platform and a things node running the `things` topology on the platform's embedded
/// broker (`stream` is added to the platform's configuration), and 3 motes for 4 s at warp 600
/// (`during` runs while they do). Returns the nodes and the frames the motes sent and resent
/// (for want of an acknowledgement), after checking that every one was acknowledged end to end.
fn motes_through_a_things_cluster(dir: &Path, stream: &str, during: impl FnOnce()) -> ThingsRun {
    let path = |p: &str| dir.join(p).to_str().unwrap().to_string();
    run_ok(&["ca", "init", "--dir", &path("ca")]);
    run_ok(&["ca", "issue", "--dir", &path("ca"), "--node", "platform-1", "--tags", "tier=platform"]);
    run_ok(&["ca", "issue", "--dir", &path("ca"), "--node", "things-1", "--tags", "tier=things"]);
    run_ok(&["motes", "provision", "--count", "3", "--dir", &path("motes"), "--ca", &path("ca")]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mqtt = format!("topology = \"things\"\n[mqtt]\nfleet = \"motes/fleet.toml\"\nembedded_port = {port}");
    let platform_extra = format!("metrics = \"127.0.0.1:0\"\n{mqtt}\n{stream}");
    let platform =
        Node::start(&write_config_with(dir, "platform-1", "", "tier = \"platform\"", &platform_extra));
    assert!(platform.wait_for("embedded MQTT broker on ").contains(&port.to_string()));
    let addr = platform.wait_for("listening on ").trim_start_matches("listening on ").to_string();
    let platform_metrics = metrics_addr(&platform);
    let seeds = format!("\"platform-1@{addr}\"");
    let things_extra = format!("metrics = \"127.0.0.1:0\"\n{mqtt}");
    let things = Node::start(&write_config_with(dir, "things-1", &seeds, "tier = \"things\"", &things_extra));
    let things_metrics = metrics_addr(&things);
    things.wait_for("hosting /gateway");
    // Until the broker acknowledged the gateway's subscriptions (up frames, maintenance), it
    // drops what the motes publish; each mote would resend its first frames behind later ones.
    common::wait_until("the broker acknowledged the gateway's subscriptions", || {
        node_counter(&things_metrics, "things-1", "mqtt_subscriptions_acknowledged") >= 2
    });

    let broker = format!("mqtt://127.0.0.1:{port}");
    let credentials = path("motes");
    let args = [
        "motes",
        "--count",
        "3",
        "--broker",
        &broker,
        "--warp",
        "600",
        "--duration",
        "4s",
        "--credentials",
        &credentials,
    ];
    let motes = aiot().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    during();
    let out = motes.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = out.lines().last().unwrap_or_default();
    let sent: u64 = last.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(sent >= 30, "3 motes at a report per 0.1 s for 4 s: {out}");
    assert!(last.ends_with(" 0 unacknowledged"), "every frame acknowledged end to end: {out}");
    let status = out.lines().rev().nth(1).unwrap_or_default();
    let resent =
        status.split("resent ").nth(1).and_then(|r| r.split(',').next()).and_then(|n| n.parse().ok());
    let resent = resent.unwrap_or_else(|| panic!("no resent count in {status:?}"));
    ThingsRun { platform, _things: things, platform_metrics, things_metrics, sent, resent }
}

/// The address of a node's metrics endpoint, from its start-up line.
fn metrics_addr(node: &Node) -> String {
    let line = node.wait_for("metrics on http://");
    line.trim_start_matches("metrics on http://").trim_end_matches("/metrics").to_string()
}

/// A node's counter `aiot_{name}_total` from its metrics endpoint.
fn node_counter(metrics_addr: &str, node: &str, name: &str) -> u64 {
    let metrics = http_get(metrics_addr, "/metrics");
    let prefix = format!("aiot_{name}_total{{node=\"{node}\"}} ");
    let line = metrics.lines().find_map(|l| l.strip_prefix(&prefix).map(str::to_string));
    line.unwrap_or_else(|| panic!("no {prefix} in\n{metrics}")).parse().unwrap()
}

/// What `motes_through_a_things_cluster` leaves running and counted.
struct ThingsRun {
    platform: Node,
    _things: Node,
    /// The nodes' metrics endpoints.
    platform_metrics: String,
    things_metrics: String,
    sent: u64,
    resent: u64,
}

/// The first "things: " status line (every 10 s) whose number after `label` is at least `n`.
fn status_with(platform: &Node, label: &str, n: u64) -> String {
    let mut lines = Vec::new();
    loop {
        assert!(lines.len() < 6, "no status line counted {n} after {label:?}: {lines:#?}");
        let line = platform.wait_for("things: ");
        lines.push(line.clone());
        let counted = line
            .split(label)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok());
        if counted.is_some_and(|counted| counted >= n) {
            return line;
        }
    }
}

/// The bridge's status line once it counts at least `frames` frames appended.
fn bridge_status_with(platform: &Node, frames: u64) -> String {
    status_with(platform, " records appended (", frames)
}

#[test]
fn motes_feed_the_things_tier_of_a_two_node_cluster_through_the_embedded_broker_into_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let models = "[models]\nsigning_key = \"ca/model-signing.key\"";
    let ThingsRun { platform, _things, platform_metrics, things_metrics, sent, .. } =
        motes_through_a_things_cluster(dir.path(), models, || {});
    // The things node's metrics count what its gateway verified and routed.
    let counter = |name: &str| node_counter(&things_metrics, "things-1", name);
    assert!(counter("mqtt_frames_forwarded") >= sent);
    assert!(counter("mqtt_acks_sent") > 0);
    let metrics = http_get(&things_metrics, "/metrics");
    let bad_mac = "aiot_mqtt_frames_refused_total{node=\"things-1\",reason=\"BadMac\"} 0";
    assert!(metrics.lines().any(|l| l == bad_mac), "{metrics}");
    // The bridge runs on the platform node and appends to the embedded log there. Every frame
    // was acknowledged end to end, which the bridge allows only once its record is durable; its
    // status counts each frame once (copies of a waiting frame join it).
    let status = bridge_status_with(&platform, sent);
    let expected = format!("({sent} frames), 0 waiting");
    assert!(status.contains(&expected) && status.contains("bridge ok"), "{status}");
    assert!(dir.path().join("data/platform-1/log.key").exists(), "the log's key was made");
    let log = platform.wait_for("log: ");
    assert!(
        log.starts_with("log: embedded, ") && log.contains(" 0 failed, 0 I/O errors, 0 corrupt"),
        "{log}"
    );
    // The DSP filters are done with every frame from the log (a features record per window,
    // durable before its input is done; stage-1 events make none) and refused none.
    let status = status_with(&platform, " records read, ", sent);
    assert!(status.contains("dsp filters ok: ") && status.contains(" 0 refused"), "{status}");
    // Stage 2's replicas, the trainer and the drift monitor run on the platform node: stage 2
    // reads the feature records (no model yet: a day of data comes first) and refuses none.
    let status = status_with(&platform, "stage 2 ok: ", 1);
    for part in ["stage 2: no model", " 0 refused", "trainer: ", "drift monitor: ", "no training yet"] {
        assert!(status.contains(part), "{part:?} missing: {status}");
    }
    // With `[models]` the platform runs the registry (caught up with its empty stream, under
    // the key made in the data directory) and the deployer (nothing to roll out yet).
    for part in ["registry: 0 models loaded, 0 registered, 0 refused |", "deployer: 0 rollouts, 0 transfers"]
    {
        assert!(status.contains(part), "{part:?} missing: {status}");
    }
    assert!(dir.path().join("data/platform-1/models.key").exists(), "the models' key was made");
    // `/proxies` is checkpointed (every 5 s) by whichever node hosts it: to the platform node
    // from the things node, or on the platform node's own disk; none fails.
    let checkpointed = || {
        let counter = |name: &str| {
            node_counter(&platform_metrics, "platform-1", name)
                + node_counter(&things_metrics, "things-1", name)
        };
        assert_eq!(counter("checkpoints_failed"), 0);
        counter("checkpoints_sent") + counter("checkpoints_unreplicated")
    };
    common::wait_until("a checkpoint of /proxies", || checkpointed() > 0);
}

/// Motes -> MQTT -> gateway and proxies -> bridge -> Kafka (tansu), read back by an independent
/// consumer that `assign()`s every partition (group joins on tansu can take over 20 s). Kafka is
/// frozen (SIGSTOP) for 2.5 s while the motes run: the bridge holds their frames, nothing is
/// acknowledged before it is stored, and nothing acknowledged is lost. In the stream: each
/// mote's records under its key, in its partition, every frame there, in the mote's order after
/// de-duplication.
#[test]
fn motes_through_the_bridge_into_kafka_survive_a_frozen_broker_and_read_back_in_order() {
    use aiot_actors::adapters::tansu::Tansu;
    use aiot_actors::inference::features::{FeatureRecord, FEATURES};
    use aiot_actors::ports::eventlog::partition_for;
    use aiot_actors::streams::{mote_key, TelemetryRecord, PARTITIONS, TELEMETRY};
    use aiot_firmware::protocol::Kind;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

    let tansu = Tansu::start().expect("tansu (tools/test installs it; AIOT_TANSU names it)");
    let dir = tempfile::tempdir().unwrap();
    // One record per produce batch: tansu's high watermark ignores a batch's later records.
    let stream = format!("[stream]\nkafka.brokers = \"{}\"\nkafka.batch_records = 1", tansu.bootstrap());
    let freeze = || {
        // Test harness code, not actor code: it paces the outage in wall time.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_secs(1));
        tansu.pause().unwrap();
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(2500));
        tansu.resume().unwrap();
    };
    let ThingsRun { platform, _things, sent, resent, .. } =
        motes_through_a_things_cluster(dir.path(), &stream, freeze);
    assert!(resent > 0, "the motes resent frames while Kafka was frozen (no acknowledgement came)");
    let status = bridge_status_with(&platform, sent);
    assert!(status.contains(&format!("({sent} frames), 0 waiting")), "{status}");
    let log = platform.wait_for("log: ");
    assert!(log.starts_with("log: kafka ok, 0 appends in flight"), "Kafka is back: {log}");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", tansu.bootstrap())
        .set("group.id", "e2e-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition_offset(TELEMETRY, p as i32, Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    // Each mote's frames in the order first read: (sequence, capture time).
    let mut first_seen: std::collections::BTreeMap<u32, Vec<(u32, u64)>> = Default::default();
    let mut seen = std::collections::BTreeSet::new();
    let (mut copies, mut polls) = (0u64, 0);
    let mut windows = std::collections::BTreeSet::new();
    while (seen.len() as u64) < sent {
        polls += 1;
        assert!(polls < 600, "read {} of {sent} frames in 60 s", seen.len());
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message.unwrap();
        let record = TelemetryRecord::decode(message.payload().unwrap()).unwrap();
        let key = mote_key(record.mote);
        assert_eq!(message.key(), Some(key.as_slice()), "keyed by mote");
        assert_eq!(message.partition() as u32, partition_for(&key, PARTITIONS), "one mote, one partition");
        assert_eq!(record.boot_epoch, 1, "no mote rebooted");
        if seen.insert(record.frame_id()) {
            first_seen.entry(record.mote).or_default().push((record.seq, record.capture_ms));
            if [Kind::Features as u8, Kind::RawWindow as u8].contains(&record.kind) {
                windows.insert(record.frame_id());
            }
        } else {
            copies += 1;
        }
    }
    assert_eq!(first_seen.len(), 3, "every mote's frames: {first_seen:?}");
    // Order per mote is the order frames reach the bridge: the proxies hold a mote's frames in
    // order while their node learns where the bridge runs, and the bridge holds them in order
    // while Kafka is frozen, so no frame comes after a later one.
    for (mote, frames) in &first_seen {
        let seqs: Vec<u32> = frames.iter().map(|&(seq, _)| seq).collect();
        let expected: Vec<u32> = (0..seqs.len() as u32).collect();
        assert_eq!(seqs, expected, "mote-{mote}: every frame once, in order, after de-duplication");
    }
    println!("{sent} frames ({resent} resends) read back in order, {copies} copies de-duplicated");

    // The DSP filters, consuming `telemetry` through the same Kafka, wrote a feature record of
    // every window to `features`.
    let mut partitions = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        partitions.add_partition_offset(FEATURES, p as i32, Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut featured = std::collections::BTreeSet::new();
    let mut polls = 0;
    while !windows.is_subset(&featured) {
        polls += 1;
        assert!(
            polls < 600,
            "{} of {} windows had a feature record after 60 s",
            featured.len(),
            windows.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let record = FeatureRecord::decode(message.unwrap().payload().unwrap()).unwrap();
        assert!(!record.values.is_empty(), "a feature record has values");
        featured.insert(record.frame_id());
    }
    println!("{} windows, each with its feature record", windows.len());
}
