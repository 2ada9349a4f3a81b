//! A simulated disk for tests: each file keeps the bytes written and the bytes synced, and a
//! crash keeps only what was synced (optionally plus a torn piece of the first unsynced write,
//! cut at a point a seeded generator picks). It can also run out of space.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::storage::Storage;

#[derive(Clone, Default)]
struct SimFile {
    written: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Default)]
struct Disk {
    files: BTreeMap<String, SimFile>,
    /// Bytes the disk can hold (written bytes over all files); `None`: unlimited.
    capacity: Option<usize>,
}

/// A disk shared by the log under test and the test.
#[derive(Clone, Default)]
pub struct SimDisk {
    disk: Arc<Mutex<Disk>>,
}

impl SimDisk {
    /// Limits the written bytes over all files; appends beyond fail as a full disk does.
    pub fn set_capacity(&self, bytes: Option<usize>) {
        self.disk.lock().capacity = bytes;
    }

    /// What a power loss now would leave: a new disk holding only synced bytes; with `tear_seed`,
    /// each file also keeps a random-length prefix of its unsynced bytes (a torn write).
    pub fn crashed(&self, tear_seed: Option<u64>) -> SimDisk {
        let mut rng = tear_seed.map(ChaCha8Rng::seed_from_u64);
        let disk = self.disk.lock();
        let files = disk
            .files
            .iter()
            .map(|(name, file)| {
                let mut kept = file.synced.clone();
                if let (Some(rng), true) = (rng.as_mut(), file.written.starts_with(&file.synced)) {
                    let extra = rng.random_range(0..=file.written.len() - file.synced.len());
                    kept.extend_from_slice(&file.written[file.synced.len()..file.synced.len() + extra]);
                }
                (name.clone(), SimFile { written: kept.clone(), synced: kept })
            })
            .collect();
        SimDisk { disk: Arc::new(Mutex::new(Disk { files, capacity: None })) }
    }

    /// Bytes written over all files.
    pub fn used(&self) -> usize {
        self.disk.lock().files.values().map(|f| f.written.len()).sum()
    }
}

fn missing(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

impl Storage for SimDisk {
    fn append(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk.lock();
        let used: usize = disk.files.values().map(|f| f.written.len()).sum();
        if disk.capacity.is_some_and(|capacity| used + bytes.len() > capacity) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on the simulated disk"));
        }
        disk.files.entry(name.to_string()).or_default().written.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let mut disk = self.disk.lock();
        let file = disk.files.get_mut(name).ok_or_else(|| missing(name))?;
        file.synced = file.written.clone();
        Ok(())
    }

    fn read(&self, name: &str, at: u64, len: usize) -> io::Result<Vec<u8>> {
        let disk = self.disk.lock();
        let file = disk.files.get(name).ok_or_else(|| missing(name))?;
        let start = (at as usize).min(file.written.len());
        Ok(file.written[start..(start + len).min(file.written.len())].to_vec())
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(self.disk.lock().files.get(name).ok_or_else(|| missing(name))?.written.len() as u64)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut disk = self.disk.lock();
        let file = disk.files.get_mut(name).ok_or_else(|| missing(name))?;
        file.written.truncate(len as usize);
        file.synced = file.written.clone();
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.disk.lock().files.keys().cloned().collect())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.disk.lock().files.remove(name).map(|_| ()).ok_or_else(|| missing(name))
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let file = SimFile { written: bytes.to_vec(), synced: bytes.to_vec() };
        self.disk.lock().files.insert(name.to_string(), file);
        Ok(())
    }
}
