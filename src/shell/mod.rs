//! `aiot shell --connect ADDR --ca-dir DIR --admin NAME`: the cluster shell (BLUEPRINT
//! section 4). It connects to any node with an admin certificate (`aiot ca issue --admin NAME`
//! writes one into the CA directory) and asks the cluster what it is doing: `nodes`, `tags`,
//! `actors`, `place`, `stats`, `help`; and rebalances it: `move` (live migration), `drain`,
//! `rebalance`. Tables for people; `--json` prints each answer as one
//! line of JSON for scripts. `-c "cmd; cmd"` runs a script and exits (non-zero if a command
//! failed); without it, an interactive REPL with history and completion.
//!
//! - `commands`: the command table and the parser.
//! - `session`: the connections and the fan-out to the nodes that are up.
//! - `plan`: which moves `drain` and `rebalance` make.
//! - `views`: each answer as a table and as JSON.
//! - `render`: aligned tables.
//! - `repl`: line editing, history and completion (rustyline).

mod app_views;
mod commands;
mod plan;
mod render;
mod repl;
mod session;
mod views;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use aiot_cluster::transport::admin::AdminClient;

use commands::{parse, split_script, Command};
use session::Session;
use views::Output;

pub struct Options {
    /// A node's address (`host:port`).
    pub connect: String,
    /// The CA directory: `ca.pem`, and the admin's `NAME.pem` and `NAME.key`.
    pub ca_dir: PathBuf,
    pub admin: String,
    /// A script: commands separated by `;`.
    pub command: Option<String>,
    pub json: bool,
}

pub fn run(options: Options) -> Result<(), String> {
    let entry = resolve(&options.connect)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let file = |name: String| options.ca_dir.join(name);
    let mut session = runtime.block_on(async {
        let client = AdminClient::load(
            &file("ca.pem".into()),
            &file(format!("{}.pem", options.admin)),
            &file(format!("{}.key", options.admin)),
        )
        .map_err(|e| e.to_string())?;
        Session::connect(client, entry).await
    })?;
    session.live = !options.json;
    let outcome = match &options.command {
        Some(script) => run_script(&runtime, &mut session, script, options.json),
        None => repl::run(&runtime, &mut session, options.json),
    };
    session.close();
    outcome
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("--connect {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("--connect {addr}: no address"))
}

/// Runs each command of the script in order; stops at the first that fails.
fn run_script(
    runtime: &tokio::runtime::Runtime,
    session: &mut Session,
    script: &str,
    json: bool,
) -> Result<(), String> {
    for line in split_script(script) {
        let command = parse(line)?;
        if command == Command::Quit {
            break;
        }
        let output = runtime.block_on(session.execute(&command)).map_err(|e| format!("{line}: {e}"))?;
        print(&output, json);
    }
    Ok(())
}

/// Prints an answer: the table (or one JSON line), then what could not be asked, on stderr.
fn print(output: &Output, json: bool) {
    if json {
        println!("{}", output.json);
    } else if !output.text.is_empty() {
        println!("{}", output.text);
    }
    for warning in &output.warnings {
        eprintln!("warning: {warning}");
    }
}
