//! The cluster CA: files, refusals, the tag encoding read back, chain signatures, and the
//! documented openssl recipe producing certificates this crate reads the same way.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use aiot_cluster::identity::*;

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn verify_signed_by_ca(cert_der: &[u8], ca_dir: &Path) {
    let ca_der = read_pem_cert(&ca_dir.join(CA_CERT_FILE)).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).unwrap();
    cert.verify_signature(Some(ca.public_key())).expect("signed by the cluster CA");
}

#[test]
fn init_writes_the_ca_and_signing_keys_privately_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let created = init_ca(dir.path(), "plant").unwrap();
    assert_eq!(created.signing_public_hex.len(), 64);
    let public = std::fs::read_to_string(dir.path().join(SIGNING_PUB_FILE)).unwrap();
    assert_eq!(public.trim(), created.signing_public_hex);
    #[cfg(unix)]
    for secret in [CA_KEY_FILE, SIGNING_KEY_FILE] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(secret)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    let again = init_ca(dir.path(), "plant").unwrap_err();
    assert!(again.to_string().contains("ca.pem already exists: refusing to overwrite it"), "{again}");
}

#[test]
fn node_certificates_carry_their_attested_tags_and_admins_none() {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), "plant").unwrap();
    let node =
        Subject::Node { name: "inference-1".into(), tags: parse_tags("tier=inference,accel=gpu").unwrap() };
    let issued = issue(dir.path(), dir.path(), &node, Validity::from_now(30)).unwrap();
    let der = read_pem_cert(&issued.cert).unwrap();
    verify_signed_by_ca(&der, dir.path());
    let identity = read_identity(&der).unwrap();
    assert_eq!(identity.name, "inference-1");
    assert_eq!(identity.role, Role::Node);
    assert_eq!(identity.tags, tags(&[("tier", "inference"), ("accel", "gpu")]));

    let admin =
        issue(dir.path(), dir.path(), &Subject::Admin { name: "ops".into() }, Validity::from_now(1)).unwrap();
    let identity = read_identity(&read_pem_cert(&admin.cert).unwrap()).unwrap();
    assert_eq!((identity.name.as_str(), identity.role, identity.tags.len()), ("ops", Role::Admin, 0));

    let twice = issue(dir.path(), dir.path(), &node, Validity::from_now(30)).unwrap_err();
    assert!(twice.to_string().contains("inference-1.pem already exists"), "{twice}");
}

#[test]
fn an_expired_certificate_can_be_issued_for_tests_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), "plant").unwrap();
    let past = Validity { not_before: time::OffsetDateTime::now_utc() - time::Duration::days(10), days: 2 };
    let node = Subject::Node { name: "old".into(), tags: tags(&[("tier", "things")]) };
    let issued = issue(dir.path(), dir.path(), &node, past).unwrap();
    let der = read_pem_cert(&issued.cert).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(!cert.validity().is_valid(), "expired certificates are refused by the TLS layer, not here");
}

#[test]
fn bad_names_tags_and_files_are_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), "plant").unwrap();
    for bad in ["", "Upper", "under_score", "-lead", "trail-", &"x".repeat(64)] {
        let err = issue(dir.path(), dir.path(), &Subject::Admin { name: bad.into() }, Validity::from_now(1))
            .unwrap_err();
        assert!(matches!(err, IdentityError::BadName(_)), "{bad:?}: {err}");
    }
    for (bad, reason) in
        [("tier", "key=value"), ("accel=*", "exact values"), ("a=1,a=2", "twice"), ("a b=1", "tag key")]
    {
        let err = parse_tags(bad).unwrap_err();
        assert!(err.to_string().contains(reason), "{bad}: {err}");
    }
    let missing = tempfile::tempdir().unwrap();
    let err =
        issue(missing.path(), missing.path(), &Subject::Admin { name: "ops".into() }, Validity::from_now(1))
            .unwrap_err();
    assert!(err.to_string().contains("ca.key"), "{err}");
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    assert!(read_pem_cert(&dir.path().join("junk.pem")).is_err());
    assert!(matches!(read_identity(b"\x30\x03junk"), Err(IdentityError::BadCertificate(_))));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed (tools/test installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_documented_openssl_recipe_mints_a_certificate_read_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), "plant").unwrap();
    let ext = "subjectAltName=DNS:inference-2,URI:aiot:role:node,URI:aiot:tag:tier=inference,URI:aiot:tag:accel=gpu\n\
               extendedKeyUsage=serverAuth,clientAuth\n";
    std::fs::write(dir.path().join("ext.cnf"), ext).unwrap();
    openssl(
        dir.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "n2.key",
            "-subj",
            "/CN=inference-2",
            "-out",
            "n2.csr",
        ],
    );
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "n2.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-out",
            "n2.pem",
            "-extfile",
            "ext.cnf",
        ],
    );
    let der = read_pem_cert(&dir.path().join("n2.pem")).unwrap();
    verify_signed_by_ca(&der, dir.path());
    let identity = read_identity(&der).unwrap();
    assert_eq!(
        identity,
        Identity {
            name: "inference-2".into(),
            role: Role::Node,
            tags: tags(&[("tier", "inference"), ("accel", "gpu")]),
        }
    );
}
