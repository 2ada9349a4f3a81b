//! Mutual-TLS QUIC between nodes, against real certificates from the cluster CA: a valid node
//! joins, and each refusal (no client certificate, another CA, an expired certificate, an admin
//! certificate where a node one is required) is refused, counted and explained.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use aiot_cluster::identity::{init_ca, issue, parse_tags, Role, Subject, Validity};
use aiot_cluster::transport::quic::{accept, connect, Accepted, NodeTls, Peer, TransportError};

const STEP_MAX: Duration = Duration::from_secs(10);

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
}

fn node(dir: &Path, ca_dir: &Path, name: &str, tags: &str, validity: Validity) {
    let subject = Subject::Node { name: name.into(), tags: parse_tags(tags).unwrap() };
    issue(ca_dir, dir, &subject, validity).unwrap();
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ca, other_ca) = (dir.path().join("ca"), dir.path().join("other-ca"));
    init_ca(&ca, "plant").unwrap();
    init_ca(&other_ca, "elsewhere").unwrap();
    node(&ca, &ca, "inference-1", "tier=inference", Validity::from_now(30));
    node(&ca, &ca, "platform-1", "tier=platform", Validity::from_now(30));
    let past = Validity { not_before: time::OffsetDateTime::now_utc() - time::Duration::days(10), days: 2 };
    node(&ca, &ca, "old", "tier=things", past);
    issue(&ca, &ca, &Subject::Admin { name: "ops".into() }, Validity::from_now(30)).unwrap();
    node(&other_ca, &other_ca, "intruder", "tier=platform", Validity::from_now(30));
    Pki { _dir: dir, ca, other_ca }
}

fn tls(pki: &Pki, name: &str) -> NodeTls {
    NodeTls::load(
        &pki.ca.join("ca.pem"),
        &pki.ca.join(format!("{name}.pem")),
        &pki.ca.join(format!("{name}.key")),
    )
    .unwrap()
}

fn localhost() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Runs a server for `inference-1` and a client with `client`; returns both outcomes.
async fn attempt(
    pki: &Pki,
    client: NodeTls,
) -> (NodeTls, Result<Peer, TransportError>, Result<Peer, TransportError>) {
    let server = tls(pki, "inference-1");
    let server_endpoint = server.bind(localhost()).unwrap();
    let addr = server_endpoint.local_addr().unwrap();
    let client_endpoint = client.bind(localhost()).unwrap();
    let (accepted, connected) = tokio::join!(
        async {
            tokio::time::timeout(STEP_MAX, accept(&server_endpoint, &server)).await.expect("accept in time")
        },
        async {
            let outcome =
                tokio::time::timeout(STEP_MAX, connect(&client_endpoint, &client, addr, "inference-1")).await;
            outcome.expect("connect in time")
        }
    );
    let accepted = accepted.expect("an incoming connection").map(|a| match a {
        Accepted::Peer(peer) => peer,
        Accepted::Admin(admin) => panic!("{} accepted as an admin", admin.identity.name),
    });
    (server, accepted, connected)
}

#[tokio::test]
async fn a_valid_node_joins_and_each_side_reads_the_other_from_its_certificate() {
    let pki = pki();
    let (server, accepted, connected) = attempt(&pki, tls(&pki, "platform-1")).await;
    let (accepted, connected) = (accepted.unwrap(), connected.unwrap());
    assert_eq!((accepted.identity.name.as_str(), accepted.identity.role), ("platform-1", Role::Node));
    assert_eq!(accepted.identity.tags.get("tier").map(String::as_str), Some("platform"));
    assert_eq!(connected.identity.tags.get("tier").map(String::as_str), Some("inference"));
    assert_eq!(server.stats.accepted.load(Relaxed), 1);
    // The connection carries data once authenticated.
    let (mut send, _recv) = connected.connection.open_bi().await.unwrap();
    send.write_all(b"ping").await.unwrap();
    send.finish().unwrap();
    let (_send, mut recv) = accepted.connection.accept_bi().await.unwrap();
    assert_eq!(recv.read_to_end(16).await.unwrap(), b"ping");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = pki();
    let client = NodeTls::without_client_certificate(
        &pki.ca.join("ca.pem"),
        &pki.ca.join("platform-1.pem"),
        &pki.ca.join("platform-1.key"),
    )
    .unwrap();
    let (server, accepted, connected) = attempt(&pki, client).await;
    let server_err = accepted.err().expect("refused by the server").to_string();
    assert!(server_err.contains("certificate"), "{server_err}");
    assert!(connected.is_err(), "the client learns it at its first exchange");
    assert_eq!(server.stats.refused_handshake.load(Relaxed), 1);
    assert_eq!(server.stats.accepted.load(Relaxed), 0);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_as_unknown_issuer() {
    let pki = pki();
    let dir = &pki.other_ca;
    let client =
        NodeTls::load(&pki.ca.join("ca.pem"), &dir.join("intruder.pem"), &dir.join("intruder.key")).unwrap();
    let (server, accepted, connected) = attempt(&pki, client).await;
    assert!(accepted.is_err() && connected.is_err());
    assert_eq!(server.stats.refused_unknown_issuer.load(Relaxed), 1);
    assert_eq!(server.stats.accepted.load(Relaxed), 0);
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let pki = pki();
    let (server, accepted, connected) = attempt(&pki, tls(&pki, "old")).await;
    assert!(accepted.is_err() && connected.is_err());
    assert_eq!(server.stats.refused_expired.load(Relaxed), 1);
}

#[tokio::test]
async fn an_admin_certificate_where_a_node_is_required_is_refused_with_the_reason() {
    let pki = pki();
    let refused = NodeTls::load(&pki.ca.join("ca.pem"), &pki.ca.join("ops.pem"), &pki.ca.join("ops.key"));
    assert!(refused
        .err()
        .unwrap()
        .to_string()
        .contains("an admin certificate, where a node certificate is required"));
    let admin = NodeTls::load_admin(&pki.ca.join("ca.pem"), &pki.ca.join("ops.pem"), &pki.ca.join("ops.key"))
        .unwrap();
    let (server, accepted, connected) = attempt(&pki, admin).await;
    assert_eq!(accepted.err(), Some(TransportError::Role { peer: "ops".into(), role: Role::Admin }));
    let client_err = connected.err().expect("closed by the server").to_string();
    assert!(
        client_err.contains(
            "closed by the peer: ops presented an admin certificate where a node certificate is required"
        ),
        "{client_err}"
    );
    assert_eq!(server.stats.refused_role.load(Relaxed), 1);
}
