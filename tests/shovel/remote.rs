//! Shovels between two Warrens: through a restart of the destination with
//! nothing lost, and to an amqps destination with RabbitMQ's URI TLS options.

use std::collections::HashSet;

use serde_json::json;

use crate::certs;
use crate::common;
use crate::common::lapin::{confirming, connect, declare_queue};
use crate::{drain_ids, publish_ids, put_shovel, ready, shovel_status, start_api, state_of};

#[tokio::test]
async fn warren_to_warren_through_a_destination_restart() {
    let dest_dir = tempfile::tempdir().expect("dir");
    let dest = common::start_at(dest_dir.path(), |_| {}).await;
    let dest_addr = dest.addr;
    let (src, api) = start_api(None).await;
    let src_conn = connect(&src.uri("")).await;
    let ch = confirming(&src_conn).await;
    declare_queue(&ch, "outbox").await;
    put_shovel(
        &api,
        "w2w",
        json!({"src-uri": "amqp://", "src-queue": "outbox",
               "dest-uri": format!("amqp://guest:guest@{dest_addr}/%2F"),
               "dest-queue": "inbox", "reconnect-delay": 0.2, "src-prefetch-count": 50}),
    )
    .await;
    publish_ids(&ch, "outbox", 0..200).await;
    let dest_conn = connect(&dest.uri("")).await;
    let some = common::eventually(true, async || ready(&dest_conn, "inbox").await > 0).await;
    assert!(some);
    drop(dest_conn);
    dest.stop().await;
    // While the destination is down: published, not lost.
    publish_ids(&ch, "outbox", 200..400).await;
    let terminated = common::eventually("terminated".to_owned(), async || {
        state_of(&api, "w2w").await
    })
    .await;
    assert_eq!(terminated, "terminated");
    let dest = common::start_at_addr(dest_dir.path(), dest_addr, |_| {}).await;
    let running =
        common::eventually("running".to_owned(), async || state_of(&api, "w2w").await).await;
    assert_eq!(running, "running");
    assert_eq!(
        common::eventually(0, async || ready(&src_conn, "outbox").await).await,
        0
    );
    let dest_conn = connect(&dest.uri("")).await;
    let ids = drain_ids(&dest_conn, "inbox").await;
    let unique: HashSet<&String> = ids.iter().collect();
    let missing: Vec<u32> = (0..400)
        .filter(|i| !unique.contains(&i.to_string()))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    println!(
        "warren-to-warren: 400 published, {} received, {} duplicates",
        ids.len(),
        ids.len() - unique.len()
    );
}

#[tokio::test]
async fn amqps_destination_with_rabbitmqs_uri_options() {
    let pki = certs::Pki::new("shovel CA");
    let dest = common::start_tls(|config| {
        config.tls_cert = Some(pki.server_cert.clone());
        config.tls_key = Some(pki.server_key.clone());
        config.tls_ca = Some(pki.ca.clone());
        config.tls_verify_peer = true;
        config.tls_fail_if_no_peer_cert = true;
    })
    .await;
    let tls = dest.tls_addr.expect("amqps listener");
    let client = pki.client(Some("shovel"));
    let cert = pki.write("client.pem", &client.cert_pem);
    let key = pki.write("client.key", &client.key_pem);
    let (src, api) = start_api(None).await;
    let uri = |query: String| format!("amqps://guest:guest@{tls}/%2F?{query}");
    let with_identity = format!("certfile={}&keyfile={}", cert.display(), key.display());
    for (name, query) in [
        (
            "trusted",
            format!(
                "cacertfile={}&{with_identity}&verify=verify_peer&server_name_indication=localhost",
                pki.ca.display()
            ),
        ),
        ("unverified", format!("{with_identity}&verify=verify_none")),
        ("untrusted", with_identity.clone()),
    ] {
        put_shovel(
            &api,
            name,
            json!({"src-uri": "amqp://", "src-queue": format!("q-{name}"),
                   "dest-uri": uri(query), "dest-queue": format!("q-{name}"),
                   "reconnect-delay": 0.2}),
        )
        .await;
    }
    for name in ["trusted", "unverified"] {
        let state =
            common::eventually("running".to_owned(), async || state_of(&api, name).await).await;
        assert_eq!(
            state,
            "running",
            "{name}: {:?}",
            shovel_status(&api, name).await
        );
    }
    // The system's roots do not know the test CA.
    let state = common::eventually("terminated".to_owned(), async || {
        state_of(&api, "untrusted").await
    })
    .await;
    assert_eq!(state, "terminated");
    let conn = connect(&src.uri("")).await;
    let ch = confirming(&conn).await;
    publish_ids(&ch, "q-trusted", 0..10).await;
    let dest_conn = connect(&dest.uri("")).await;
    assert_eq!(
        common::eventually(10, async || ready(&dest_conn, "q-trusted").await).await,
        10
    );
    let s = shovel_status(&api, "trusted").await.expect("listed");
    let shown = s["dest_uri"].as_str().unwrap_or_default();
    assert!(
        shown.starts_with("amqps://guest@") && !shown.contains("guest:guest"),
        "{shown}"
    );
}
