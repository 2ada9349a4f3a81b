//! The QUIC adapter: quinn + rustls (ring), client certificates required in both directions,
//! TLS 1.3 only.
//!
//! A connection is not trusted until its first exchange: with TLS 1.3 a client whose
//! certificate the server rejected only learns it at its first stream operation
//! (STACK-NOTES), so the client sends `Hello` on a fresh stream and the connection counts as
//! authenticated only once the server's `Welcome` arrives. The peer's name, role and tags come
//! from its verified certificate alone (`identity::read_identity`).
//!
//! Every refusal is counted in `TransportStats` and returned with a reason naming it.
// The adapter is host code: it owns sockets and tasks (never called by actor code).
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

use crate::identity::{read_identity, Identity, Role};
use crate::wire::{self, FrameDecoder};

/// A node's QUIC endpoint (made by `NodeTls::bind`).
pub type Endpoint = quinn::Endpoint;
/// An authenticated connection's handle (cheap to clone).
pub type Connection = quinn::Connection;

/// ALPN of the node-to-node protocol (the wire version travels in every frame).
pub(super) const ALPN: &[u8] = b"aiot";
/// Largest handshake message read, in bytes.
const HANDSHAKE_LEN_MAX: usize = 64 * 1024;

/// Why a connection was refused or failed, with a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Certificates or keys could not be loaded.
    Config(String),
    /// The TLS handshake or the first exchange failed (certificate refused, peer gone...).
    Handshake(String),
    /// The peer's certificate is valid but its role is not allowed here.
    Role {
        peer: String,
        role: Role,
    },
    Io(String),
    /// The peer sent a frame the wire codec refuses (the connection is closed with it).
    Frame(wire::WireError),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Config(why) => write!(f, "transport configuration: {why}"),
            TransportError::Handshake(why) => write!(f, "handshake refused: {why}"),
            TransportError::Role { peer, role: Role::Admin } => {
                write!(f, "{peer} presented an admin certificate where a node certificate is required")
            }
            TransportError::Role { peer, role: Role::Node } => {
                write!(f, "{peer} presented a node certificate where an admin certificate is required")
            }
            TransportError::Io(why) => write!(f, "transport: {why}"),
            TransportError::Frame(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// Refusals and successes, by kind.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub accepted: AtomicU64,
    pub refused_expired: AtomicU64,
    pub refused_unknown_issuer: AtomicU64,
    pub refused_other_certificate: AtomicU64,
    pub refused_handshake: AtomicU64,
    pub refused_role: AtomicU64,
    /// Admin connections (the shell) accepted.
    pub accepted_admin: AtomicU64,
}

impl TransportStats {
    /// Refused connections by reason (`snake_case`, for reports and metric labels).
    pub fn refusals(&self) -> [(&'static str, u64); 5] {
        [
            ("expired", &self.refused_expired),
            ("unknown_issuer", &self.refused_unknown_issuer),
            ("other_certificate", &self.refused_other_certificate),
            ("handshake", &self.refused_handshake),
            ("role", &self.refused_role),
        ]
        .map(|(why, n)| (why, n.load(Relaxed)))
    }

    fn count_certificate(&self, error: &rustls::Error) {
        let counter = match error {
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => &self.refused_expired,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                &self.refused_unknown_issuer
            }
            _ => &self.refused_other_certificate,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// Counts why client certificates were refused, then defers to the webpki verifier.
#[derive(Debug)]
struct CountingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    stats: Arc<TransportStats>,
}

impl ClientCertVerifier for CountingVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| self.stats.count_certificate(e))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The first exchange on a new connection: a node says `Hello`, an admin (the shell) `Admin`;
/// the accepting node answers `Welcome`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Handshake {
    Hello { node: String },
    Welcome { node: String },
    Admin { name: String },
}

/// The cluster CA as the root of trust (shared with the admin client).
pub(super) fn roots(ca: CertificateDer<'static>) -> Result<Arc<RootCertStore>, TransportError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| TransportError::Config(e.to_string()))?;
    Ok(Arc::new(roots))
}

