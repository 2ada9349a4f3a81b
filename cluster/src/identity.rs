//! Cluster identity: the CA, node and admin certificates with capability tags inside them, and
//! the model-signing ed25519 key pair (BLUEPRINT sections 4 and 10).
//!
//! # Encoding (so an operator can mint the same certificate with openssl)
//!
//! - Subject common name: the node's or admin's name.
//! - Subject alternative names:
//!   - `DNS:<name>` (nodes only: peers verify a node's TLS name against it);
//!   - `URI:aiot:role:node` or `URI:aiot:role:admin`;
//!   - one `URI:aiot:tag:<key>=<value>` per capability tag (nodes only).
//! - Extended key usage: serverAuth and clientAuth for nodes, clientAuth for admins.
//!
//! ```text
//! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout n1.key \
//!     -subj "/CN=inference-1" -out n1.csr
//! openssl x509 -req -in n1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out n1.pem \
//!     -extfile <(printf '%s\n' \
//!       'subjectAltName=DNS:inference-1,URI:aiot:role:node,URI:aiot:tag:tier=inference,URI:aiot:tag:accel=gpu' \
//!       'extendedKeyUsage=serverAuth,clientAuth')
//! ```
//!
//! Files in a CA directory: `ca.pem` and `ca.key` (the cluster CA), `model-signing.key`
//! (ed25519, PKCS#8 PEM) and `model-signing.pub` (its 32-byte public key, hex). Issued
//! certificates go to `<name>.pem` and `<name>.key`. Private keys are written with mode 0600
//! and never printed or logged. Nothing is ever overwritten.
//!
//! Reading the wall clock here is deliberate: certificates are minted by an operator's command,
//! never by actor code.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aiot_runtime::placement::TagMatch;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use time::{Duration, OffsetDateTime};

/// SAN URI prefix of a capability tag: `aiot:tag:tier=inference`.
pub const TAG_URI_PREFIX: &str = "aiot:tag:";
/// SAN URI of a node certificate's role.
pub const ROLE_NODE_URI: &str = "aiot:role:node";
/// SAN URI of an admin certificate's role.
pub const ROLE_ADMIN_URI: &str = "aiot:role:admin";
/// Default validity of an issued certificate.
pub const CERT_DAYS_DEFAULT: u32 = 365;
/// Validity of the CA certificate.
pub const CA_DAYS: u32 = 3650;

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SIGNING_KEY_FILE: &str = "model-signing.key";
pub const SIGNING_PUB_FILE: &str = "model-signing.pub";

/// What a certificate lets its holder be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Node,
    Admin,
}

/// Who a certificate names, as this crate reads it: the only source of a peer's name and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// Capability tags the CA attested (empty for admins).
    pub tags: BTreeMap<String, String>,
}

/// Why a CA operation or a certificate was refused. Each names the file, name or field at fault.
#[derive(Debug)]
pub enum IdentityError {
    /// Refusing to overwrite an existing file.
    Exists(PathBuf),
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A name that is not a DNS label (`[a-z0-9-]`, 1 to 63 characters, no leading or trailing `-`).
    BadName(String),
    /// A tag that is not `key=value`.
    BadTag {
        tag: String,
        reason: String,
    },
    /// The CA files could not be read back as a CA.
    BadCa {
        path: PathBuf,
        reason: String,
    },
    /// A certificate that does not follow the encoding above.
    BadCertificate(String),
    Crypto(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Exists(p) => write!(f, "{} already exists: refusing to overwrite it", p.display()),
            IdentityError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            IdentityError::BadName(n) => write!(
                f,
                "bad name {n:?}: use 1 to 63 lowercase letters, digits or '-', not starting or ending with '-'"
            ),
            IdentityError::BadTag { tag, reason } => write!(f, "bad tag {tag:?}: {reason}"),
            IdentityError::BadCa { path, reason } => write!(f, "bad CA file {}: {reason}", path.display()),
            IdentityError::BadCertificate(why) => write!(f, "bad certificate: {why}"),
            IdentityError::Crypto(why) => write!(f, "crypto: {why}"),
        }
    }
}

