//! Node configuration: a good file parses with paths resolved; every bad one is refused with
//! the field named; tags the certificate does not attest are reported and never used.

use std::collections::BTreeMap;
use std::path::Path;

use aiot_cluster::config::{tag_report, NodeConfig, TrainingPace};

const GOOD: &str = r#"
listen = "127.0.0.1:7001"
seeds = ["platform-1@127.0.0.1:7000"]
data_dir = "data/n1"
tags = { tier = "inference", accel = "gpu" }

[tls]
ca = "ca/ca.pem"
cert = "ca/n1.pem"
key = "/etc/aiot/n1.key"
"#;

#[test]
fn a_good_file_parses_with_relative_paths_taken_from_its_directory() {
    let config = NodeConfig::parse(GOOD, Path::new("/srv/aiot")).unwrap();
    assert_eq!(config.listen.port(), 7001);
    assert_eq!(config.seeds[0].name, "platform-1");
    assert_eq!(config.seeds[0].addr.port(), 7000);
    assert_eq!(config.data_dir, Path::new("/srv/aiot/data/n1"));
    assert_eq!(config.tls.ca, Path::new("/srv/aiot/ca/ca.pem"));
    assert_eq!(config.tls.key, Path::new("/etc/aiot/n1.key"));
}

#[test]
fn each_missing_or_invalid_field_is_named() {
    let cases = [
        (GOOD.replace("listen = \"127.0.0.1:7001\"\n", ""), "listen"),
        (GOOD.replace("127.0.0.1:7001", "localhost-ish"), "listen"),
        (GOOD.replace("platform-1@127.0.0.1:7000", "nowhere"), "seeds"),
        (GOOD.replace("platform-1@127.0.0.1:7000", "platform-1@nowhere"), "seeds"),
        (GOOD.replace("data_dir = \"data/n1\"\n", ""), "data_dir"),
        (GOOD.replace("key = \"/etc/aiot/n1.key\"\n", ""), "key"),
        (GOOD.replace("data_dir", "datadir"), "datadir"),
        (GOOD.replace("tags = { tier = \"inference\", accel = \"gpu\" }", "tags = 3"), "tags"),
    ];
    for (text, field) in cases {
        let err = NodeConfig::parse(&text, Path::new("/")).unwrap_err().to_string();
        assert!(err.contains(field), "the error for {field} does not name it:\n{err}");
    }
    let err = NodeConfig::load(Path::new("/nonexistent/node.toml")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/node.toml"), "{err}");
}

#[test]
fn claimed_tags_count_only_when_the_certificate_attests_them() {
    let config = NodeConfig::parse(GOOD, Path::new("/")).unwrap();
    let attested: BTreeMap<String, String> = [("tier".to_string(), "inference".to_string())].into();
    let report = tag_report(&config.tags, &attested);
    assert_eq!(report.attested, attested);
    assert_eq!(report.unattested, [("accel".to_string(), "gpu".to_string())]);
    let lying: BTreeMap<String, String> = [("tier".to_string(), "platform".to_string())].into();
    let report = tag_report(&lying, &attested);
    assert_eq!(report.attested.get("tier").map(String::as_str), Some("inference"));
    assert_eq!(report.unattested, [("tier".to_string(), "platform".to_string())]);
}

#[test]
fn stream_kafka_brokers_selects_kafka_and_a_bad_list_is_named() {
    assert_eq!(
        NodeConfig::parse(GOOD, Path::new("/")).unwrap().stream.kafka,
        None,
        "embedded log by default"
    );
    for section in ["[stream]\nkafka.brokers", "[stream.kafka]\nbrokers"] {
        let text = format!("{GOOD}\n{section} = \"10.0.0.5:9092, kafka-2:9092\"\n");
        let kafka = NodeConfig::parse(&text, Path::new("/")).unwrap().stream.kafka.expect("kafka selected");
        assert_eq!(kafka.brokers, "10.0.0.5:9092, kafka-2:9092");
    }
    for bad in ["\"\"", "\"kafka-1\"", "\"kafka-1:ninety\"", "\":9092\""] {
        let text = format!("{GOOD}\n[stream]\nkafka.brokers = {bad}\n");
        let err = NodeConfig::parse(&text, Path::new("/")).unwrap_err().to_string();
        assert!(err.contains("brokers"), "the error for {bad} does not name the field:\n{err}");
    }
    let text = format!("{GOOD}\n[stream]\nkafka_brokers = \"k:9092\"\n");
    let err = NodeConfig::parse(&text, Path::new("/")).unwrap_err().to_string();
    assert!(err.contains("kafka_brokers"), "{err}");
}

#[test]
fn models_names_the_signing_key_relative_to_the_file() {
    assert_eq!(NodeConfig::parse(GOOD, Path::new("/")).unwrap().models, None);
    let text = format!("{GOOD}\n[models]\nsigning_key = \"ca/model-signing.key\"\n");
    let models = NodeConfig::parse(&text, Path::new("/srv/aiot")).unwrap().models.expect("a models section");
    assert_eq!(models.signing_key, Path::new("/srv/aiot/ca/model-signing.key"));
    let text = format!("{GOOD}\n[models]\nsigning = \"k\"\n");
    let err = NodeConfig::parse(&text, Path::new("/")).unwrap_err().to_string();
    assert!(err.contains("signing"), "{err}");
}

#[test]
fn warp_and_training_pace_default_to_real_time_and_a_zero_warp_is_refused() {
    let plain = NodeConfig::parse(GOOD, Path::new("/")).unwrap();
    assert_eq!((plain.warp, plain.training), (1, TrainingPace::default()));
    let text = GOOD.replace("listen =", "warp = 1440\nlisten =")
        + "\n[training]\nfirst_after_hours = 36\nlabel_horizon_hours = 24\n";
    let paced = NodeConfig::parse(&text, Path::new("/")).unwrap();
    assert_eq!(paced.warp, 1440);
    let expected =
        TrainingPace { first_after_hours: Some(36), every_hours: None, label_horizon_hours: Some(24) };
    assert_eq!(paced.training, expected);
    let zero = GOOD.replace("listen =", "warp = 0\nlisten =");
    assert!(NodeConfig::parse(&zero, Path::new("/")).unwrap_err().0.contains("warp"));
    for bad in ["every_hours = 0", "first_after_hours = 18446744073709551615"] {
        let text = format!("{GOOD}\n[training]\n{bad}\n");
        let refused = NodeConfig::parse(&text, Path::new("/")).unwrap_err().0;
        assert!(refused.contains("expected 1 to 87600 hours"), "{bad}: {refused}");
    }
    let unknown = format!("{GOOD}\n[training]\nevery_day = 1\n");
    assert!(NodeConfig::parse(&unknown, Path::new("/")).unwrap_err().0.contains("every_day"));
}