/// A node's TLS material: its identity and the quinn configs built from it.
pub struct NodeTls {
    pub me: Identity,
    server: quinn::ServerConfig,
    client: quinn::ClientConfig,
    pub stats: Arc<TransportStats>,
}

fn config_err(what: &Path, e: impl std::fmt::Display) -> TransportError {
    TransportError::Config(format!("{}: {e}", what.display()))
}

/// A node's or admin's PEM files, read once: the CA certificate, its own certificate and key.
pub(super) struct Material {
    pub(super) me: Identity,
    pub(super) ca: CertificateDer<'static>,
    pub(super) cert: CertificateDer<'static>,
    pub(super) key: PrivateKeyDer<'static>,
}

impl Material {
    pub(super) fn read(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let ca_der = CertificateDer::from_pem_file(ca).map_err(|e| config_err(ca, e))?;
        let cert_der = CertificateDer::from_pem_file(cert).map_err(|e| config_err(cert, e))?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| config_err(key, e))?;
        let me = read_identity(&cert_der).map_err(|e| config_err(cert, e))?;
        Ok(Material { me, ca: ca_der, cert: cert_der, key: key_der })
    }

    fn node(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let material = Self::read(ca, cert, key)?;
        if material.me.role != Role::Node {
            return Err(config_err(cert, "an admin certificate, where a node certificate is required"));
        }
        Ok(material)
    }
}

impl NodeTls {
    /// Loads the CA certificate and this node's certificate and key. `cert` must be a node
    /// certificate: its tags are what this node may claim.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TransportError> {
        Self::build(Material::node(ca, cert, key)?, true)
    }

    /// Loads an admin's certificate (the shell connects with one; a node refuses it as a peer).
    pub fn load_admin(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TransportError> {
        Self::build(Material::read(ca, cert, key)?, true)
    }

    /// Like `load`, but presents no client certificate (for tests of the refusal).
    #[doc(hidden)]
    pub fn without_client_certificate(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TransportError> {
        Self::build(Material::node(ca, cert, key)?, false)
    }

    /// Builds the server and client configs; `client_auth` false presents no client certificate.
    fn build(material: Material, client_auth: bool) -> Result<Self, TransportError> {
        let err = |e: &dyn std::fmt::Display| TransportError::Config(e.to_string());
        let Material { me, ca, cert, key } = material;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = roots(ca)?;
        let stats = Arc::new(TransportStats::default());
        let webpki = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| err(&e))?;
        let verifier = Arc::new(CountingVerifier { inner: webpki, stats: stats.clone() });
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| err(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.clone()], key.clone_key())
            .map_err(|e| err(&e))?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| err(&e))?
            .with_root_certificates(roots);
        let mut client = if client_auth {
            client.with_client_auth_cert(vec![cert], key).map_err(|e| err(&e))?
        } else {
            client.with_no_client_auth()
        };
        client.alpn_protocols = vec![ALPN.to_vec()];
        let server = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(server).map_err(|e| err(&e))?,
        ));
        let client =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).map_err(|e| err(&e))?));
        Ok(NodeTls { me, server, client, stats })
    }

    /// A QUIC endpoint on `addr` that accepts and makes connections with this identity.
    pub fn bind(&self, addr: SocketAddr) -> Result<quinn::Endpoint, TransportError> {
        let mut endpoint = quinn::Endpoint::server(self.server.clone(), addr)
            .map_err(|e| TransportError::Io(format!("cannot bind {addr}: {e}")))?;
        endpoint.set_default_client_config(self.client.clone());
        Ok(endpoint)
    }
}

/// An authenticated connection to another node.
pub struct Peer {
    pub connection: quinn::Connection,
    pub identity: Identity,
}

pub(super) fn peer_identity(connection: &quinn::Connection) -> Result<Identity, TransportError> {
    let certs = connection
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| TransportError::Handshake("the peer presented no certificate".into()))?;
    let first = certs.first().ok_or_else(|| TransportError::Handshake("empty certificate chain".into()))?;
    read_identity(first).map_err(|e| TransportError::Handshake(e.to_string()))
}

