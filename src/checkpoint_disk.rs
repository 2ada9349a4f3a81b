//! Where a platform node keeps the checkpoints it keeps across its restarts (BLUEPRINT
//! section 10: replicated snapshots are data at rest, encrypted on platform-tier nodes): one
//! file per subtree in `{data_dir}/checkpoints/`, sealed with XChaCha20-Poly1305 under the key
//! in `{data_dir}/checkpoints.key` (made on the first start).
//!
//! A file is `MAGIC`, a random 24-byte nonce, then the sealed (root, generation, handoff); the
//! file's name binds it as associated data, so a file renamed to another subtree's name does
//! not open. A new checkpoint is written beside the old one and renamed over it: a crash
//! while writing leaves the previous checkpoint. A file that does not open (truncated,
//! tampered with, sealed under another key) is reported by name and skipped.

use std::path::{Path, PathBuf};

use aiot_cluster::node::{CheckpointDisk, KeptCheckpoint};
use aiot_runtime::ActorPath;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const MAGIC: &[u8; 8] = b"AIOTCKP1";
const NONCE_LEN: usize = 24;
const SUFFIX: &str = ".checkpoint";

pub struct SealedCheckpoints {
    dir: PathBuf,
    cipher: XChaCha20Poly1305,
}

impl SealedCheckpoints {
    /// The store of the node whose data directory is `data_dir` (made if missing).
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        let key = crate::streams::secret_key(data_dir, "checkpoints.key")?;
        Self::with_key(&data_dir.join("checkpoints"), &key)
    }

    fn with_key(dir: &Path, key: &[u8; 32]) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(SealedCheckpoints { dir: dir.to_path_buf(), cipher: XChaCha20Poly1305::new(key.into()) })
    }

    /// A subtree's file name: its path in hex (paths hold `/`).
    fn file_name(root: &ActorPath) -> String {
        let hex: String = root.as_str().bytes().map(|b| format!("{b:02x}")).collect();
        format!("{hex}{SUFFIX}")
    }

    fn open_file(&self, name: &str, bytes: &[u8]) -> Result<KeptCheckpoint, String> {
        let sealed = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a checkpoint file")?;
        if sealed.len() < NONCE_LEN {
            return Err("truncated".into());
        }
        let (nonce, sealed) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: name.as_bytes() })
            .map_err(|_| "does not open: tampered with, or sealed under another key")?;
        let (root, generation, handoff): (String, u64, Vec<u8>) = aiot_runtime::message::decode(&plain)?;
        let root = ActorPath::parse(&root).map_err(|e| format!("bad path {root:?}: {}", e.reason))?;
        if Self::file_name(&root) != name {
            return Err(format!("holds {root}, which is not its name"));
        }
        Ok(KeptCheckpoint { root, generation, handoff })
    }
}

impl CheckpointDisk for SealedCheckpoints {
    fn load(&self) -> (Vec<KeptCheckpoint>, Vec<String>) {
        let mut kept = Vec::new();
        let mut unreadable = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => return (kept, vec![format!("{}: {e}", self.dir.display())]),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(SUFFIX))
            .collect();
        names.sort();
        for name in names {
            let path = self.dir.join(&name);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| self.open_file(&name, &bytes))
            {
                Ok(checkpoint) => kept.push(checkpoint),
                Err(why) => unreadable.push(format!("{}: {why} (skipped)", path.display())),
            }
        }
        (kept, unreadable)
    }

    fn save(&self, checkpoint: &KeptCheckpoint) -> Result<(), String> {
        let name = Self::file_name(&checkpoint.root);
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
        let plain = aiot_runtime::message::encode(&(
            checkpoint.root.as_str(),
            checkpoint.generation,
            &checkpoint.handoff,
        ));
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: name.as_bytes() })
            .map_err(|_| "cannot seal the checkpoint".to_string())?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!("{name}.partial"));
        std::fs::write(&partial, &bytes).map_err(|e| format!("{}: {e}", partial.display()))?;
        std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(root: &str, generation: u64) -> KeptCheckpoint {
        KeptCheckpoint {
            root: ActorPath::parse(root).unwrap(),
            generation,
            handoff: vec![1, 2, 3, generation as u8],
        }
    }

    #[test]
    fn the_newest_checkpoint_of_each_subtree_is_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SealedCheckpoints::with_key(dir.path(), &[7; 32]).unwrap();
        store.save(&checkpoint("/counter", 1)).unwrap();
        store.save(&checkpoint("/counter", 2)).unwrap();
        store.save(&checkpoint("/ledger", 5)).unwrap();
        let again = SealedCheckpoints::with_key(dir.path(), &[7; 32]).unwrap();
        let (kept, unreadable) = again.load();
        assert_eq!(kept, vec![checkpoint("/counter", 2), checkpoint("/ledger", 5)]);
        assert!(unreadable.is_empty(), "{unreadable:?}");
        // Sealed: the state's bytes are not in the file as they are.
        let file =
            std::fs::read(dir.path().join(SealedCheckpoints::file_name(&checkpoint("/ledger", 5).root)));
        assert!(!file.unwrap().windows(4).any(|w| w == [1, 2, 3, 5]));
    }

    #[test]
    fn a_tampered_renamed_or_foreign_file_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SealedCheckpoints::with_key(dir.path(), &[7; 32]).unwrap();
        store.save(&checkpoint("/a", 1)).unwrap();
        store.save(&checkpoint("/b", 1)).unwrap();
        store.save(&checkpoint("/c", 1)).unwrap();
        let file =
            |root: &str| dir.path().join(SealedCheckpoints::file_name(&ActorPath::parse(root).unwrap()));
        // /a tampered with; /b's file copied over /c's name; a file too short.
        let mut bytes = std::fs::read(file("/a")).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(file("/a"), bytes).unwrap();
        std::fs::copy(file("/b"), file("/c")).unwrap();
        std::fs::write(dir.path().join(format!("00{SUFFIX}")), b"AIOTCKP1").unwrap();
        let (kept, unreadable) = store.load();
        assert_eq!(kept, vec![checkpoint("/b", 1)]);
        assert_eq!(unreadable.len(), 3, "{unreadable:?}");
        assert!(unreadable.iter().any(|u| u.contains("truncated")), "{unreadable:?}");
        assert_eq!(unreadable.iter().filter(|u| u.contains("does not open")).count(), 2, "{unreadable:?}");
        // Under another key nothing opens.
        let foreign = SealedCheckpoints::with_key(dir.path(), &[8; 32]).unwrap();
        let (kept, unreadable) = foreign.load();
        assert!(kept.is_empty() && unreadable.len() == 4, "{unreadable:?}");
    }

    #[test]
    fn a_save_that_cannot_be_written_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let store = SealedCheckpoints::with_key(&dir.path().join("checkpoints"), &[7; 32]).unwrap();
        std::fs::remove_dir(dir.path().join("checkpoints")).unwrap();
        let error = store.save(&checkpoint("/a", 1)).unwrap_err();
        assert!(error.contains("checkpoints"), "{error}");
    }
}
