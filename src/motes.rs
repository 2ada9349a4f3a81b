//! `aiot motes`: motes on this host (the firmware core fed by the motor physics) over a real
//! MQTT broker, plus the maintenance crew; and `aiot motes provision`, which writes their
//! credentials.
//!
//! Time: motor time runs `--warp` times faster than the wall clock, and each mote's clock is the
//! plant clock (the Unix time at start plus motor time), so a mote reporting every 60 s of its
//! own time reports every 60/warp wall seconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::adapters::rumqttc::RumqttcConnection;
use aiot_actors::ports::mqtt::{BrokerAddr, ConnectOptions, MqttConnection};
use aiot_actors::provision::{to_hex, Fleet, Login, MoteCredentials};
use aiot_firmware::duty::{DEFAULT_RAW_EVERY, DEFAULT_REPORT_INTERVAL_MS};
use aiot_firmware::mote::Persistent;
use aiot_firmware::protocol::MoteId;
use aiot_runtime::ClusterClock;
use aiot_simulations::motes::{inbox, Crew, MoteHost};
use aiot_simulations::motor::{Fleet as Motors, MotorParams, TimeWarp, Variation};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum MotesCommand {
    /// Writes credentials for N motes: DIR/fleet.toml (every mote's, for the cluster),
    /// DIR/mote-{id}.toml (one per mote) and DIR/mosquitto.acl.
    Provision {
        #[arg(long)]
        count: u32,
        #[arg(long, default_value = "motes")]
        dir: PathBuf,
        /// The CA directory of `aiot ca init` (its model-signing.pub goes to every mote).
        #[arg(long, default_value = "ca")]
        ca: PathBuf,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// How many motes (the first N of the fleet file).
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// Motor time per wall time (60: a mote's minute passes in a second).
    #[arg(long, default_value_t = 1.0)]
    pub warp: f64,
    /// The directory `aiot motes provision` wrote.
    #[arg(long, default_value = "motes")]
    pub credentials: PathBuf,
    /// Seed of the motor physics.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this much wall time (default: run until interrupted).
    #[arg(long, value_parser = crate::parse_duration)]
    pub duration: Option<Duration>,
}

pub fn provision(count: u32, dir: &Path, ca: &Path) -> Result<(), String> {
    let signing = std::fs::read_to_string(ca.join("model-signing.pub"))
        .map_err(|e| format!("{}: {e} (run `aiot ca init` first)", ca.join("model-signing.pub").display()))?;
    let fleet = new_fleet(count, signing.trim())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_secret(&dir.join("fleet.toml"), &fleet.to_toml())?;
    for mote in &fleet.motes {
        write_secret(&dir.join(format!("{}.toml", mote.id())), &mote.to_toml())?;
    }
    write_secret(&dir.join("mosquitto.acl"), &fleet.mosquitto_acl())?;
    println!("provisioned {count} motes in {}: fleet.toml (for the cluster), mote-N.toml (one per mote), mosquitto.acl", dir.display());
    Ok(())
}

/// Fresh credentials: random HMAC keys and passwords from the operating system.
pub fn new_fleet(count: u32, signing_public: &str) -> Result<Fleet, String> {
    let secret = || -> Result<[u8; 32], String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
        Ok(bytes)
    };
    let login = |user: &str| -> Result<Login, String> {
        Ok(Login { user: user.into(), password: to_hex(&secret()?) })
    };
    let mut motes = Vec::new();
    for id in 1..=count {
        let name = MoteId(id).to_string();
        motes.push(MoteCredentials {
            mote: id,
            mqtt_user: name,
            mqtt_password: to_hex(&secret()?),
            hmac_key: to_hex(&secret()?),
            model_signing_public: signing_public.to_string(),
        });
    }
    let fleet = Fleet { gateway: login("aiot-gateway")?, crew: login("aiot-crew")?, motes };
    Fleet::from_toml(&fleet.to_toml()).map_err(|e| format!("model-signing.pub: {e}"))
}