impl std::error::Error for IdentityError {}

fn crypto(e: impl fmt::Display) -> IdentityError {
    IdentityError::Crypto(e.to_string())
}

/// Checks a node or admin name (it becomes a DNS name in node certificates).
pub fn check_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadName(name.to_string()))
    }
}

/// Parses `tier=inference,accel=gpu` into tags; values must be exact (no `*`), keys unique.
pub fn parse_tags(text: &str) -> Result<BTreeMap<String, String>, IdentityError> {
    let mut tags = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |reason: &str| IdentityError::BadTag { tag: part.to_string(), reason: reason.to_string() };
        let tag = TagMatch::parse(part).map_err(|e| bad(e.reason))?;
        let value = tag.value.ok_or_else(|| bad("a certificate attests exact values, not '*'"))?;
        if tags.insert(tag.key, value).is_some() {
            return Err(bad("the key appears twice"));
        }
    }
    Ok(tags)
}

/// Writes `contents` to a new file (never overwriting); `secret` files get mode 0600.
fn write_new(path: &Path, contents: &[u8], secret: bool) -> Result<(), IdentityError> {
    let io = |error| IdentityError::Io { path: path.to_path_buf(), error };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => IdentityError::Exists(path.to_path_buf()),
        _ => io(error),
    })?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

fn read(path: &Path) -> Result<String, IdentityError> {
    fs::read_to_string(path).map_err(|error| IdentityError::Io { path: path.to_path_buf(), error })
}

/// What `init_ca` made.
#[derive(Debug, Clone)]
pub struct CaCreated {
    pub ca_cert: PathBuf,
    /// The model-signing public key, hex (safe to print: it is public).
    pub signing_public_hex: String,
}

/// Creates a cluster CA and the model-signing key pair in `dir` (created if missing).
pub fn init_ca(dir: &Path, cluster: &str) -> Result<CaCreated, IdentityError> {
    fs::create_dir_all(dir).map_err(|error| IdentityError::Io { path: dir.to_path_buf(), error })?;
    for file in [CA_CERT_FILE, CA_KEY_FILE, SIGNING_KEY_FILE, SIGNING_PUB_FILE] {
        if dir.join(file).exists() {
            return Err(IdentityError::Exists(dir.join(file)));
        }
    }
    let key = KeyPair::generate().map_err(crypto)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("aiot cluster CA {cluster}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(CA_DAYS));
    let cert = params.self_signed(&key).map_err(crypto)?;

    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(crypto)?;
    let signing = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(crypto)?;
    let public_hex: String = signing.public_key().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let signing_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));

    write_new(&dir.join(CA_KEY_FILE), key.serialize_pem().as_bytes(), true)?;
    write_new(&dir.join(CA_CERT_FILE), cert.pem().as_bytes(), false)?;
    write_new(&dir.join(SIGNING_KEY_FILE), signing_pem.as_bytes(), true)?;
    write_new(&dir.join(SIGNING_PUB_FILE), format!("{public_hex}\n").as_bytes(), false)?;
    Ok(CaCreated { ca_cert: dir.join(CA_CERT_FILE), signing_public_hex: public_hex })
}

/// What to issue a certificate for.
#[derive(Debug, Clone)]
pub enum Subject {
    Node { name: String, tags: BTreeMap<String, String> },
    Admin { name: String },
}

/// When an issued certificate is valid: from `not_before` for `days` (tests issue expired ones).
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub days: u32,
}

impl Validity {
    /// From five minutes ago (clock skew) for `days`.
    pub fn from_now(days: u32) -> Self {
        Validity { not_before: OffsetDateTime::now_utc() - Duration::minutes(5), days }
    }
}

