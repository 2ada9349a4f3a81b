//! How the Kafka backend reaches its brokers and how patient it is, and the librdkafka
//! configuration each client (producer, consumer) is built from.

use std::time::Duration;

use rdkafka::ClientConfig;

/// The Kafka backend's settings (`stream.kafka.brokers` in a node's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// How long librdkafka keeps retrying an append before reporting it failed
    /// (`message.timeout.ms`); an outage shorter than this loses nothing.
    pub append_timeout: Duration,
    /// Appends queued in the client and not yet acknowledged before `append` refuses with
    /// `LogError::Full` (`queue.buffering.max.messages`).
    pub max_in_flight: u32,
    /// Bytes of such appends, in KiB (`queue.buffering.max.kbytes`).
    pub max_in_flight_kbytes: u32,
    /// Bound on the blocking requests: `create_topic`, `topics`, and a consumer's set-up calls.
    pub request_timeout: Duration,
    /// Replication factor of topics this backend creates.
    pub replication: u16,
    /// At most this many records per produce batch (`batch.num.messages`); `None`: librdkafka's
    /// default (10 000).
    pub max_batch_records: Option<u32>,
}

impl KafkaSettings {
    /// Defaults: librdkafka's five-minute append timeout, 100 000 appends or 64 MiB in flight,
    /// 10 s requests, replication 1 (a single broker; production clusters set 3).
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            append_timeout: Duration::from_secs(300),
            max_in_flight: 100_000,
            max_in_flight_kbytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            replication: 1,
            max_batch_records: None,
        }
    }

    /// The idempotent producer: acks from all in-sync replicas, the CRC-32 (`consistent`)
    /// partitioner that `partition_for` mirrors, and bounded local queues.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.common("aiot-log-producer");
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "consistent")
            .set("message.timeout.ms", millis(self.append_timeout))
            .set("queue.buffering.max.messages", self.max_in_flight.to_string())
            .set("queue.buffering.max.kbytes", self.max_in_flight_kbytes.to_string());
        if let Some(records) = self.max_batch_records {
            config.set("batch.num.messages", records.to_string());
        }
        config
    }

    /// A consumer: offsets are committed only when asked (`commit`), never automatically.
    pub fn consumer_config(&self, group: Option<&str>, member: &str) -> ClientConfig {
        let mut config = self.common(member);
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        // librdkafka's `assign` needs a group id even where no group is joined: a reader without
        // a group gets one of its own that it never joins nor commits to.
        let group = group.map_or_else(|| format!("aiot-no-group.{member}"), str::to_string);
        config.set("group.id", group);
        config
    }

    fn common(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            .set("socket.timeout.ms", millis(self.request_timeout))
            // Topics exist only through `create_topic`: an unknown one is an error, never a
            // topic made up by the broker with its default partition count.
            .set("allow.auto.create.topics", "false")
            // librdkafka logs connection failures itself; they reach callers as errors.
            .set("log_level", "3");
        config
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}