pub(super) async fn read_handshake(recv: &mut quinn::RecvStream) -> Result<Handshake, TransportError> {
    let bytes =
        recv.read_to_end(HANDSHAKE_LEN_MAX).await.map_err(|e| TransportError::Handshake(e.to_string()))?;
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    decoder
        .next_frame::<Handshake>()
        .map_err(|e| TransportError::Handshake(e.to_string()))?
        .ok_or_else(|| TransportError::Handshake("the peer closed the stream before its handshake".into()))
}

pub(super) async fn write_handshake(
    send: &mut quinn::SendStream,
    msg: &Handshake,
) -> Result<(), TransportError> {
    let mut bytes = Vec::new();
    wire::encode(msg, &mut bytes).map_err(|e| TransportError::Handshake(e.to_string()))?;
    send.write_all(&bytes).await.map_err(|e| TransportError::Handshake(e.to_string()))?;
    send.finish().map_err(|e| TransportError::Handshake(e.to_string()))
}

/// A failure on an established connection, with the peer's close reason when it gave one.
pub(super) fn closed_why(connection: &quinn::Connection, error: impl std::fmt::Display) -> TransportError {
    match connection.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => TransportError::Handshake(format!(
            "closed by the peer: {}",
            String::from_utf8_lossy(&close.reason)
        )),
        Some(reason) => TransportError::Handshake(format!("{error} ({reason})")),
        None => TransportError::Handshake(error.to_string()),
    }
}

/// Connects to the node `name` at `addr` and completes the first authenticated exchange.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    tls: &NodeTls,
    addr: SocketAddr,
    name: &str,
) -> Result<Peer, TransportError> {
    let connecting = endpoint.connect(addr, name).map_err(|e| TransportError::Io(e.to_string()))?;
    let connection = connecting.await.map_err(|e| TransportError::Handshake(e.to_string()))?;
    let identity = peer_identity(&connection)?;
    if identity.role != Role::Node {
        return Err(TransportError::Role { peer: identity.name, role: identity.role });
    }
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| closed_why(&connection, e))?;
    let hello = Handshake::Hello { node: tls.me.name.clone() };
    write_handshake(&mut send, &hello).await.map_err(|e| closed_why(&connection, e))?;
    match read_handshake(&mut recv).await.map_err(|e| closed_why(&connection, e))? {
        Handshake::Welcome { node } if node == identity.name => Ok(Peer { connection, identity }),
        other => Err(TransportError::Handshake(format!("unexpected answer {other:?}"))),
    }
}

/// An authenticated connection a node accepted: another node, or an admin's shell.
pub enum Accepted {
    Peer(Peer),
    Admin(AdminPeer),
}

/// An admin (an admin certificate and the `Admin` handshake): it asks, the node answers
/// (`transport::admin`).
pub struct AdminPeer {
    pub connection: quinn::Connection,
    pub identity: Identity,
}

/// Accepts the next connection and completes its first exchange; refusals are counted, closed
/// with their reason, and returned.
pub async fn accept(endpoint: &quinn::Endpoint, tls: &NodeTls) -> Option<Result<Accepted, TransportError>> {
    let incoming = endpoint.accept().await?;
    Some(accept_one(incoming, tls).await.inspect_err(|e| {
        let counter = match e {
            TransportError::Role { .. } => &tls.stats.refused_role,
            _ => &tls.stats.refused_handshake,
        };
        counter.fetch_add(1, Relaxed);
    }))
}

