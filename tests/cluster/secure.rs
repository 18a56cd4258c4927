//! Secured cluster links between processes: a cluster secret and mutual TLS set by flags
//! form a cluster that serves a quorum queue; a node with another secret never joins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicAckOptions;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::common::lapin::{confirming, next_delivery, publish_acked, table, text};
use super::{channel, durable_queue};
use crate::nodes::Nodes;

/// Writes an owner-only secret file (the broker refuses a looser one).
fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).expect("secret file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// A CA and three node certificates (for both ends of a link), as PEM files in `dir`;
/// returns each node's TLS flags.
fn tls_flags(dir: &Path) -> Vec<Vec<String>> {
    let mut params = CertificateParams::new(Vec::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "warren cluster CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    let ca_pem = params.self_signed(&key).expect("CA cert").pem();
    let issuer = Issuer::new(params, key);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("PEM file");
        path.display().to_string()
    };
    let ca = write("ca.pem", &ca_pem);
    (1..=3)
        .map(|i| {
            let name = format!("n{i}");
            let mut params = CertificateParams::new(vec![name.clone()]).expect("node params");
            params.distinguished_name.push(DnType::CommonName, &name);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate().expect("node key");
            let cert = params.signed_by(&key, &issuer).expect("node cert");
            vec![
                "--cluster-tls-cert".to_owned(),
                write(&format!("{name}.pem"), &cert.pem()),
                "--cluster-tls-key".to_owned(),
                write(&format!("{name}.key"), &key.serialize_pem()),
                "--cluster-tls-ca".to_owned(),
                ca.clone(),
            ]
        })
        .collect()
}

/// `text` without its ANSI escape sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_secret_and_tls_serves_a_quorum_queue() {
    let files = tempfile::tempdir().expect("dir");
    let secret = secret_file(files.path(), "secret", "a-shared-secret-of-the-test");
    let extra = tls_flags(files.path())
        .into_iter()
        .map(|mut flags| {
            flags.push("--cluster-secret-file".into());
            flags.push(secret.display().to_string());
            flags
        })
        .collect();
    let nodes = Nodes::start_with(extra).await;
    // The log may be coloured: drop the ANSI escapes before looking for the fields.
    let log = strip_ansi(&nodes.log(0));
    assert!(
        log.contains("cluster links secured") && log.contains("secret=true tls=true"),
        "{log}"
    );

    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    ch1.queue_declare(
        "secured".into(),
        durable_queue(),
        table(&[("x-queue-type", text("quorum"))]),
    )
    .await
    .expect("quorum queue");
    // Confirmed (a majority has it, over TLS) through n2; consumed through n3.
    let (c2, _) = channel(&nodes.uri(1)).await;
    let ch2 = confirming(&c2).await;
    for n in 0..10u8 {
        publish_acked(&ch2, "", "secured", &[n], BasicProperties::default()).await;
    }
    let (_c3, ch3) = channel(&nodes.uri(2)).await;
    let mut consumer = super::remote_queues::consumer(&ch3, "secured", "n3", false).await;
    for n in 0..10u8 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, vec![n]);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secret_does_not_join() {
    let files = tempfile::tempdir().expect("dir");
    let good = secret_file(files.path(), "good", "the-cluster-secret-0123456789");
    let bad = secret_file(files.path(), "bad", "another-secret-0123456789");
    let flag = |path: &PathBuf| vec!["--cluster-secret-file".into(), path.display().to_string()];
    let nodes = Nodes::launch_all(vec![flag(&good), flag(&good), flag(&bad)]);
    // n1 and n2 form a cluster of two (a majority of the three named) and refuse n3's links,
    // which n3 is told of: no fixed wait, the logs and the API say when.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let mut formed = true;
        for i in 0..2 {
            let listed = nodes.listed_on(i).await.unwrap_or_default();
            let running = listed.iter().filter(|n| n.1).count();
            let leaders = listed.iter().filter(|n| n.2).count();
            formed &= running == 2 && leaders == 1;
        }
        let refused = (0..2).any(|i| nodes.log(i).contains("refused a cluster peer"));
        let told = nodes.log(2).contains("refused this node's link")
            || nodes.log(2).contains("refused a cluster peer");
        if formed && refused && told {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "formed {formed}, refused {refused}, told {told}; logs:\n{}\n----\n{}\n----\n{}",
            nodes.log(0),
            nodes.log(1),
            nodes.log(2)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..2 {
        let listed = nodes.listed_on(i).await.expect("nodes");
        assert!(
            !listed.iter().any(|n| n.0 == "warren@n3" && n.1),
            "n{} reports n3 running: {listed:?}",
            i + 1
        );
    }
    // n3 is in no cluster: it lists no running peer.
    let alone = nodes.listed_on(2).await.unwrap_or_default();
    assert!(
        !alone.iter().any(|n| n.0 != "warren@n3" && n.1),
        "n3 reaches a peer: {alone:?}"
    );
    assert!(!nodes.log(2).contains("the-cluster-secret"));
}
