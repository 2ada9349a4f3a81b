//! A private Mosquitto broker: the external broker that tests, benchmarks and demos start on a
//! free loopback port with their own configuration (logins, an ACL file that confines each
//! mote to its topics), and stop on drop. Mosquitto must be installed (`apt-get install
//! mosquitto`; the test command does it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::mqtt::BrokerAddr;

/// How to configure the broker.
#[derive(Debug, Clone, Default)]
pub struct MosquittoOptions {
    /// Logins (user -> password); `None` allows anonymous clients.
    pub logins: Option<BTreeMap<String, String>>,
    /// The text of an ACL file (`acl_file`).
    pub acl: Option<String>,
}

/// A running Mosquitto, killed when dropped.
pub struct Mosquitto {
    child: Child,
    addr: BrokerAddr,
    dir: PathBuf,
}

impl Mosquitto {
    /// Writes the configuration into a fresh directory and starts the broker; returns once it
    /// accepts connections.
    pub fn start(options: &MosquittoOptions) -> Result<Self, String> {
        let binary = binary()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("aiot-mosquitto-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence false\nlog_dest none\nmax_queued_messages 100000\n"
        );
        match &options.logins {
            Some(logins) => {
                let file = dir.join("passwd");
                let lines: String =
                    logins.iter().map(|(user, password)| format!("{user}:{password}\n")).collect();
                write(&file, &lines)?;
                let hashed = Command::new(passwd_tool(&binary))
                    .arg("-U")
                    .arg(&file)
                    .status()
                    .map_err(|e| format!("mosquitto_passwd: {e}"))?;
                if !hashed.success() {
                    return Err(format!("mosquitto_passwd -U {} failed", file.display()));
                }
                let _ = writeln!(conf, "allow_anonymous false\npassword_file {}", file.display());
            }
            None => conf.push_str("allow_anonymous true\n"),
        }
        if let Some(acl) = &options.acl {
            let file = dir.join("acl");
            write(&file, acl)?;
            let _ = writeln!(conf, "acl_file {}", file.display());
        }
        let conf_file = dir.join("mosquitto.conf");
        write(&conf_file, &conf)?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        // From here on, dropping `broker` kills and reaps the process.
        let mut broker = Mosquitto { child, addr: BrokerAddr { host: "127.0.0.1".into(), port }, dir };
        for _ in 0..1000 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(broker);
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                return Err(format!(
                    "mosquitto exited at start ({status}); configuration in {}",
                    broker.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("mosquitto did not listen on port {port} within 10 s"))
    }

    pub fn addr(&self) -> &BrokerAddr {
        &self.addr
    }

    /// Process id, for tests that pause the broker (SIGSTOP) to make it unreachable.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn binary() -> Result<PathBuf, String> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/local/bin/mosquitto"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            "mosquitto is not installed (apt-get install mosquitto; tools/test installs it)".to_string()
        })
}

fn passwd_tool(mosquitto: &Path) -> PathBuf {
    let beside = mosquitto.with_file_name("mosquitto_passwd");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("mosquitto_passwd")
    }
}