/// Writes a file only its owner may read; never overwrites one.
pub(crate) fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e} (it is never overwritten)", path.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(args: RunArgs) -> Result<(), String> {
    let fleet_file = args.credentials.join("fleet.toml");
    let text = std::fs::read_to_string(&fleet_file)
        .map_err(|e| format!("{}: {e} (run `aiot motes provision` first)", fleet_file.display()))?;
    let fleet = Fleet::from_toml(&text).map_err(|e| format!("{}: {e}", fleet_file.display()))?;
    if fleet.motes.len() < args.count as usize {
        return Err(format!(
            "{} holds {} motes, fewer than --count {}",
            fleet_file.display(),
            fleet.motes.len(),
            args.count
        ));
    }
    if !(args.warp > 0.0 && args.warp.is_finite()) {
        return Err(format!("--warp {} must be a positive number", args.warp));
    }
    let broker = BrokerAddr::parse(&args.broker)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let plant = Plant {
        count: args.count,
        warp: args.warp,
        seed: args.seed,
        params: MotorParams::default(),
        start: Duration::ZERO,
        duration: args.duration,
        cadence: (Duration::from_millis(DEFAULT_REPORT_INTERVAL_MS), DEFAULT_RAW_EVERY),
        clock: None,
    };
    runtime.block_on(run_plant(&fleet, &broker, &plant))
}

/// What the motes run on: the motors' physics and where in their life they are.
pub struct Plant {
    pub count: u32,
    /// Motor time per wall time.
    pub warp: f64,
    pub seed: u64,
    pub params: MotorParams,
    /// The motors' age when the run starts (motor time): defects already growing on some.
    pub start: Duration,
    /// Stop after this much wall time (none: run until interrupted).
    pub duration: Option<Duration>,
    /// The plant's clock as read at an instant, Unix ms (none: the wall clock); the run
    /// carries it forward under the warp to its own start. A demo gives the clock its cluster
    /// runs on, so that records and windows share one timeline.
    pub clock: Option<(std::time::Instant, u64)>,
    /// The motes' factory report settings: a report this often (motor time), a raw window
    /// every so many reports.
    pub cadence: (Duration, u32),
}

/// Under a time warp a mote's resend timer would fire after 30/warp wall seconds, sooner
/// than an acknowledgement can come back: it waits at least this much wall time.
const RESEND_WALL_MIN: Duration = Duration::from_secs(3);

/// Reads the wall clock: this is the host's loop, not actor or simulated code.
#[allow(clippy::disallowed_methods)]
fn wall() -> (std::time::Instant, u64) {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    (std::time::Instant::now(), unix_ms)
}