/// Where `issue` wrote the certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Issues a certificate signed by the CA in `ca_dir`, written to `out_dir/<name>.{pem,key}`.
pub fn issue(
    ca_dir: &Path,
    out_dir: &Path,
    subject: &Subject,
    validity: Validity,
) -> Result<Issued, IdentityError> {
    let (name, role_uri, tags) = match subject {
        Subject::Node { name, tags } => (name, ROLE_NODE_URI, Some(tags)),
        Subject::Admin { name } => (name, ROLE_ADMIN_URI, None),
    };
    check_name(name)?;
    let (cert_path, key_path) = (out_dir.join(format!("{name}.pem")), out_dir.join(format!("{name}.key")));
    for path in [&cert_path, &key_path] {
        if path.exists() {
            return Err(IdentityError::Exists(path.clone()));
        }
    }
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?)
        .map_err(|e| IdentityError::BadCa { path: ca_key_path.clone(), reason: e.to_string() })?;
    let ca_cert_path = ca_dir.join(CA_CERT_FILE);
    let issuer = Issuer::from_ca_cert_pem(&read(&ca_cert_path)?, ca_key)
        .map_err(|e| IdentityError::BadCa { path: ca_cert_path, reason: e.to_string() })?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.clone());
    params.distinguished_name = dn;
    let uri = |s: String| s.try_into().map(SanType::URI).map_err(crypto);
    let mut sans = vec![uri(role_uri.to_string())?];
    if let Some(tags) = tags {
        sans.insert(0, SanType::DnsName(name.clone().try_into().map_err(crypto)?));
        for (key, value) in tags {
            sans.push(uri(format!("{TAG_URI_PREFIX}{key}={value}"))?);
        }
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    } else {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = validity.not_before;
    params.not_after = validity.not_before + Duration::days(i64::from(validity.days));
    let key = KeyPair::generate().map_err(crypto)?;
    let cert = params.signed_by(&key, &issuer).map_err(crypto)?;

    fs::create_dir_all(out_dir).map_err(|error| IdentityError::Io { path: out_dir.to_path_buf(), error })?;
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(Issued { cert: cert_path, key: key_path })
}

/// Reads the name, role and attested tags from a certificate (DER). Chain validation is the
/// TLS layer's job; this only reads what a valid certificate says, and refuses one that does
/// not follow the encoding.
pub fn read_identity(der: &[u8]) -> Result<Identity, IdentityError> {
    let bad = |why: String| IdentityError::BadCertificate(why);
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(format!("not X.509: {e}")))?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| bad("no subject common name".into()))?
        .to_string();
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| bad(format!("unreadable subject alternative names: {e}")))?
        .ok_or_else(|| bad(format!("{name}: no subject alternative names (no role)")))?;
    let mut role = None;
    let mut tags = BTreeMap::new();
    for general_name in &sans.value.general_names {
        let x509_parser::extensions::GeneralName::URI(uri) = general_name else { continue };
        if *uri == ROLE_NODE_URI || *uri == ROLE_ADMIN_URI {
            let this = if *uri == ROLE_NODE_URI { Role::Node } else { Role::Admin };
            if role.replace(this).is_some_and(|r| r != this) {
                return Err(bad(format!("{name}: both node and admin roles")));
            }
        } else if let Some(tag) = uri.strip_prefix(TAG_URI_PREFIX) {
            let parsed = parse_tags(tag).map_err(|e| bad(format!("{name}: {e}")))?;
            for (key, value) in parsed {
                if tags.insert(key.clone(), value).is_some() {
                    return Err(bad(format!("{name}: tag {key} appears twice")));
                }
            }
        }
    }
    let role =
        role.ok_or_else(|| bad(format!("{name}: no role URI ({ROLE_NODE_URI} or {ROLE_ADMIN_URI})")))?;
    if role == Role::Admin && !tags.is_empty() {
        return Err(bad(format!("{name}: an admin certificate carries no capability tags")));
    }
    Ok(Identity { name, role, tags })
}

/// Reads the first certificate of a PEM file as DER.
pub fn read_pem_cert(path: &Path) -> Result<Vec<u8>, IdentityError> {
    let text = read(path)?;
    let block =
        pem::parse(&text).map_err(|e| IdentityError::BadCertificate(format!("{}: {e}", path.display())))?;
    if block.tag() != "CERTIFICATE" {
        return Err(IdentityError::BadCertificate(format!(
            "{}: a {} block, not a CERTIFICATE",
            path.display(),
            block.tag()
        )));
    }
    Ok(block.contents().to_vec())
}
