//! The file operations the embedded log needs, behind a trait: the real `std::fs` directory
//! (`FsStorage`) and, in tests, a simulated disk that loses unsynced writes on a crash.
//!
//! Names are flat file names inside one directory (no separators).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// Files in one directory.
pub trait Storage: Send + Sync {
    /// Appends to `name`, creating it if missing. Not durable until `sync`.
    fn append(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Makes every byte appended to `name` (and its existence) durable.
    fn sync(&self, name: &str) -> io::Result<()>;
    /// Reads `len` bytes of `name` from `at` (fewer at the end of the file).
    fn read(&self, name: &str, at: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The length of `name`.
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Cuts `name` to `len` bytes, durably.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Every file name, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Removes `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Replaces the whole of `name` atomically and durably (a reader sees the old or the new
    /// content, also after a crash).
    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
}

/// A real directory. Open files are kept (one handle per file, for appends and reads).
pub struct FsStorage {
    dir: PathBuf,
    open: Mutex<BTreeMap<String, Arc<File>>>,
    /// Files created since the directory was last synced (their names are not durable yet).
    unsynced_names: Mutex<bool>,
}

impl FsStorage {
    /// Uses `dir`, creating it if needed.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FsStorage {
            dir: dir.to_path_buf(),
            open: Mutex::new(BTreeMap::new()),
            unsynced_names: Mutex::new(false),
        })
    }

    fn file(&self, name: &str, create: bool) -> io::Result<Arc<File>> {
        let mut open = self.open.lock();
        if let Some(file) = open.get(name) {
            return Ok(Arc::clone(file));
        }
        let path = self.dir.join(name);
        if create && !path.exists() {
            *self.unsynced_names.lock() = true;
        }
        let file = Arc::new(OpenOptions::new().read(true).append(true).create(create).open(&path)?);
        open.insert(name.to_string(), Arc::clone(&file));
        Ok(file)
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl Storage for FsStorage {
    fn append(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        (&*self.file(name, true)?).write_all(bytes)
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        self.file(name, true)?.sync_data()?;
        let mut unsynced = self.unsynced_names.lock();
        if *unsynced {
            self.sync_dir()?;
            *unsynced = false;
        }
        Ok(())
    }

    fn read(&self, name: &str, at: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = self.file(name, false)?;
        let mut buf = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], at + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(self.file(name, false)?.metadata()?.len())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let file = self.file(name, false)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.extend(entry.file_name().to_str().map(str::to_string));
            }
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.open.lock().remove(name);
        std::fs::remove_file(self.dir.join(name))?;
        self.sync_dir()
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(format!("{name}.tmp"));
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        self.open.lock().remove(name);
        std::fs::rename(&temp, self.dir.join(name))?;
        self.sync_dir()
    }
}
