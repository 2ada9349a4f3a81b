//! `aiot ca`: creates the cluster CA and issues node and admin certificates. Prints where files
//! went and the model-signing public key; never prints a private key.

use std::path::PathBuf;

use aiot_cluster::identity::{self, Subject, Validity, CERT_DAYS_DEFAULT};
use clap::{ArgGroup, Subcommand};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Creates a cluster CA and the model-signing ed25519 key pair in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// The cluster's name (in the CA's common name).
        #[arg(long, default_value = "aiot")]
        cluster: String,
    },
    /// Issues a node certificate (with its capability tags) or an admin certificate.
    #[command(group(ArgGroup::new("subject").required(true).args(["node", "admin"])))]
    Issue {
        /// The CA directory made by `aiot ca init`.
        #[arg(long)]
        dir: PathBuf,
        /// A node's name (a DNS label: lowercase letters, digits, '-').
        #[arg(long, requires = "tags")]
        node: Option<String>,
        /// The node's capability tags, e.g. tier=inference,accel=gpu.
        #[arg(long)]
        tags: Option<String>,
        /// An admin's name (admin certificates authorise the shell).
        #[arg(long, conflicts_with = "tags")]
        admin: Option<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = CERT_DAYS_DEFAULT)]
        days: u32,
        /// Where to write NAME.pem and NAME.key (default: the CA directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(command: CaCommand) -> Result<(), String> {
    match command {
        CaCommand::Init { dir, cluster } => {
            let created = identity::init_ca(&dir, &cluster).map_err(|e| e.to_string())?;
            println!("cluster CA written to {}", created.ca_cert.display());
            println!("model-signing public key (ed25519): {}", created.signing_public_hex);
            Ok(())
        }
        CaCommand::Issue { dir, node, tags, admin, days, out } => {
            let subject = match (node, admin) {
                (Some(name), None) => {
                    let tags = identity::parse_tags(tags.as_deref().unwrap_or_default())
                        .map_err(|e| e.to_string())?;
                    Subject::Node { name, tags }
                }
                (None, Some(name)) => Subject::Admin { name },
                _ => return Err("give exactly one of --node NAME or --admin NAME".into()),
            };
            let out = out.unwrap_or_else(|| dir.clone());
            let issued =
                identity::issue(&dir, &out, &subject, Validity::from_now(days)).map_err(|e| e.to_string())?;
            println!(
                "certificate {} (key {}), valid {days} days",
                issued.cert.display(),
                issued.key.display()
            );
            Ok(())
        }
    }
}
