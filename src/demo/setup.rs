//! The demo's files, made for the run: a cluster CA with the model-signing key, a certificate
//! per node (its tier attested) and one for the operator's shell, the motes' credentials, and
//! each node's `node.toml` on free loopback ports. They are what `aiot ca`, `aiot motes
//! provision` and a hand-written configuration would give, so the same cluster runs by hand
//! from them (`aiot node --config DIR/platform-1.toml`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use aiot_cluster::identity::{self, Subject, Validity};

/// The nodes, each with its tier.
pub const NODES: [(&str, &str); 3] =
    [("platform-1", "platform"), ("things-1", "things"), ("inference-1", "inference")];
/// The operator's admin certificate.
pub const ADMIN: &str = "operator";

/// The training pipeline's periods in the demo (cluster hours): the first training a day and
/// a half in, then twice a day; a failure within a day of a window makes it positive.
const FIRST_TRAINING_HOURS: u64 = 36;
const TRAINING_EVERY_HOURS: u64 = 12;
const LABEL_HORIZON_HOURS: u64 = 24;

/// Where the files went and the ports chosen.
pub struct Files {
    pub dir: PathBuf,
    /// Each node's configuration file, in `NODES` order.
    pub configs: Vec<PathBuf>,
    /// Each node's QUIC address.
    pub listen: BTreeMap<&'static str, SocketAddr>,
    pub mqtt: SocketAddr,
}

impl Files {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca")
    }
}

/// Writes everything into `dir` (created; it must not hold a previous demo's CA).
pub fn write(dir: &Path, options: &super::Options) -> Result<Files, String> {
    let (motes, warp) = (options.motes, options.warp);
    let ca = dir.join("ca");
    if ca.join("ca.pem").exists() {
        return Err(format!("{} already holds a CA: give the demo an empty directory", ca.display()));
    }
    identity::init_ca(&ca, "aiot-demo").map_err(|e| e.to_string())?;
    let validity = Validity::from_now(2);
    for (name, tier) in NODES {
        let tags = BTreeMap::from([("tier".to_string(), tier.to_string())]);
        identity::issue(&ca, &ca, &Subject::Node { name: name.into(), tags }, validity)
            .map_err(|e| e.to_string())?;
    }
    identity::issue(&ca, &ca, &Subject::Admin { name: ADMIN.into() }, validity).map_err(|e| e.to_string())?;
    crate::motes::provision(motes, &dir.join("motes"), &ca)?;

    let mqtt = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()?));
    let mut listen = BTreeMap::new();
    for (name, _) in NODES {
        listen.insert(name, SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()?)));
    }
    let seed = format!("\"platform-1@{}\"", listen["platform-1"]);
    let mut configs = Vec::new();
    for (name, tier) in NODES {
        let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_tcp_port()?));
        let seeds = if name == "platform-1" { String::new() } else { seed.clone() };
        let dashboard = match tier {
            "platform" => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port_or_free(options.dashboard_port)?));
                format!("dashboard = \"{addr}\"\n")
            }
            _ => String::new(),
        };
        let mut text = format!(
            "listen = \"{}\"\nseeds = [{seeds}]\ndata_dir = \"data/{name}\"\ntags = {{ tier = \"{tier}\" }}\n\
             topology = \"things\"\nmetrics = \"{metrics}\"\n{dashboard}warp = {warp}\n\n\
             [mqtt]\nfleet = \"motes/fleet.toml\"\nembedded_port = {}\n\n",
            listen[name],
            mqtt.port()
        );
        if tier == "platform" {
            text.push_str(&format!(
                "[models]\nsigning_key = \"ca/model-signing.key\"\n\n\
                 [training]\nfirst_after_hours = {FIRST_TRAINING_HOURS}\nevery_hours = {TRAINING_EVERY_HOURS}\n\
                 label_horizon_hours = {LABEL_HORIZON_HOURS}\n\n"
            ));
        }
        text.push_str(&format!(
            "[tls]\nca = \"ca/ca.pem\"\ncert = \"ca/{name}.pem\"\nkey = \"ca/{name}.key\"\n"
        ));
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        configs.push(path);
    }
    Ok(Files { dir: dir.to_path_buf(), configs, listen, mqtt })
}

/// `port` if it is free now, else a free one.
fn port_or_free(port: u16) -> Result<u16, String> {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(listener) => listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string()),
        Err(_) => free_tcp_port(),
    }
}

/// A loopback port free now (the OS picks it; it is released for the node to bind).
fn free_tcp_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free TCP port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn free_udp_port() -> Result<u16, String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free UDP port: {e}"))?;
    socket.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
