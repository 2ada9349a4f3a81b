//! Encryption at rest (BLUEPRINT section 10, "Data at rest"): XChaCha20-Poly1305 under a 32-byte
//! key from configuration.
//!
//! Nonces never repeat under one key: a nonce is the log's random 12-byte salt (made when the
//! log is created), the open generation (incremented and stored durably at every open, before
//! anything is written) and a sequence number counted by the one writer thread within that
//! generation. A torn record cut by recovery and rewritten at the same offset therefore gets a
//! new nonce, and two logs sharing a key differ by salt. The additional data binds each record
//! to its place (topic, partition, offset, timestamp): a record copied elsewhere fails to open.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Bytes an AEAD tag adds.
pub const TAG_LEN: usize = 16;
/// Bytes of the per-log salt.
pub const SALT_LEN: usize = 12;

/// The key data at rest is encrypted with. Its `Debug` never shows it.
#[derive(Clone)]
pub struct LogKey(pub [u8; 32]);

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogKey(..)")
    }
}

/// Where a nonce comes from: (generation, sequence) is unique within a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceId {
    pub generation: u32,
    pub sequence: u64,
}

/// Seals and opens records of one log.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    salt: [u8; SALT_LEN],
}

impl Sealer {
    pub fn new(key: &LogKey, salt: [u8; SALT_LEN]) -> Self {
        Sealer { cipher: XChaCha20Poly1305::new((&key.0).into()), salt }
    }

    fn nonce(&self, id: NonceId) -> XNonce {
        let mut nonce = [0u8; 24];
        nonce[..SALT_LEN].copy_from_slice(&self.salt);
        nonce[SALT_LEN..SALT_LEN + 4].copy_from_slice(&id.generation.to_le_bytes());
        nonce[SALT_LEN + 4..].copy_from_slice(&id.sequence.to_le_bytes());
        nonce.into()
    }

    /// Encrypts `plain`, authenticating `aad` with it.
    pub fn seal(&self, id: NonceId, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        self.cipher
            .encrypt(&self.nonce(id), Payload { msg: plain, aad })
            .expect("XChaCha20-Poly1305 seals any message under 256 GiB")
    }

    /// Decrypts `sealed`; `None` if it (or `aad`) was altered or the key is not the one it was
    /// sealed with.
    pub fn open(&self, id: NonceId, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.cipher.decrypt(&self.nonce(id), Payload { msg: sealed, aad }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_records_open_only_unaltered_under_their_nonce_and_key() {
        let sealer = Sealer::new(&LogKey([7; 32]), [1; SALT_LEN]);
        let id = NonceId { generation: 1, sequence: 9 };
        let sealed = sealer.seal(id, b"place", b"payload");
        assert_eq!(sealer.open(id, b"place", &sealed).as_deref(), Some(&b"payload"[..]));
        assert_eq!(sealed.len(), b"payload".len() + TAG_LEN);
        assert!(sealer.open(NonceId { sequence: 10, ..id }, b"place", &sealed).is_none(), "another nonce");
        assert!(sealer.open(id, b"elsewhere", &sealed).is_none(), "another place");
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(sealer.open(id, b"place", &flipped).is_none(), "a flipped byte");
        let other = Sealer::new(&LogKey([8; 32]), [1; SALT_LEN]);
        assert!(other.open(id, b"place", &sealed).is_none(), "another key");
        assert!(!format!("{:?}", LogKey([7; 32])).contains('7'), "a key's Debug shows it");
    }
}
