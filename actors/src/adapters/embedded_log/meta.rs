//! The log's header file (`log.meta`): format version, the random salt of its nonces, the open
//! generation, and a key check (a known text sealed under generation 0) so that a wrong key is
//! refused at open, before anything is read or written.

use super::crypto::{LogKey, NonceId, Sealer, SALT_LEN};
use super::storage::Storage;
use crate::ports::eventlog::LogError;

pub const META_FILE: &str = "log.meta";
const MAGIC: &[u8; 8] = b"AIOTLOG1";
const CHECK_TEXT: &[u8] = b"aiot event log key check";
const CHECK_ID: NonceId = NonceId { generation: 0, sequence: 0 };

/// Opens (or creates) the header: the log's sealer and this open's generation, already stored.
pub fn open(storage: &dyn Storage, key: &LogKey) -> Result<(Sealer, u32), LogError> {
    let io = |e: std::io::Error| LogError::Io(format!("{META_FILE}: {e}"));
    let existing = storage.list().map_err(io)?.iter().any(|n| n == META_FILE);
    let (salt, generation) = if existing {
        let bytes = storage.read(META_FILE, 0, 4096).map_err(io)?;
        let (salt, generation, check) = parse(&bytes)?;
        if Sealer::new(key, salt).open(CHECK_ID, MAGIC, check).as_deref() != Some(CHECK_TEXT) {
            return Err(LogError::Invalid(
                "the configured key does not open this event log (a wrong key: every record would fail \
                 authentication)"
                    .into(),
            ));
        }
        (salt, generation.checked_add(1).ok_or_else(|| LogError::Invalid("open generations ran out".into()))?)
    } else {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| LogError::Io(format!("no randomness for the salt: {e}")))?;
        (salt, 1)
    };
    let sealer = Sealer::new(key, salt);
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&salt);
    header.extend_from_slice(&generation.to_le_bytes());
    header.extend_from_slice(&sealer.seal(CHECK_ID, MAGIC, CHECK_TEXT));
    storage.replace(META_FILE, &header).map_err(io)?;
    Ok((sealer, generation))
}

fn parse(bytes: &[u8]) -> Result<([u8; SALT_LEN], u32, &[u8]), LogError> {
    let fixed = MAGIC.len() + SALT_LEN + 4;
    if bytes.len() <= fixed || &bytes[..MAGIC.len()] != MAGIC {
        return Err(LogError::Corrupt(format!("{META_FILE} is not an aiot event log header")));
    }
    let salt = bytes[MAGIC.len()..MAGIC.len() + SALT_LEN].try_into().expect("salt length");
    let generation = u32::from_le_bytes(bytes[fixed - 4..fixed].try_into().expect("4 bytes"));
    Ok((salt, generation, &bytes[fixed..]))
}
