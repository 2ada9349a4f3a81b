//! Topics: created through the admin API (an existing topic with the same partition count is
//! success, another count is `PartitionMismatch`) and listed from the cluster's metadata. Both
//! wait for the broker, bounded by the settings' request timeout.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;

use super::errors::log_error;
use super::settings::KafkaSettings;
use crate::ports::eventlog::{LogError, TopicInfo};

/// The admin client (it runs its own polling thread inside rdkafka).
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    options: AdminOptions,
    settings: KafkaSettings,
}

impl Admin {
    pub fn new(settings: &KafkaSettings) -> Result<Self, LogError> {
        let client = settings
            .producer_config()
            .create()
            .map_err(|e| LogError::Invalid(format!("kafka admin client configuration: {e}")))?;
        let options = AdminOptions::new()
            .request_timeout(Some(settings.request_timeout))
            .operation_timeout(Some(settings.request_timeout));
        Ok(Admin { client, options, settings: settings.clone() })
    }

    /// Creates `topic` with `partitions` partitions unless it exists with that many.
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        if topic.is_empty() || partitions == 0 {
            return Err(LogError::Invalid(format!(
                "a topic needs a name and at least one partition (got {topic:?}, {partitions})"
            )));
        }
        let count = i32::try_from(partitions)
            .map_err(|_| LogError::Invalid(format!("{partitions} partitions is too many")))?;
        let new = NewTopic::new(topic, count, TopicReplication::Fixed(i32::from(self.settings.replication)));
        let results = futures_executor::block_on(self.client.create_topics([&new], &self.options))
            .map_err(|e| log_error(&e, topic))?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => match self.partition_count(topic)? {
                existing if existing == partitions => Ok(()),
                existing => {
                    Err(LogError::PartitionMismatch { topic: topic.into(), existing, requested: partitions })
                }
            },
            Some(Err((_, code))) => Err(log_error(&rdkafka::error::KafkaError::AdminOp(code), topic)),
            None => Err(LogError::Unavailable(format!("kafka answered nothing about creating {topic:?}"))),
        }
    }

    /// Every topic but Kafka's internal ones (`__consumer_offsets`), by name.
    pub fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        let metadata = metadata(self.client.inner(), None, &self.settings)?;
        let mut topics: Vec<TopicInfo> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| TopicInfo { name: t.name().to_string(), partitions: t.partitions().len() as u32 })
            .collect();
        topics.sort();
        Ok(topics)
    }

    fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        partition_count(self.client.inner(), topic, &self.settings)
    }
}

/// How many partitions `topic` has, from the cluster's metadata.
pub fn partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    settings: &KafkaSettings,
) -> Result<u32, LogError> {
    let metadata = metadata(client, Some(topic), settings)?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as u32),
        _ => Err(LogError::UnknownTopic(topic.to_string())),
    }
}

fn metadata<C: ClientContext>(
    client: &Client<C>,
    topic: Option<&str>,
    settings: &KafkaSettings,
) -> Result<Metadata, LogError> {
    client.fetch_metadata(topic, settings.request_timeout).map_err(|e| log_error(&e, topic.unwrap_or("")))
}
