//! A shell's session: its connection to the node it was pointed at, and to every other node it
//! had to ask (learnt from that node's member list, dialled on first use, dialled again once
//! if a connection broke). Commands fan out from here: what only a node knows (its actors, its
//! counters) is asked of each node that is up.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aiot_cluster::admin::{
    ActorRow, AdminRequest, AdminResponse, MoveReport, NodeReport, NodeRow, SubtreeRow,
};
use aiot_cluster::membership::Status;
use aiot_cluster::transport::admin::{AdminClient, AdminConnection};
use parking_lot::Mutex;

use super::app_views;
use super::commands::{ActorFilter, Command, COMMANDS};
use super::plan::{self, Planned};
use super::views::{self, Output};

/// Node names and actor paths the session has seen (the REPL completes them).
#[derive(Debug, Default)]
pub struct Known {
    pub nodes: BTreeSet<String>,
    pub paths: BTreeSet<String>,
}

/// How often `trace` asks, and how long it waits for a message before it gives up.
const TRACE_POLL: Duration = Duration::from_millis(200);
const TRACE_QUIET: Duration = Duration::from_secs(10);

pub struct Session {
    /// Print what a long command (`trace`) finds as it comes: people at a table, not scripts.
    pub live: bool,
    client: AdminClient,
    /// The address the shell was pointed at, and the node there.
    entry: SocketAddr,
    entry_node: String,
    connections: BTreeMap<String, AdminConnection>,
    pub known: Arc<Mutex<Known>>,
}

impl Session {
    pub async fn connect(client: AdminClient, entry: SocketAddr) -> Result<Self, String> {
        let connection = client.connect(entry).await.map_err(|e| format!("{entry}: {e}"))?;
        let entry_node = connection.node.clone();
        let known = Known { nodes: BTreeSet::from([entry_node.clone()]), ..Known::default() };
        Ok(Session {
            live: false,
            client,
            entry,
            connections: BTreeMap::from([(entry_node.clone(), connection)]),
            entry_node,
            known: Arc::new(Mutex::new(known)),
        })
    }

    /// The node the shell is connected to.
    pub fn entry_node(&self) -> &str {
        &self.entry_node
    }

    pub fn close(&self) {
        for connection in self.connections.values() {
            connection.close();
        }
    }

