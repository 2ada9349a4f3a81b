//! The admin side of the QUIC transport: the shell connects to any node of the cluster with an
//! admin certificate, and asks; and the node's side of one exchange.
//!
//! The shell knows an address, not a node name, so it accepts any server certificate the
//! cluster CA issued to a node (the chain is verified, and the certificate against its own
//! name); it then says `Admin` and the node answers `Welcome` with its name. Each request
//! is one stream: a frame there, a frame back.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::quic::{
    closed_why, peer_identity, read_handshake, roots, write_handshake, FrameReader, Handshake, Material,
    TransportError, ALPN,
};
use crate::admin::{AdminRequest, AdminResponse};
use crate::identity::{read_identity, Identity, Role};
use crate::wire;

/// The name the shell dials by (certificates are checked against their own name instead).
const ANY_NODE: &str = "aiot-node";
/// How often an admin connection says it is alive while it waits for an answer.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

/// Accepts a server certificate the cluster CA issued to a node, whatever its name.
#[derive(Debug)]
struct AnyClusterNode {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyClusterNode {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let identity = read_identity(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        if identity.role != Role::Node {
            return Err(rustls::Error::General(format!("{} is not a node certificate", identity.name)));
        }
        let name = ServerName::try_from(identity.name).map_err(|e| rustls::Error::General(e.to_string()))?;
        self.inner.verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
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

/// An admin's client endpoint (the shell's).
pub struct AdminClient {
    pub me: Identity,
    endpoint: quinn::Endpoint,
}

impl AdminClient {
    /// Loads the CA certificate and an admin certificate and key, and opens a client endpoint.
    /// Call from within a tokio runtime.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TransportError> {
        let material = Material::read(ca, cert, key)?;
        if material.me.role != Role::Admin {
            return Err(TransportError::Config(format!(
                "{}: a node certificate, where an admin certificate is required",
                cert.display()
            )));
        }
        Self::build(material)
    }

    /// Like `load`, but with any certificate of the CA (for tests of the node's refusal).
    #[doc(hidden)]
    pub fn load_unchecked(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TransportError> {
        Self::build(Material::read(ca, cert, key)?)
    }

    fn build(material: Material) -> Result<Self, TransportError> {
        let err = |e: &dyn std::fmt::Display| TransportError::Config(e.to_string());
        let Material { me, ca, cert: cert_der, key: key_der } = material;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider.clone())
            .build()
            .map_err(|e| err(&e))?;
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| err(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyClusterNode { inner }))
            .with_client_auth_cert(vec![cert_der], key_der)
            .map_err(|e| err(&e))?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        let mut client =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).map_err(|e| err(&e))?));
        // Keep-alives: a move may take longer than the idle timeout to answer.
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        client.transport_config(Arc::new(transport));
        let bind: SocketAddr = "0.0.0.0:0".parse().expect("a valid address");
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| TransportError::Io(e.to_string()))?;
        endpoint.set_default_client_config(client);
        Ok(AdminClient { me, endpoint })
    }

    /// Connects to the node at `addr` and completes the admin handshake.
    pub async fn connect(&self, addr: SocketAddr) -> Result<AdminConnection, TransportError> {
        let connecting =
            self.endpoint.connect(addr, ANY_NODE).map_err(|e| TransportError::Io(e.to_string()))?;
        let connection = connecting.await.map_err(|e| TransportError::Handshake(e.to_string()))?;
        let node = peer_identity(&connection)?.name;
        let (mut send, mut recv) = connection.open_bi().await.map_err(|e| closed_why(&connection, e))?;
        let hello = Handshake::Admin { name: self.me.name.clone() };
        write_handshake(&mut send, &hello).await.map_err(|e| closed_why(&connection, e))?;
        match read_handshake(&mut recv).await.map_err(|e| closed_why(&connection, e))? {
            Handshake::Welcome { node: said } if said == node => Ok(AdminConnection { connection, node }),
            other => Err(TransportError::Handshake(format!("{node} answered {other:?}"))),
        }
    }
}

/// An admin's connection to one node.
pub struct AdminConnection {
    connection: quinn::Connection,
    /// The node's name, from its certificate (its `Welcome` must say the same).
    pub node: String,
}

impl AdminConnection {
    /// Asks one thing and waits for the answer.
    pub async fn ask(&self, request: &AdminRequest) -> Result<AdminResponse, TransportError> {
        let io = |e: &dyn std::fmt::Display| TransportError::Io(e.to_string());
        let (mut send, recv) =
            self.connection.open_bi().await.map_err(|e| closed_why(&self.connection, e))?;
        let mut bytes = Vec::new();
        wire::encode(request, &mut bytes).map_err(|e| io(&e))?;
        send.write_all(&bytes).await.map_err(|e| io(&e))?;
        send.finish().map_err(|e| io(&e))?;
        let mut reader = FrameReader::new(recv);
        reader
            .next::<AdminResponse>()
            .await?
            .ok_or_else(|| TransportError::Io(format!("{} closed the stream without an answer", self.node)))
    }

    pub fn close(&self) {
        self.connection.close(0u32.into(), b"done");
    }
}

/// The node's side: the next request on an admin connection and where its answer goes;
/// `None` once the admin is gone.
pub async fn next_request(
    connection: &quinn::Connection,
) -> Option<Result<(AdminRequest, quinn::SendStream), TransportError>> {
    let (send, recv) = connection.accept_bi().await.ok()?;
    let mut reader = FrameReader::new(recv);
    Some(match reader.next::<AdminRequest>().await {
        Ok(Some(request)) => Ok((request, send)),
        Ok(None) => Err(TransportError::Io("the admin closed a stream without a request".into())),
        Err(e) => Err(e),
    })
}

/// Writes the answer and finishes the stream.
pub async fn answer(mut send: quinn::SendStream, response: &AdminResponse) -> Result<(), TransportError> {
    let mut bytes = Vec::new();
    wire::encode(response, &mut bytes).map_err(|e| TransportError::Io(e.to_string()))?;
    send.write_all(&bytes).await.map_err(|e| TransportError::Io(e.to_string()))?;
    send.finish().map_err(|e| TransportError::Io(e.to_string()))
}