async fn accept_one(incoming: quinn::Incoming, tls: &NodeTls) -> Result<Accepted, TransportError> {
    let connection = incoming.await.map_err(|e| TransportError::Handshake(e.to_string()))?;
    let identity = peer_identity(&connection)?;
    let (mut send, mut recv) =
        connection.accept_bi().await.map_err(|e| TransportError::Handshake(e.to_string()))?;
    let handshake = read_handshake(&mut recv).await?;
    let expected = match handshake {
        Handshake::Hello { .. } => Role::Node,
        _ => Role::Admin,
    };
    if identity.role != expected {
        let refusal = TransportError::Role { peer: identity.name.clone(), role: identity.role };
        connection.close(1u32.into(), refusal.to_string().as_bytes());
        return Err(refusal);
    }
    let welcome = Handshake::Welcome { node: tls.me.name.clone() };
    match handshake {
        Handshake::Hello { node } if node == identity.name => {
            write_handshake(&mut send, &welcome).await?;
            tls.stats.accepted.fetch_add(1, Relaxed);
            Ok(Accepted::Peer(Peer { connection, identity }))
        }
        Handshake::Admin { name } if name == identity.name => {
            write_handshake(&mut send, &welcome).await?;
            tls.stats.accepted_admin.fetch_add(1, Relaxed);
            Ok(Accepted::Admin(AdminPeer { connection, identity }))
        }
        other => {
            let why = format!("{} opened with {other:?}, not its own Hello", identity.name);
            connection.close(2u32.into(), why.as_bytes());
            Err(TransportError::Handshake(why))
        }
    }
}

/// The halves of a connection's control stream (membership and directory traffic).
pub type ControlSend = quinn::SendStream;

/// Opens the control stream of a connection this node made (the peer accepts it once the first
/// frame arrives).
pub async fn open_control(peer: &Peer) -> Result<(ControlSend, FrameReader), TransportError> {
    let (send, recv) = peer.connection.open_bi().await.map_err(|e| closed_why(&peer.connection, e))?;
    Ok((send, FrameReader { recv, decoder: FrameDecoder::new() }))
}

/// Accepts the control stream of a connection the peer made.
pub async fn accept_control(peer: &Peer) -> Result<(ControlSend, FrameReader), TransportError> {
    let (send, recv) = peer.connection.accept_bi().await.map_err(|e| closed_why(&peer.connection, e))?;
    Ok((send, FrameReader { recv, decoder: FrameDecoder::new() }))
}

/// Writes one frame on a stream.
pub async fn send_frame<T: Serialize>(send: &mut ControlSend, msg: &T) -> Result<(), TransportError> {
    let mut bytes = Vec::new();
    wire::encode(msg, &mut bytes).map_err(|e| TransportError::Io(e.to_string()))?;
    send.write_all(&bytes).await.map_err(|e| TransportError::Io(e.to_string()))
}

/// Reads frames from a stream as they arrive.
pub struct FrameReader {
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
}

impl FrameReader {
    pub(super) fn new(recv: quinn::RecvStream) -> Self {
        FrameReader { recv, decoder: FrameDecoder::new() }
    }

    /// The next frame; `Ok(None)` when the peer finished the stream. A frame the codec refuses
    /// is `TransportError::Frame` (the caller closes the connection with it as the reason); a
    /// broken stream is `Io`.
    pub async fn next<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, TransportError> {
        loop {
            if let Some(msg) = self.decoder.next_frame::<T>().map_err(TransportError::Frame)? {
                return Ok(Some(msg));
            }
            match self.recv.read_chunk(wire::FRAME_LEN_MAX, true).await {
                Ok(Some(chunk)) => self.decoder.push(&chunk.bytes),
                Ok(None) => return Ok(None),
                Err(e) => return Err(TransportError::Io(e.to_string())),
            }
        }
    }
}

/// The sending half of a data lane (a unidirectional stream).
pub type LaneSend = quinn::SendStream;

/// Opens a data lane to the peer.
pub async fn open_lane(connection: &Connection) -> Result<LaneSend, TransportError> {
    connection.open_uni().await.map_err(|e| closed_why(connection, e))
}

/// Accepts the peer's next data lane; `None` once the connection is gone.
pub async fn accept_lane(connection: &Connection) -> Option<FrameReader> {
    let recv = connection.accept_uni().await.ok()?;
    Some(FrameReader { recv, decoder: FrameDecoder::new() })
}

/// Writes already-framed bytes (a batch of wire frames) on a lane.
pub async fn write_frames(send: &mut LaneSend, bytes: &[u8]) -> Result<(), TransportError> {
    send.write_all(bytes).await.map_err(|e| TransportError::Io(e.to_string()))
}