    /// Runs one command.
    pub async fn execute(&mut self, command: &Command) -> Result<Output, String> {
        match command {
            Command::Nodes => Ok(views::nodes(&self.nodes().await?)),
            Command::Tags => Ok(views::tags(&self.nodes().await?)),
            Command::Place => Ok(views::placement(&self.placement().await?)),
            Command::Move { root, to } => {
                let place = self.placement().await?;
                let from = place.iter().find(|s| &s.root == root).and_then(|s| s.node.clone());
                let from = from.ok_or_else(|| format!("no node runs {root} (place lists the subtrees)"))?;
                let report = self.move_subtree(&Planned { root: root.clone(), from, to: to.clone() }).await?;
                Ok(views::moves(&[report]))
            }
            Command::Drain { node } => {
                let nodes = self.nodes().await?;
                let row = nodes.iter().find(|n| &n.name == node);
                let row = row.ok_or_else(|| format!("no node {node} (nodes lists them)"))?.clone();
                self.cordon(&row, true).await?;
                let (nodes, place) = (self.nodes().await?, self.placement().await?);
                let (planned, stuck) = plan::drain(&place, &nodes, node);
                let (reports, failed) = self.move_all(&planned).await;
                Ok(views::moves(&reports).with_warnings(stuck.into_iter().chain(failed).collect()))
            }
            Command::Uncordon { node } => {
                let nodes = self.nodes().await?;
                let row = nodes.iter().find(|n| &n.name == node);
                let row = row.ok_or_else(|| format!("no node {node} (nodes lists them)"))?.clone();
                self.cordon(&row, false).await?;
                Ok(views::uncordoned(node))
            }
            Command::Rebalance => {
                let (nodes, place) = (self.nodes().await?, self.placement().await?);
                let (reports, failed) = self.move_all(&plan::rebalance(&place, &nodes)).await;
                Ok(views::moves(&reports).with_warnings(failed))
            }
            Command::Actors(filter) => {
                let (rows, warnings) = self.actors(filter).await?;
                Ok(views::actors(&rows).with_warnings(warnings))
            }
            Command::Stats { nodes } => {
                let (reports, warnings) = self.stats(nodes).await?;
                Ok(views::stats(&reports).with_warnings(warnings))
            }
            Command::App(app) => {
                let request = AdminRequest::App { command: app.name.to_string(), args: app.args.clone() };
                if app.every_node {
                    let nodes = self.nodes().await?;
                    let (answers, warnings) = self.ask_each(nodes.iter(), &request).await;
                    let answers = answers
                        .into_iter()
                        .filter_map(|(node, answer)| match answer {
                            AdminResponse::App(json) => Some(Ok((node, json))),
                            AdminResponse::NoQueries => None,
                            other => Some(Err(format!("{node}: {}", unexpected(&other)))),
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    app_views::app_per_node(app.name, &answers).map(|o| o.with_warnings(warnings))
                } else {
                    match self.ask_entry(&request).await? {
                        AdminResponse::App(json) => app_views::app(app.name, &json),
                        AdminResponse::NoQueries => {
                            Err(format!("{}: this node's topology answers no questions", app.name))
                        }
                        other => Err(unexpected(&other)),
                    }
                }
            }
            Command::Trace { path, count } => self.trace(path, *count).await,
            Command::Help(command) => views::help(COMMANDS, command.as_deref()),
            Command::Quit => Ok(Output::empty()),
        }
    }

    /// Polls the node running `path` for the messages its actor handles until `count` came,
    /// printing each as it comes when `live` (people; scripts get them all at the end). A
    /// trace that hears nothing for [`TRACE_QUIET`] ends early; one whose actor moved follows it.
    async fn trace(&mut self, path: &str, count: u32) -> Result<Output, String> {
        let (mut events, mut after, mut quiet) = (Vec::new(), 0, Duration::ZERO);
        let mut node = self.node_running(path).await?;
        while events.len() < count as usize && quiet < TRACE_QUIET {
            let request = AdminRequest::Trace { path: path.to_string(), after };
            let new = match self.ask(&node, &request).await? {
                AdminResponse::Trace(new) => new,
                AdminResponse::Refused(why) if why.starts_with("no actor runs at") => {
                    // It moved (or restarts): ask where it runs now, and start over there.
                    tokio::time::sleep(TRACE_POLL).await;
                    quiet += TRACE_POLL;
                    node = self.node_running(path).await?;
                    after = 0;
                    continue;
                }
                other => return Err(unexpected(&other)),
            };
            quiet = if new.is_empty() { quiet + TRACE_POLL } else { Duration::ZERO };
            for event in new.into_iter().take(count as usize - events.len()) {
                after = event.seq;
                if self.live {
                    println!("{}", views::trace_line(&node.name, &event));
                }
                events.push((node.name.clone(), event));
            }
            if events.len() < count as usize {
                tokio::time::sleep(TRACE_POLL).await;
            }
        }
        Ok(views::trace(path, &events, self.live))
    }

    /// The member running the actor at `path` (in the subtree whose root is a prefix of it).
    async fn node_running(&mut self, path: &str) -> Result<NodeRow, String> {
        let place = self.placement().await?;
        let within =
            |root: &str| path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'));
        let name = place.iter().find(|s| within(&s.root)).and_then(|s| s.node.clone());
        let name = name.ok_or_else(|| format!("no node runs {path} (place lists the subtrees)"))?;
        let nodes = self.nodes().await?;
        nodes.into_iter().find(|n| n.name == name).ok_or(format!("no node {name}"))
    }

    /// Every subtree, as the entry node sees it.
    async fn placement(&mut self) -> Result<Vec<SubtreeRow>, String> {
        match self.ask_entry(&AdminRequest::Placement).await? {
            AdminResponse::Placement(rows) => {
                self.known.lock().paths.extend(rows.iter().map(|r| r.root.clone()));
                Ok(rows)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the node running the subtree to move it; answers once it runs at its new place.
    async fn move_subtree(&mut self, planned: &Planned) -> Result<MoveReport, String> {
        let nodes = self.nodes().await?;
        let from =
            nodes.iter().find(|n| n.name == planned.from).ok_or(format!("no node {}", planned.from))?;
        let request = AdminRequest::Move { root: planned.root.clone(), to: planned.to.clone() };
        match self.ask(from, &request).await? {
            AdminResponse::Moved(report) => Ok(report),
            other => Err(unexpected(&other)),
        }
    }

    /// Makes the moves one after the other; a failed one is reported and the rest go on.
    async fn move_all(&mut self, planned: &[Planned]) -> (Vec<MoveReport>, Vec<String>) {
        let (mut reports, mut failed) = (Vec::new(), Vec::new());
        for one in planned {
            match self.move_subtree(one).await {
                Ok(report) => reports.push(report),
                Err(e) => failed.push(format!("{} from {} to {}: {e}", one.root, one.from, one.to)),
            }
        }
        (reports, failed)
    }

    /// The members as the entry node sees them.
    /// Cordons `node` (or lifts its cordon), asking the node itself.
    async fn cordon(&mut self, node: &NodeRow, on: bool) -> Result<(), String> {
        match self.ask(node, &AdminRequest::Cordon(on)).await? {
            AdminResponse::Cordoned(now) if now == on => Ok(()),
            other => Err(format!("{}: {}", node.name, unexpected(&other))),
        }
    }

    async fn nodes(&mut self) -> Result<Vec<NodeRow>, String> {
        match self.ask_entry(&AdminRequest::Nodes).await? {
            AdminResponse::Nodes(rows) => {
                self.known.lock().nodes.extend(rows.iter().map(|r| r.name.clone()));
                Ok(rows)
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn actors(&mut self, filter: &ActorFilter) -> Result<(Vec<ActorRow>, Vec<String>), String> {
        let nodes = self.nodes().await?;
        if let Some(node) = &filter.node {
            if !nodes.iter().any(|n| &n.name == node) {
                return Err(format!("no node {node} (nodes lists them)"));
            }
        }
        let chosen = nodes.iter().filter(|n| {
            filter.node.as_ref().is_none_or(|want| &n.name == want)
                && filter.tier.as_ref().is_none_or(|tier| n.tags.get("tier") == Some(tier))
        });
        let request = AdminRequest::Actors { prefix: filter.path.clone() };
        let (answers, mut warnings) = self.ask_each(chosen, &request).await;
        let mut rows = Vec::new();
        for (node, answer) in answers {
            match answer {
                AdminResponse::Actors(found) => rows.extend(found),
                other => warnings.push(format!("{node}: {}", unexpected(&other))),
            }
        }
        self.known.lock().paths.extend(rows.iter().map(|r| r.path.clone()));
        Ok((rows, warnings))
    }

    async fn stats(&mut self, names: &[String]) -> Result<(Vec<NodeReport>, Vec<String>), String> {
        let nodes = self.nodes().await?;
        if let Some(unknown) = names.iter().find(|name| !nodes.iter().any(|n| &&n.name == name)) {
            return Err(format!("no node {unknown} (nodes lists them)"));
        }
        let chosen = nodes.iter().filter(|n| names.is_empty() || names.contains(&n.name));
        let (answers, mut warnings) = self.ask_each(chosen, &AdminRequest::Stats).await;
        let mut reports = Vec::new();
        for (node, answer) in answers {
            match answer {
                AdminResponse::Stats(report) => reports.push(*report),
                other => warnings.push(format!("{node}: {}", unexpected(&other))),
            }
        }
        Ok((reports, warnings))
    }

    /// Asks each of `nodes` that is up; those down or unreachable are warnings.
    async fn ask_each<'a>(
        &mut self,
        nodes: impl Iterator<Item = &'a NodeRow>,
        request: &AdminRequest,
    ) -> (Vec<(String, AdminResponse)>, Vec<String>) {
        let (mut answers, mut warnings) = (Vec::new(), Vec::new());
        for node in nodes {
            if node.status != Status::Up {
                warnings.push(format!("{}: {:?}, not asked", node.name, node.status));
                continue;
            }
            match self.ask(node, request).await {
                Ok(answer) => answers.push((node.name.clone(), answer)),
                Err(e) => warnings.push(format!("{}: {e}", node.name)),
            }
        }
        (answers, warnings)
    }

    async fn ask_entry(&mut self, request: &AdminRequest) -> Result<AdminResponse, String> {
        let name = self.entry_node.clone();
        let entry = self.entry;
        self.ask_at(&name, entry, request).await
    }

    /// Asks a member, dialling it first if need be.
    async fn ask(&mut self, node: &NodeRow, request: &AdminRequest) -> Result<AdminResponse, String> {
        let addr = self.reachable(&node.addr)?;
        self.ask_at(&node.name, addr, request).await
    }

    /// Asks `name` at `addr`; a broken connection is dialled again once (but a move, which
    /// may have begun, is not asked twice).
    async fn ask_at(
        &mut self,
        name: &str,
        addr: SocketAddr,
        request: &AdminRequest,
    ) -> Result<AdminResponse, String> {
        if let Some(connection) = self.connections.get(name) {
            match connection.ask(request).await {
                Ok(response) => return Ok(response),
                Err(e) if matches!(request, AdminRequest::Move { .. }) => {
                    self.connections.remove(name);
                    return Err(format!(
                        "{name}: {e} (the move may have happened: place shows where it runs)"
                    ));
                }
                Err(_) => {
                    self.connections.remove(name);
                }
            }
        }
        let connection = self.client.connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
        if connection.node != name {
            connection.close();
            return Err(format!("{addr} is {}, not {name}", connection.node));
        }
        let response = connection.ask(request).await.map_err(|e| e.to_string())?;
        self.connections.insert(name.to_string(), connection);
        Ok(response)
    }

    /// A member's announced address; one announced as unspecified (`0.0.0.0`, listening on
    /// every interface) is reached at the entry's host.
    fn reachable(&self, announced: &str) -> Result<SocketAddr, String> {
        let mut addr: SocketAddr =
            announced.parse().map_err(|e| format!("the announced address {announced:?}: {e}"))?;
        if addr.ip().is_unspecified() {
            addr.set_ip(self.entry.ip());
        }
        Ok(addr)
    }
}

fn unexpected(response: &AdminResponse) -> String {
    match response {
        AdminResponse::Refused(why) => format!("refused: {why}"),
        other => format!("an unexpected answer: {other:?}"),
    }
}
