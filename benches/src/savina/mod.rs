//! Savina kernels for aiot, actix and ractor, side by side in one run (issue 2).
//!
//! Each kernel is written once per runtime (`aiot.rs`, `actix.rs`, `ractor.rs`) with the same
//! message flow: fire-and-forget sends everywhere (no asks), the same payloads, and counts taken
//! where the receiving actor has handled the message. Every cell checks its result (the
//! counter's total, the ring's final position, each fork-join worker's checksum) and fails the
//! run loudly instead of printing a fast number. A cell's figure is the median of `--runs` runs,
//! after one discarded warm-up run per runtime; the runtimes' runs are interleaved, in an order
//! rotated each run, so that drift on the machine hits all of them alike.

mod actix;
mod aiot;
mod ractor;

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::alloc::{CountingOn, Snapshot};

/// How long any one cell may take before it is declared broken.
pub const KERNEL_TIMEOUT: Duration = Duration::from_secs(120);

/// `aiot-bench savina` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Runs per cell; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Small sizes (a CI smoke test: every kernel runs and checks its result, in seconds).
    #[arg(long)]
    pub quick: bool,
    /// Run only these kernels.
    #[arg(long, value_delimiter = ',')]
    pub kernels: Vec<Kernel>,
    /// Run only these runtimes (ratios against a runtime left out print as "-").
    #[arg(long, value_delimiter = ',')]
    pub runtimes: Vec<Runtime>,
    /// Skip the allocations-per-operation pass (one extra, untimed run with counting on).
    #[arg(long)]
    pub no_alloc_profile: bool,
}

/// The kernels, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernel {
    /// Two actors, N round trips, each side answering with a fire-and-forget send.
    PingPong,
    /// 100 actors in a ring, one token passed N hops.
    Ring,
    /// A producer sends N increments to a counter, which reports its total at the end.
    Counting,
    /// A sender sends N messages to each of K workers; each does a tiny computation.
    ForkJoin,
    /// Create N actors (counted once each has started), then stop them all.
    Spawn,
    /// Live bytes per idle actor, through the one counting allocator.
    Memory,
}

impl Kernel {
    pub const ALL: [Kernel; 6] =
        [Kernel::PingPong, Kernel::Ring, Kernel::Counting, Kernel::ForkJoin, Kernel::Spawn, Kernel::Memory];

    fn unit(self) -> &'static str {
        match self {
            Kernel::PingPong | Kernel::Ring | Kernel::Counting | Kernel::ForkJoin => "msg/s",
            Kernel::Spawn => "actors/s",
            Kernel::Memory => "B/actor",
        }
    }

    fn higher_is_better(self) -> bool {
        self != Kernel::Memory
    }
}

/// The runtimes compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Aiot,
    Actix,
    Ractor,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [Runtime::Aiot, Runtime::Actix, Runtime::Ractor];

    fn name(self) -> &'static str {
        match self {
            Runtime::Aiot => "aiot",
            Runtime::Actix => "actix",
            Runtime::Ractor => "ractor",
        }
    }

    fn run(self, kernel: Kernel, sizes: &Sizes, timer: Timer) -> Result<Measured, String> {
        match self {
            Runtime::Aiot => self::aiot::run(kernel, sizes, timer),
            Runtime::Actix => self::actix::run(kernel, sizes, timer),
            Runtime::Ractor => self::ractor::run(kernel, sizes, timer),
        }
    }

    fn settings(self) -> &'static str {
        match self {
            Runtime::Aiot => {
                "aiot: aiot_runtime::exec::tokio::TokioSystem on a tokio current_thread runtime (one \
                 thread); ctx.send / system.tell; default mailboxes (1024, backpressure) except the \
                 counting counter and the fork-join workers (capacity N, so no send ever parks, \
                 like the unbounded peers); spawn = system.spawn of top-level actors, stop = \
                 system.shutdown()"
            }
            Runtime::Actix => {
                "actix 0.13: actix::System (actix-rt 2: tokio current_thread runtime + LocalSet, \
                 one thread); Addr::do_send (unbounded, ignores the mailbox capacity); spawn = \
                 Actor::start, stop = dropping every Addr"
            }
            Runtime::Ractor => {
                "ractor 0.16 (features: tokio_runtime only; message_span_propogation off): on a \
                 tokio current_thread runtime (one thread); ActorRef::cast (unbounded); spawn = \
                 Actor::spawn (awaits pre_start), stop = ActorRef::stop + awaiting each JoinHandle"
            }
        }
    }
}

