//! What the multi-process tests share: the `aiot` binary, CA and configuration files, and node
//! processes whose output lines arrive on a channel.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

pub const WAIT_MAX: Duration = Duration::from_secs(30);
/// How long `Node::wait_for` looks for its line among the others.
pub const LINE_WAIT_MAX: Duration = Duration::from_secs(90);

pub fn aiot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aiot"))
}

pub fn run_ok(args: &[&str]) -> String {
    let out = aiot().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn write_config(dir: &Path, name: &str, seeds: &str, tags: &str) -> String {
    write_config_with(dir, name, seeds, tags, "")
}

pub fn write_config_with(dir: &Path, name: &str, seeds: &str, tags: &str, extra: &str) -> String {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "listen = \"127.0.0.1:0\"\nseeds = [{seeds}]\ndata_dir = \"data/{name}\"\ntags = {{ {tags} }}\n{extra}\n\
         [tls]\nca = \"ca/ca.pem\"\ncert = \"ca/{name}.pem\"\nkey = \"ca/{name}.key\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// A node process whose stdout lines arrive on a channel; killed when dropped.
pub struct Node {
    pub child: Child,
    pub lines: Receiver<String>,
}

impl Node {
    pub fn start(config: &str) -> Node {
        Node::spawn(&["node", "--config", config])
    }

    /// Any `aiot` command, its stdout lines on the channel (read by a test harness thread:
    /// not actor code).
    #[allow(clippy::disallowed_methods)]
    pub fn spawn(args: &[&str]) -> Node {
        let mut child = aiot().args(args).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node { child, lines }
    }

    /// The first line starting with `prefix` (lines before it are skipped), within
    /// `LINE_WAIT_MAX` in all: a node that keeps printing other lines cannot make it wait forever.
    pub fn wait_for(&self, prefix: &str) -> String {
        self.wait_for_within(prefix, LINE_WAIT_MAX)
    }

    /// `wait_for` with its own deadline, for a line that comes late by design (a run's end).
    #[allow(clippy::disallowed_methods)] // test harness code: a wall-clock deadline
    pub fn wait_for_within(&self, prefix: &str, max: Duration) -> String {
        let deadline = std::time::Instant::now() + max;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line starting with {prefix:?} within {max:?}: {e}"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `node` has printed every line of `expected` (in any order, others skipped).
pub fn wait_for_all(node: &Node, expected: &[String]) {
    let mut missing: std::collections::BTreeSet<&String> = expected.iter().collect();
    while !missing.is_empty() {
        match node.lines.recv_timeout(WAIT_MAX) {
            Ok(line) => {
                missing.remove(&line);
            }
            Err(e) => panic!("still waiting for {missing:?}: {e}"),
        }
    }
}

/// `GET` over plain HTTP/1.0; the body of a 200 answer.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// Polls `done` every 100 ms until it holds; fails naming `what` after `WAIT_MAX`.
#[allow(clippy::disallowed_methods)] // test harness code: a wall-clock deadline, a sleep
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT_MAX;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} not within {WAIT_MAX:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
