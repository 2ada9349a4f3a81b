//! Answers the shell: each request on an admin connection is answered from this node's own
//! view (`crate::admin` has the protocol). Admin connections never join the cluster: they
//! carry no membership and no lanes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::exec::tokio::TokioSystem;
use aiot_runtime::ActorPath;

use super::migrate::MoveOutcome;
use super::{NodeEvent, Shared};
use crate::admin::{ActorRow, AdminRequest, AdminResponse, MoveReport, NodeReport, NodeRow, SubtreeRow};
use crate::membership::Status;
use crate::placement::{requirements, subtree_len};
use crate::transport::admin::{answer, next_request};
use crate::transport::quic::AdminPeer;

/// Serves one admin connection until the admin closes it.
pub(crate) async fn serve(shared: Arc<Shared>, admin: AdminPeer) {
    while let Some(next) = next_request(&admin.connection).await {
        match next {
            Ok((request, send)) => {
                let response = match &request {
                    AdminRequest::Move { root, to } => move_subtree(&shared, root, to).await,
                    AdminRequest::App { command, args } => app(&shared, command, args).await,
                    AdminRequest::Cordon(on) => cordon(&shared, *on),
                    other => respond(&shared, other),
                };
                if let Err(e) = answer(send, &response).await {
                    shared.emit(NodeEvent::Refused(format!("admin {}: {e}", admin.identity.name)));
                    return;
                }
            }
            Err(e) => {
                shared.emit(NodeEvent::Refused(format!("admin {}: {e}", admin.identity.name)));
                admin.connection.close(3u32.into(), e.to_string().as_bytes());
                return;
            }
        }
    }
}

pub(crate) fn respond(shared: &Shared, request: &AdminRequest) -> AdminResponse {
    match request {
        AdminRequest::Nodes => AdminResponse::Nodes(nodes(shared)),
        AdminRequest::Actors { prefix } => AdminResponse::Actors(actors(shared, prefix)),
        AdminRequest::Stats => AdminResponse::Stats(Box::new(report(shared))),
        AdminRequest::Placement => AdminResponse::Placement(placement(shared)),
        AdminRequest::Trace { path, after } => trace(shared, path, *after),
        AdminRequest::Move { .. } | AdminRequest::App { .. } | AdminRequest::Cordon(_) => {
            AdminResponse::Refused("answered on its own".into())
        }
    }
}

fn trace(shared: &Shared, path: &str, after: u64) -> AdminResponse {
    let path = match ActorPath::parse(path) {
        Ok(path) => path,
        Err(e) => return AdminResponse::Refused(format!("{path:?}: {e}")),
    };
    match shared.system.core().trace_read(&path, after) {
        Ok(events) => AdminResponse::Trace(events),
        Err(why) => AdminResponse::Refused(format!("{why} ({})", shared.name)),
    }
}

/// An application's answers to the shell's questions (`AdminRequest::App`): given the
/// command, its arguments and the node's actor system (to ask actors wherever they run), JSON
/// text, or why not.
pub type AppQueries = Arc<dyn Fn(AppQuery, TokioSystem) -> AppAnswer + Send + Sync>;

/// A question for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppQuery {
    pub command: String,
    pub args: Vec<String>,
}

/// The application's answer to come.
pub type AppAnswer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>;

async fn app(shared: &Shared, command: &str, args: &[String]) -> AdminResponse {
    let queries = shared.app.read().clone();
    let Some(queries) = queries else {
        return AdminResponse::NoQueries;
    };
    let query = AppQuery { command: command.to_string(), args: args.to_vec() };
    match queries(query, shared.system.clone()).await {
        Ok(json) => AdminResponse::App(json),
        Err(why) => AdminResponse::Refused(format!("{command}: {why}")),
    }
}

/// How long an admin waits for a move to finish.
const MOVE_WAIT_MAX: Duration = Duration::from_secs(60);

