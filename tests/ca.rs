//! End to end: `aiot ca init` and `aiot ca issue` through the binary, and their refusals.

use std::process::{Command, Output};

fn aiot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiot")).args(args).output().expect("aiot runs")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ca_init_and_issue_write_certificates_and_never_print_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    let init = stdout(&aiot(&["ca", "init", "--dir", ca]));
    assert!(init.contains("model-signing public key (ed25519): "), "{init}");
    let node =
        stdout(&aiot(&["ca", "issue", "--dir", ca, "--node", "platform-1", "--tags", "tier=platform"]));
    let admin = stdout(&aiot(&["ca", "issue", "--dir", ca, "--admin", "ops", "--days", "7"]));
    for text in [&init, &node, &admin] {
        assert!(!text.contains("PRIVATE KEY"), "a key was printed: {text}");
    }
    let der = aiot_cluster::identity::read_pem_cert(&dir.path().join("ca/platform-1.pem")).unwrap();
    let identity = aiot_cluster::identity::read_identity(&der).unwrap();
    assert_eq!(identity.tags.get("tier").map(String::as_str), Some("platform"));
    assert!(admin.contains("valid 7 days"), "{admin}");

    let again = aiot(&["ca", "init", "--dir", ca]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists: refusing to overwrite it"));
    let bad = aiot(&["ca", "issue", "--dir", ca, "--node", "n1", "--tags", "tier=*"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad tag \"tier=*\""));
}
