//! Mote credentials (`aiot motes provision`): per mote an MQTT login, the 32-byte HMAC key of
//! the mote protocol, and the model-signing public key made by `aiot ca init`.
//!
//! Two files come out of provisioning: `fleet.toml` with every mote's credentials, for the
//! cluster (the gateway verifies frames with the keys; the embedded broker checks the logins),
//! and `mote-{id}.toml` per mote, what that one mote is given. Keys are hex in the files and
//! never printed. This module is the format only; the binary does the file IO.

use std::collections::BTreeMap;
use std::fmt;

use aiot_firmware::protocol::{MoteId, MoteKey};
use serde::{Deserialize, Serialize};

/// What one mote is provisioned with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoteCredentials {
    pub mote: u32,
    pub mqtt_user: String,
    pub mqtt_password: String,
    /// HMAC-SHA256 key of the mote protocol, 64 hex digits.
    pub hmac_key: String,
    /// ed25519 public key that signs models (OTA), 64 hex digits.
    pub model_signing_public: String,
}

impl fmt::Debug for MoteCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MoteCredentials(mote-{}, user {})", self.mote, self.mqtt_user)
    }
}

impl MoteCredentials {
    pub fn id(&self) -> MoteId {
        MoteId(self.mote)
    }

    pub fn key(&self) -> Result<MoteKey, ProvisionError> {
        Ok(MoteKey(
            hex32(&self.hmac_key).map_err(|e| ProvisionError(format!("mote-{}: hmac_key {e}", self.mote)))?,
        ))
    }

    pub fn signing_public(&self) -> Result<[u8; 32], ProvisionError> {
        hex32(&self.model_signing_public)
            .map_err(|e| ProvisionError(format!("mote-{}: model_signing_public {e}", self.mote)))
    }

    /// Checks every field, naming the first bad one.
    pub fn check(&self) -> Result<(), ProvisionError> {
        self.key()?;
        self.signing_public()?;
        if self.mqtt_user.is_empty() || self.mqtt_password.is_empty() {
            return Err(ProvisionError(format!("mote-{}: empty MQTT login", self.mote)));
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("credentials serialize")
    }

    pub fn from_toml(text: &str) -> Result<Self, ProvisionError> {
        let credentials: MoteCredentials = toml::from_str(text).map_err(|e| ProvisionError(e.to_string()))?;
        credentials.check()?;
        Ok(credentials)
    }
}

/// An MQTT login of the cluster's own (the gateway) or of the maintenance crew.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Login({})", self.user)
    }
}

/// Every mote's credentials, and the gateway's and the crew's logins (`fleet.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    pub gateway: Login,
    pub crew: Login,
    #[serde(rename = "mote")]
    pub motes: Vec<MoteCredentials>,
}