/// Problem sizes.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub ping_pong_round_trips: u64,
    pub ring_actors: usize,
    pub ring_hops: u64,
    pub counting_messages: u64,
    pub fork_join_workers: usize,
    pub fork_join_messages: u64,
    pub spawn_actors: u64,
    pub idle_actors: u64,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            ping_pong_round_trips: 200_000,
            ring_actors: 100,
            ring_hops: 1_000_000,
            counting_messages: 1_000_000,
            fork_join_workers: 60,
            fork_join_messages: 10_000,
            spawn_actors: 20_000,
            idle_actors: 10_000,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            ping_pong_round_trips: 10_000,
            ring_actors: 100,
            ring_hops: 50_000,
            counting_messages: 50_000,
            fork_join_workers: 10,
            fork_join_messages: 2_000,
            spawn_actors: 2_000,
            idle_actors: 2_000,
        }
    }

    fn describe(&self, kernel: Kernel) -> String {
        match kernel {
            Kernel::PingPong => format!("ping-pong ({} round trips)", self.ping_pong_round_trips),
            Kernel::Ring => format!("thread ring ({} actors, {} hops)", self.ring_actors, self.ring_hops),
            Kernel::Counting => format!("counting ({} msgs)", self.counting_messages),
            Kernel::ForkJoin => {
                format!("fork-join ({} workers x {} msgs)", self.fork_join_workers, self.fork_join_messages)
            }
            Kernel::Spawn => format!("spawn ({} actors)", self.spawn_actors),
            Kernel::Memory => format!("idle actor ({} actors)", self.idle_actors),
        }
    }
}

/// The tiny computation each fork-join worker does per message (Savina's `fjthrput` computes a
/// sine); every worker sees the same sequence, so each can check its sum against the harness's.
pub fn fork_join_work(i: u64) -> f64 {
    let theta = (i % 3600) as f64 * 0.001_745_329;
    let s = theta.sin();
    s * s
}

/// The sum every fork-join worker must reach, computed by the harness.
pub fn fork_join_expected(n: u64) -> u64 {
    let mut acc = 0.0f64;
    for i in 0..n {
        acc += fork_join_work(i);
    }
    acc.to_bits()
}

/// A tokio current_thread runtime built exactly as actix-rt builds the one under `actix::System`
/// (`enable_all`: the IO driver too, which the scheduler polls every so many ticks), so the
/// three runtimes sit on the same scheduler.
pub fn current_thread_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Lets every task that has work run until all are parked (the memory kernel measures idle
/// actors).
pub async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// What one cell run measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Operations completed in the window (messages handled, actors created or stopped).
    pub ops: u64,
    pub secs: f64,
    /// Live-byte delta over the window (memory kernel, and when profiling allocations).
    pub bytes: i64,
    /// Allocations in the window (only when profiling allocations).
    pub allocs: u64,
    /// A second figure some kernels report: stop rate (actors/s) for spawn.
    pub extra: Option<f64>,
}

/// Starts a kernel's measured window; with `profile` the allocator counts inside it.
#[derive(Debug, Clone, Copy)]
pub struct Timer {
    profile: bool,
}

/// A measured window in progress.
pub struct Window {
    started: std::time::Instant,
    before: Snapshot,
    _counting: Option<CountingOn>,
}

impl Timer {
    /// A window that always counts allocations (the memory kernel).
    pub fn counting() -> Timer {
        Timer { profile: true }
    }

