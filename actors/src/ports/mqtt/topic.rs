//! MQTT topic names and filters (MQTT 3.1.1 section 4.7): validation and matching.

use super::MqttError;

/// Checks a topic name a client publishes to: not empty, no wildcards, no NUL.
pub fn check_topic(topic: &str) -> Result<(), MqttError> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(MqttError::InvalidTopic(topic.to_string()));
    }
    Ok(())
}

/// Checks a subscription filter: `+` fills a whole level, `#` only the whole last level.
pub fn check_filter(filter: &str) -> Result<(), MqttError> {
    let invalid = || MqttError::InvalidTopic(filter.to_string());
    if filter.is_empty() || filter.contains('\0') {
        return Err(invalid());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let wild = level.contains(['+', '#']);
        if wild && level.len() != 1 {
            return Err(invalid());
        }
        if *level == "#" && i + 1 != levels.len() {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter`. Wildcards in the first level do not match topics that
/// start with `$` (the broker's own topics); `a/#` also matches `a`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_the_standard_says() {
        assert!(matches("aiot/+/up", "aiot/mote-1/up"));
        assert!(!matches("aiot/+/up", "aiot/mote-1/down"));
        assert!(!matches("aiot/+/up", "aiot/a/b/up"));
        assert!(matches("aiot/#", "aiot"));
        assert!(matches("aiot/#", "aiot/maintenance/mote-3"));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("+/uptime", "$SYS/uptime"));
        assert!(matches("$SYS/uptime", "$SYS/uptime"));
        assert!(matches("a//b", "a//b"));
        assert!(matches("a/+/b", "a//b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn invalid_filters_and_topics_are_refused() {
        for bad in ["", "a/#/b", "a/b#", "a+/b", "a/\0"] {
            assert!(check_filter(bad).is_err(), "{bad:?}");
        }
        for good in ["#", "+", "a/+/b", "a/#", "+/+"] {
            assert!(check_filter(good).is_ok(), "{good:?}");
        }
        assert!(check_topic("a/+").is_err());
        assert!(check_topic("a/#").is_err());
        assert!(check_topic("").is_err());
        assert!(check_topic("aiot/mote-1/up").is_ok());
    }
}