/// Starts moving `root` to `to` and answers once it runs there (or the move failed).
pub(crate) async fn move_subtree(shared: &Arc<Shared>, root: &str, to: &str) -> AdminResponse {
    let root = match ActorPath::parse(root) {
        Ok(root) => root,
        Err(e) => return AdminResponse::Refused(format!("{root:?}: {e}")),
    };
    shared.moves.lock().outcomes.remove(&root);
    let begun = shared.coordinator.lock().begin_move(&root, to, shared.now());
    if let Err(why) = begun {
        return AdminResponse::Refused(why);
    }
    super::drive::execute(shared);
    let deadline = tokio::time::Instant::now() + MOVE_WAIT_MAX;
    while tokio::time::Instant::now() < deadline {
        let outcome = shared.moves.lock().outcomes.get(&root).cloned();
        match outcome {
            Some(MoveOutcome::Moved { to, took_ms, actors, messages, bytes }) => {
                let (root, from) = (root.to_string(), shared.name.clone());
                return AdminResponse::Moved(MoveReport { root, from, to, took_ms, actors, messages, bytes });
            }
            Some(MoveOutcome::Aborted { to, why }) => {
                return AdminResponse::Refused(format!(
                    "moving {root} to {to} failed, it runs on {} again: {why}",
                    shared.name
                ))
            }
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    AdminResponse::Refused(format!(
        "{root} is still moving to {to} after {MOVE_WAIT_MAX:?} (place shows where it is)"
    ))
}

/// Cordons this node or lifts its cordon; every member hears it with the next announcement.
fn cordon(shared: &Arc<Shared>, on: bool) -> AdminResponse {
    shared.coordinator.lock().set_cordoned(on);
    super::drive::execute(shared);
    AdminResponse::Cordoned(shared.coordinator.lock().is_cordoned())
}

fn nodes(shared: &Shared) -> Vec<NodeRow> {
    let (members, cordoned) = {
        let coordinator = shared.coordinator.lock();
        let members = coordinator.member_infos();
        let cordoned: Vec<bool> =
            members.iter().map(|m| coordinator.directory().is_cordoned(&m.name)).collect();
        (members, cordoned)
    };
    let directory = shared.directory.read().entries();
    members
        .into_iter()
        .zip(cordoned)
        .map(|(info, cordoned)| NodeRow {
            hosts: directory.get(&info.name).into_iter().flatten().map(ToString::to_string).collect(),
            cordoned,
            answering: info.name == shared.name,
            name: info.name,
            addr: info.addr,
            status: info.status,
            incarnation: info.incarnation,
            tags: info.tags,
        })
        .collect()
}

fn actors(shared: &Shared, prefix: &str) -> Vec<ActorRow> {
    let mut rows: Vec<ActorRow> = shared
        .system
        .core()
        .metrics()
        .into_iter()
        .filter(|(path, _)| path.as_str().starts_with(prefix))
        .map(|(path, m)| ActorRow {
            path: path.to_string(),
            node: shared.name.clone(),
            depth: m.depth,
            depth_max: m.depth_max,
            handled: m.handled,
            failures: m.failures,
            restarts: m.restarts,
            dropped: m.dropped_oldest + m.rejected,
        })
        .collect();
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    rows
}

fn report(shared: &Shared) -> NodeReport {
    let core = shared.system.core();
    let transport = &shared.tls.stats;
    let lease = shared.coordinator.lock().holds_lease();
    NodeReport {
        node: shared.name.clone(),
        incarnation: shared.incarnation,
        tags: shared.tls.me.tags.clone(),
        lease,
        uptime_ms: u64::try_from(shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
        actors: core.metrics().len() as u64,
        dead_letters: core.dead_letters(),
        remote: shared.stats_snapshot(),
        connections_accepted: transport.accepted.load(Relaxed),
        admin_connections: transport.accepted_admin.load(Relaxed),
        refused: transport.refusals().into_iter().map(|(why, n)| (why.to_string(), n)).collect(),
    }
}

fn placement(shared: &Shared) -> Vec<SubtreeRow> {
    let up: Vec<_> =
        shared.coordinator.lock().member_infos().into_iter().filter(|i| i.status == Status::Up).collect();
    let directory = shared.directory.read();
    shared
        .topology
        .roots()
        .iter()
        .map(|root| {
            let mut requires = Vec::new();
            requirements(root, &mut requires);
            let fits = up
                .iter()
                .filter(|n| requires.iter().all(|(_, r)| r.matches(&n.tags)))
                .map(|n| n.name.clone())
                .collect();
            let prefers = &root.placement().prefers;
            SubtreeRow {
                root: root.path().to_string(),
                node: directory.node_of(root.path()).map(str::to_string),
                requires: requires.iter().map(|(path, r): &(ActorPath, _)| format!("{path}: {r}")).collect(),
                prefers: (!prefers.is_none()).then(|| prefers.to_string()),
                fits,
                actors: subtree_len(root),
            }
        })
        .collect()
}