    #[allow(clippy::disallowed_methods)] // the harness times kernels; actor code never reads clocks
    pub fn start(&self) -> Window {
        let counting = self.profile.then(CountingOn::on);
        Window { before: Snapshot::now(), _counting: counting, started: std::time::Instant::now() }
    }
}

impl Window {
    pub fn stop(self, ops: u64) -> Measured {
        let secs = self.started.elapsed().as_secs_f64();
        let after = Snapshot::now();
        Measured {
            ops,
            secs,
            bytes: after.live - self.before.live,
            allocs: after.allocs - self.before.allocs,
            extra: None,
        }
    }
}

/// A count-down the actors use to tell the harness that a kernel is done (or broken). It lives in
/// the actor structs (never in messages), so it works the same for all three runtimes.
pub struct Latch {
    remaining: AtomicU64,
    sum: AtomicU64,
    failed: Mutex<Option<String>>,
    notify: tokio::sync::Notify,
}

impl Latch {
    pub fn new(count: u64) -> Arc<Latch> {
        Arc::new(Latch {
            remaining: AtomicU64::new(count),
            sum: AtomicU64::new(0),
            failed: Mutex::new(None),
            notify: tokio::sync::Notify::new(),
        })
    }

    /// One party is done, contributing `value` to the sum the harness checks.
    pub fn arrive(&self, value: u64) {
        self.sum.fetch_add(value, Ordering::AcqRel);
        match self.remaining.fetch_sub(1, Ordering::AcqRel) {
            0 => self.fail("a latch was passed more often than expected"),
            1 => self.notify.notify_one(),
            _ => {}
        }
    }

    /// The kernel is broken: the harness's wait returns this error at once.
    pub fn fail(&self, why: impl Into<String>) {
        self.failed.lock().expect("latch lock").get_or_insert(why.into());
        self.notify.notify_one();
    }

    /// Waits until every party arrived (the sum of their values) or one failed.
    pub async fn wait(&self, what: &str) -> Result<u64, String> {
        let done = async {
            loop {
                if let Some(why) = self.failed.lock().expect("latch lock").clone() {
                    return Err(format!("{what}: {why}"));
                }
                if self.remaining.load(Ordering::Acquire) == 0 {
                    return Ok(self.sum.load(Ordering::Acquire));
                }
                self.notify.notified().await;
            }
        };
        match tokio::time::timeout(KERNEL_TIMEOUT, done).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "{what}: not complete after {KERNEL_TIMEOUT:?} ({} parties missing)",
                self.remaining.load(Ordering::Acquire)
            )),
        }
    }
}

/// Fails with a message naming the kernel when `got != want`.
pub fn check(what: &str, got: u64, want: u64) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, expected {want}"))
    }
}

/// One table cell: the figures of every run.
#[derive(Default, Clone)]
struct Cell {
    figures: Vec<f64>,
    extra: Vec<f64>,
    allocs_per_op: Option<f64>,
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

struct Human(f64);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v >= 1e6 {
            write!(f, "{:.2} M", v / 1e6)
        } else if v >= 1e4 {
            write!(f, "{:.1} k", v / 1e3)
        } else {
            write!(f, "{v:.0}")
        }
    }
}

/// A target from the issue, checked against the medians.
struct Target {
    kernel: Kernel,
    text: &'static str,
    check: fn(aiot: f64, actix: Option<f64>, ractor: Option<f64>) -> Option<bool>,
}

const TARGETS: [Target; 4] = [
    Target { kernel: Kernel::PingPong, text: ">= 1.0x actix, >= 2x ractor", check: throughput_target },
    Target { kernel: Kernel::Ring, text: ">= 1.0x actix, >= 2x ractor", check: throughput_target },
    Target { kernel: Kernel::ForkJoin, text: ">= 1.0x actix, >= 2x ractor", check: throughput_target },
    Target { kernel: Kernel::Memory, text: "<= 600 B", check: memory_target },
];