impl Fleet {
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("fleet serializes")
    }

    /// Parses and checks a fleet file: every key well formed, no mote listed twice.
    pub fn from_toml(text: &str) -> Result<Self, ProvisionError> {
        let fleet: Fleet = toml::from_str(text).map_err(|e| ProvisionError(e.to_string()))?;
        for (who, login) in [("gateway", &fleet.gateway), ("crew", &fleet.crew)] {
            if login.user.is_empty() || login.password.is_empty() {
                return Err(ProvisionError(format!("the {who} login is empty")));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &fleet.motes {
            m.check()?;
            if !seen.insert(m.mote) {
                return Err(ProvisionError(format!("mote-{} is listed twice", m.mote)));
            }
        }
        Ok(fleet)
    }

    /// The gateway's view: each mote's frame key.
    pub fn keys(&self) -> KeyRing {
        KeyRing(self.motes.iter().map(|m| (m.mote, m.key().expect("checked when parsed"))).collect())
    }

    /// The broker's view: user name -> password, motes, gateway and crew.
    pub fn logins(&self) -> BTreeMap<String, String> {
        let cluster = [&self.gateway, &self.crew].into_iter().map(|l| (l.user.clone(), l.password.clone()));
        self.motes.iter().map(|m| (m.mqtt_user.clone(), m.mqtt_password.clone())).chain(cluster).collect()
    }

    /// A Mosquitto ACL file: each mote may only publish its up topic and read its down topic;
    /// the gateway reads and writes every `aiot/` topic; the crew its maintenance topics.
    pub fn mosquitto_acl(&self) -> String {
        let mut acl = format!(
            "user {}\ntopic readwrite aiot/#\n\nuser {}\ntopic readwrite aiot/maintenance/#\n",
            self.gateway.user, self.crew.user
        );
        for m in &self.motes {
            let id = m.id();
            acl.push_str(&format!(
                "\nuser {}\ntopic write {}\ntopic read {}\n",
                m.mqtt_user,
                id.up_topic(),
                id.down_topic()
            ));
        }
        acl
    }

    pub fn get(&self, mote: MoteId) -> Option<&MoteCredentials> {
        self.motes.iter().find(|m| m.mote == mote.0)
    }
}

/// Frame keys by mote.
#[derive(Clone, Default)]
pub struct KeyRing(BTreeMap<u32, MoteKey>);

impl KeyRing {
    pub fn get(&self, mote: MoteId) -> Option<&MoteKey> {
        self.0.get(&mote.0)
    }

    pub fn motes(&self) -> impl Iterator<Item = MoteId> + '_ {
        self.0.keys().map(|m| MoteId(*m))
    }

    pub fn insert(&mut self, mote: MoteId, key: MoteKey) {
        self.0.insert(mote.0, key);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({} motes)", self.0.len())
    }
}

/// A credentials file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionError(pub String);

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProvisionError {}

/// 32 bytes from their hex (surrounding whitespace ignored).
pub fn hex32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("is not hex: {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| format!("has {} bytes, not 32", b.len()))
}

/// Hex of 32 bytes, as the files hold keys.
pub fn to_hex(bytes: &[u8; 32]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mote(id: u32) -> MoteCredentials {
        MoteCredentials {
            mote: id,
            mqtt_user: format!("mote-{id}"),
            mqtt_password: "pw".into(),
            hmac_key: to_hex(&[id as u8; 32]),
            model_signing_public: to_hex(&[9; 32]),
        }
    }

    fn fleet(motes: Vec<MoteCredentials>) -> Fleet {
        let login = |user: &str| Login { user: user.into(), password: format!("{user}-pw") };
        Fleet { gateway: login("gw"), crew: login("crew"), motes }
    }

    #[test]
    fn fleet_files_round_trip_and_give_keys_and_logins() {
        let fleet = fleet(vec![mote(1), mote(2)]);
        let back = Fleet::from_toml(&fleet.to_toml()).unwrap();
        assert_eq!(back, fleet);
        assert_eq!(back.keys().get(MoteId(2)).unwrap().0, [2; 32]);
        assert_eq!(back.logins()["mote-1"], "pw");
        assert_eq!(back.logins()["gw"], "gw-pw");
        let acl = back.mosquitto_acl();
        assert!(
            acl.contains("user mote-2\ntopic write aiot/mote-2/up\ntopic read aiot/mote-2/down\n"),
            "{acl}"
        );
        assert_eq!(MoteCredentials::from_toml(&mote(3).to_toml()).unwrap(), mote(3));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let mut short = mote(1);
        short.hmac_key = "abcd".into();
        let err = MoteCredentials::from_toml(&short.to_toml()).unwrap_err();
        assert!(err.0.contains("mote-1: hmac_key has 2 bytes"), "{err}");
        let twice = fleet(vec![mote(1), mote(1)]);
        assert!(Fleet::from_toml(&twice.to_toml()).unwrap_err().0.contains("listed twice"));
        let mut not_hex = mote(4);
        not_hex.model_signing_public = "zz".repeat(32);
        assert!(Fleet::from_toml(&fleet(vec![not_hex]).to_toml())
            .unwrap_err()
            .0
            .contains("model_signing_public is not hex"));
        let no_gateway = Fleet { gateway: Login::default(), ..fleet(vec![]) };
        assert!(Fleet::from_toml(&no_gateway.to_toml()).unwrap_err().0.contains("gateway login is empty"));
        assert!(format!("{:?}", mote(5)).find("pw").is_none(), "Debug never shows secrets");
    }
}