/// Runs `plant`'s motes and crew over `broker` until its duration is up.
pub async fn run_plant(fleet: &Fleet, broker: &BrokerAddr, args: &Plant) -> Result<(), String> {
    let handle = tokio::runtime::Handle::current();
    let motors = Motors::with_variation(args.seed, args.count as usize, &args.params, &Variation::typical());
    let mut hosts = Vec::new();
    for (i, credentials) in fleet.motes.iter().take(args.count as usize).enumerate() {
        let (inbox, sink) = inbox();
        let options = ConnectOptions::new(credentials.mqtt_user.clone())
            .with_credentials(&credentials.mqtt_user, &credentials.mqtt_password);
        let connection: Arc<dyn MqttConnection> = RumqttcConnection::connect(&handle, broker, options, sink);
        let mut config = aiot_simulations::motes::config(credentials)?;
        // Network delays do not warp: a resend waits at least RESEND_WALL_MIN of wall time.
        let resend_wall_min = RESEND_WALL_MIN.mul_f64(args.warp).as_millis() as u64;
        config.resend_after_ms = config.resend_after_ms.max(resend_wall_min);
        let flash = Persistent::new().with_cadence(args.cadence.0.as_millis() as u64, args.cadence.1);
        hosts.push(MoteHost::boot(config, flash, motors.motor(i).clone(), connection, inbox));
    }
    // The motors' history before the run is not the crew's to report now.
    for host in &mut hosts {
        host.motor().advance(args.start);
    }
    let (crew_inbox, crew_sink) = inbox();
    let crew_options =
        ConnectOptions::new(fleet.crew.user.clone()).with_credentials(&fleet.crew.user, &fleet.crew.password);
    let mut crew =
        Crew::new(RumqttcConnection::connect(&handle, broker, crew_options, crew_sink), crew_inbox);

    let (start, wall_unix_ms) = wall();
    let start_unix_ms = match args.clock {
        Some((at, ms)) => {
            let clock = ClusterClock { origin_ms: ms, warp: args.warp };
            clock.after(start.saturating_duration_since(at)).origin_ms
        }
        None => wall_unix_ms,
    };
    let warp = TimeWarp { motor_origin: args.start, ..TimeWarp::new(args.warp) };
    // The plant's clock reads the Unix time at start when the motors are `args.start` old.
    let plant_ms = |motor: Duration| start_unix_ms + motor.saturating_sub(args.start).as_millis() as u64;
    println!(
        "{} motes on {broker}, warp {}x: a report every {:.2} s of wall time",
        args.count,
        args.warp,
        args.cadence.0.as_secs_f64() / args.warp
    );
    let mut next_status = Duration::ZERO;
    loop {
        let elapsed = start.elapsed();
        if args.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let motor_t = warp.motor_time(elapsed);
        let now_ms = plant_ms(motor_t);
        for mote in crew.requests() {
            if let Some(host) = hosts.iter_mut().find(|h| h.id() == mote) {
                host.motor().request_inspection(motor_t);
            }
        }
        for host in &mut hosts {
            if now_ms >= host.next_report_ms() {
                host.wake(now_ms, motor_t);
            } else {
                host.poll(now_ms);
            }
            let id = host.id();
            let events = host.motor().advance(motor_t);
            crew.report(id, events, plant_ms);
        }
        if elapsed >= next_status {
            print_status(&hosts, &crew, motor_t);
            next_status = elapsed + Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No more windows: wait (up to 10 s) for the acknowledgements of what was sent.
    let stop = start.elapsed();
    while start.elapsed() < stop + DRAIN_MAX && hosts.iter().any(|h| !h.mote().persistent().ring().is_empty())
    {
        let now_ms = plant_ms(warp.motor_time(start.elapsed()));
        hosts.iter_mut().for_each(|h| h.poll(now_ms));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    print_status(&hosts, &crew, warp.motor_time(start.elapsed()));
    let unacked: usize = hosts.iter().map(|h| h.mote().persistent().ring().len()).sum();
    let sent: u64 = hosts.iter().map(|h| h.mote().counters().frames_sent).sum();
    println!("stopped: {sent} frames sent, {unacked} unacknowledged");
    Ok(())
}

/// How long a stopping runner waits for outstanding acknowledgements.
const DRAIN_MAX: Duration = Duration::from_secs(10);

fn print_status(hosts: &[MoteHost], crew: &Crew, motor_t: Duration) {
    let (mut sent, mut resent, mut unacked, mut refused, mut dropped, mut tripped) = (0, 0, 0, 0, 0, 0);
    for host in hosts {
        let c = host.mote().counters();
        sent += c.frames_sent;
        resent += c.frames_resent;
        dropped += c.ring.total();
        unacked += host.mote().persistent().ring().len();
        refused += host.counters().publish_refused;
        tripped += u32::from(host.mote().state() == aiot_firmware::actuation::ActuationState::Trip);
    }
    println!(
        "motor time {:>8.1} h | frames sent {sent}, resent {resent}, unacknowledged {unacked}, ring drops {dropped}, publishes refused {refused} | tripped {tripped} | maintenance records {}, inspections requested {}",
        motor_t.as_secs_f64() / 3600.0,
        crew.published,
        crew.requests_answered
    );
}
