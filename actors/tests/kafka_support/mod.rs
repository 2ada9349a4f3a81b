//! Test support for the Kafka backend: one tansu per test binary while any test uses it, and
//! `KafkaLab`, the conformance suite's lab on it (wall time, patient enough for tansu's group
//! joins).
#![allow(dead_code)]

use std::sync::{Arc, Weak};
use std::time::Duration;

use aiot_actors::adapters::kafka::{KafkaLog, KafkaSettings};
use aiot_actors::adapters::tansu::Tansu;
use aiot_actors::ports::eventlog::conformance::{outcome_recorder, LabLog, LogLab};
use parking_lot::Mutex;

/// The shared broker: started by the first test that needs it, killed when the last test
/// holding it is done (a static would outlive the tests and leak the process).
pub fn shared_broker() -> Arc<Tansu> {
    static SHARED: Mutex<Weak<Tansu>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock();
    if let Some(broker) = shared.upgrade() {
        return broker;
    }
    let broker = Arc::new(Tansu::start().expect("tansu"));
    *shared = Arc::downgrade(&broker);
    broker
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn fresh(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// The Kafka backend on a tansu broker. `restart` closes the client (producer, admin client)
/// and opens a new one: the broker itself is memory-only and cannot restart without losing
/// every record.
pub struct KafkaLab {
    pub broker: Arc<Tansu>,
    pub settings: KafkaSettings,
    log: Option<(Arc<KafkaLog>, LabLog)>,
}

impl KafkaLab {
    pub fn new(broker: Arc<Tansu>) -> Self {
        // One record per produce batch: tansu's high watermark (and so the end a consumer
        // starting at `Latest` sees) is the last batch's first offset + 1, not the last
        // record's offset + 1.
        let settings = KafkaSettings { max_batch_records: Some(1), ..KafkaSettings::new(broker.bootstrap()) };
        KafkaLab { broker, settings, log: None }
    }

    /// The log, typed (for `status`, `flush`).
    pub fn kafka(&mut self) -> Arc<KafkaLog> {
        self.log();
        Arc::clone(&self.log.as_ref().expect("opened").0)
    }
}

impl LogLab for KafkaLab {
    fn log(&mut self) -> LabLog {
        let settings = &self.settings;
        let (_, lab_log) = self.log.get_or_insert_with(|| {
            let (outcomes, sink) = outcome_recorder();
            let log = Arc::new(KafkaLog::new(settings.clone(), sink).expect("kafka log"));
            (Arc::clone(&log), LabLog { log, outcomes })
        });
        lab_log.clone()
    }

    fn restart(&mut self) -> bool {
        self.log = None;
        true
    }

    /// Polls every 10 ms for up to 90 s (group joins on tansu take up to about 25 s).
    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> bool {
        for _ in 0..9000 {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        done()
    }

    fn settle(&mut self) {
        std::thread::sleep(Duration::from_millis(500));
    }
}