fn throughput_target(aiot: f64, actix: Option<f64>, ractor: Option<f64>) -> Option<bool> {
    Some(aiot >= actix? * 1.0 && aiot >= ractor? * 2.0)
}

fn memory_target(aiot: f64, _: Option<f64>, _: Option<f64>) -> Option<bool> {
    Some(aiot <= 600.0)
}

/// Runs the savina suite and prints the table; an error names the broken cell.
pub fn run(args: &Args) -> Result<(), String> {
    let sizes = if args.quick { Sizes::quick() } else { Sizes::full() };
    let kernels: Vec<Kernel> =
        if args.kernels.is_empty() { Kernel::ALL.to_vec() } else { args.kernels.clone() };
    let runtimes: Vec<Runtime> =
        if args.runtimes.is_empty() { Runtime::ALL.to_vec() } else { args.runtimes.clone() };
    let runs = args.runs.max(1);
    let mut cells: Vec<Vec<Cell>> = vec![vec![Cell::default(); runtimes.len()]; kernels.len()];

    let progress = std::io::stderr().is_terminal();
    let show = |what: &str| {
        if progress {
            eprint!("\r{what:<70}");
        }
    };
    for (k, &kernel) in kernels.iter().enumerate() {
        let name = sizes.describe(kernel);
        // One discarded run per runtime first: page faults on fresh heap, allocator arenas and
        // lazy statics are paid here, not by whichever runtime happens to run first.
        for &rt in &runtimes {
            show(&format!("{name} warm-up {}", rt.name()));
            rt.run(kernel, &sizes, Timer { profile: false })
                .map_err(|e| format!("{name} on {}: {e}", rt.name()))?;
        }
        for run in 0..runs {
            // Rotate the order each run so no runtime always follows the same one.
            for j in 0..runtimes.len() {
                let r = (j + run) % runtimes.len();
                let rt = runtimes[r];
                show(&format!("{name} run {}/{runs} {}", run + 1, rt.name()));
                let m = rt
                    .run(kernel, &sizes, Timer { profile: false })
                    .map_err(|e| format!("{name} on {}: {e}", rt.name()))?;
                let cell = &mut cells[k][r];
                cell.figures.push(figure(kernel, &m));
                if let Some(x) = m.extra {
                    cell.extra.push(x);
                }
            }
        }
        if !args.no_alloc_profile && kernel != Kernel::Memory {
            for (r, &rt) in runtimes.iter().enumerate() {
                show(&format!("{name} alloc profile {}", rt.name()));
                let m = rt
                    .run(kernel, &sizes, Timer { profile: true })
                    .map_err(|e| format!("{name} on {} (alloc profile): {e}", rt.name()))?;
                cells[k][r].allocs_per_op = Some(m.allocs as f64 / m.ops.max(1) as f64);
            }
        }
    }
    show("");
    if progress {
        eprintln!();
    }

    print_table(&sizes, runs, args.quick, &kernels, &runtimes, &cells);
    Ok(())
}

fn figure(kernel: Kernel, m: &Measured) -> f64 {
    match kernel {
        Kernel::Memory => m.bytes as f64 / m.ops as f64,
        _ => m.ops as f64 / m.secs,
    }
}

