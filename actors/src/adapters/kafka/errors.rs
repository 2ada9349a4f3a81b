//! librdkafka's errors as the port's `LogError`s: what a caller can act on (back off, retry
//! later, fix the request), with librdkafka's own words kept in the message.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::ports::eventlog::LogError;

/// `error` from an operation on `topic` (an empty `topic` when none applies).
pub fn log_error(error: &KafkaError, topic: &str) -> LogError {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(C::QueueFull) => LogError::Full,
        Some(C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition) => {
            LogError::UnknownTopic(topic.to_string())
        }
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidTopic
            | C::InvalidPartitions
            | C::InvalidReplicationFactor
            | C::InvalidArgument,
        ) => LogError::Invalid(format!("kafka refused it: {error}")),
        Some(C::InvalidMessage | C::BadMessage) => LogError::Corrupt(format!("kafka: {error}")),
        // Timeouts, transport failures, no leader, fatal producer states: the broker side
        // cannot take the request now.
        _ => LogError::Unavailable(format!("kafka: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_maps_to_what_the_caller_can_do() {
        let production = |code| KafkaError::MessageProduction(code);
        assert_eq!(log_error(&production(RDKafkaErrorCode::QueueFull), "t"), LogError::Full);
        assert_eq!(
            log_error(&production(RDKafkaErrorCode::UnknownTopicOrPartition), "t"),
            LogError::UnknownTopic("t".into())
        );
        assert!(matches!(
            log_error(&production(RDKafkaErrorCode::MessageSizeTooLarge), "t"),
            LogError::Invalid(_)
        ));
        match log_error(&production(RDKafkaErrorCode::MessageTimedOut), "t") {
            LogError::Unavailable(why) => assert!(why.contains("timed out"), "{why}"),
            other => panic!("a timeout is not Unavailable: {other:?}"),
        }
    }
}