fn print_table(
    sizes: &Sizes,
    runs: usize,
    quick: bool,
    kernels: &[Kernel],
    runtimes: &[Runtime],
    cells: &[Vec<Cell>],
) {
    struct Row {
        label: String,
        unit: &'static str,
        medians: [Option<f64>; 3],
        higher_is_better: bool,
        target: Option<&'static Target>,
    }
    let col = |rt: Runtime| runtimes.iter().position(|&r| r == rt);
    let mut rows = Vec::new();
    for (k, &kernel) in kernels.iter().enumerate() {
        let med = |rt: Runtime| col(rt).and_then(|c| median(&cells[k][c].figures));
        rows.push(Row {
            label: sizes.describe(kernel),
            unit: kernel.unit(),
            medians: [med(Runtime::Aiot), med(Runtime::Actix), med(Runtime::Ractor)],
            higher_is_better: kernel.higher_is_better(),
            target: TARGETS.iter().find(|t| t.kernel == kernel),
        });
        if kernel == Kernel::Spawn {
            let ext = |rt: Runtime| col(rt).and_then(|c| median(&cells[k][c].extra));
            rows.push(Row {
                label: format!("stop ({} actors)", sizes.spawn_actors),
                unit: "actors/s",
                medians: [ext(Runtime::Aiot), ext(Runtime::Actix), ext(Runtime::Ractor)],
                higher_is_better: true,
                target: None,
            });
        }
    }

    println!(
        "savina: median of {runs} run(s) per cell, {} sizes; ratios are aiot/peer",
        if quick { "quick" } else { "full" }
    );
    println!();
    println!(
        "| {:<38} | {:<8} | {:>9} | {:>9} | {:>9} | {:>10} | {:>11} | {:<6} | {:<36} |",
        "kernel",
        "unit",
        "aiot",
        "actix",
        "ractor",
        "aiot/actix",
        "aiot/ractor",
        "better",
        "target (issue 2)"
    );
    println!(
        "|{:-<40}|{:-<10}|{:->11}|{:->11}|{:->11}|{:->12}|{:->13}|{:-<8}|{:-<38}|",
        "", "", "", "", "", "", "", "", ""
    );
    for row in &rows {
        let [aiot, actix, ractor] = row.medians;
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| Human(v).to_string());
        let ratio = |peer: Option<f64>| match (aiot, peer) {
            (Some(a), Some(p)) if p > 0.0 => format!("{:.2}x", a / p),
            _ => "-".to_string(),
        };
        let verdict = match (row.target, aiot) {
            (Some(t), Some(a)) => match (t.check)(a, actix, ractor) {
                Some(true) => format!("{}: met", t.text),
                Some(false) => format!("{}: MISSED", t.text),
                None => t.text.to_string(),
            },
            (Some(t), None) => t.text.to_string(),
            (None, _) => String::new(),
        };
        println!(
            "| {:<38} | {:<8} | {:>9} | {:>9} | {:>9} | {:>10} | {:>11} | {:<6} | {:<36} |",
            row.label,
            row.unit,
            show(aiot),
            show(actix),
            show(ractor),
            ratio(actix),
            ratio(ractor),
            if row.higher_is_better { "higher" } else { "lower" },
            verdict
        );
    }
    println!();
    println!("settings per row (every runtime runs on one thread; all cells use fire-and-forget sends):");
    for &rt in runtimes {
        println!("- {}", rt.settings());
    }
    println!(
        "- memory: live bytes (allocated minus freed, through one counting #[global_allocator] \
         wrapping System) after N idle actors have started, minus before, divided by N; the \
         harness's Vec of refs is allocated before the baseline"
    );

    let profiled: Vec<usize> =
        (0..kernels.len()).filter(|&k| cells[k].iter().any(|c| c.allocs_per_op.is_some())).collect();
    if !profiled.is_empty() {
        println!();
        println!(
            "allocations per operation (one extra untimed run per cell, counting on in the measured window):"
        );
        println!();
        println!("| {:<38} | {:>8} | {:>8} | {:>8} |", "kernel", "aiot", "actix", "ractor");
        println!("|{:-<40}|{:->10}|{:->10}|{:->10}|", "", "", "", "");
        for k in profiled {
            let show = |rt: Runtime| {
                col(rt).and_then(|c| cells[k][c].allocs_per_op).map_or("-".to_string(), |v| format!("{v:.2}"))
            };
            println!(
                "| {:<38} | {:>8} | {:>8} | {:>8} |",
                sizes.describe(kernels[k]),
                show(Runtime::Aiot),
                show(Runtime::Actix),
                show(Runtime::Ractor)
            );
        }
    }
}
