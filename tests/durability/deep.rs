//! A queue deeper than a segment file comes back after a restart from the
//! segments' summaries (no read of every record): every message, in order,
//! with its body, and the acked ones stay gone.

use super::common::lapin::{Client, counts};
use super::{declare_durable, drain, persistent, restart};
use lapin::options::{BasicGetOptions, BasicPublishOptions};

/// Enough 1 KiB messages for three 16 MiB segments.
const N: usize = 40_000;

fn body(i: usize) -> Vec<u8> {
    let mut b = vec![b'.'; 1024];
    let id = format!("{i:08}");
    b[..8].copy_from_slice(id.as_bytes());
    b
}

#[tokio::test]
async fn a_queue_over_several_segments_comes_back_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = super::common::start_at(dir.path(), |_| {}).await;
    let client = Client::connect(&broker).await;
    let ch = client.confirming().await;
    declare_durable(&ch, "deep").await;
    for i in 0..N {
        ch.basic_publish(
            "".into(),
            "deep".into(),
            BasicPublishOptions::default(),
            &body(i),
            persistent(),
        )
        .await
        .expect("publish");
    }
    assert!(ch.wait_for_confirms().await.expect("confirms").is_empty());
    // The first ten leave for good (acked through basic.get's auto-ack).
    for i in 0..10 {
        let got = ch
            .basic_get("deep".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .expect("a message");
        assert_eq!(got.delivery.data, body(i));
    }
    drop(client);
    // Twice: the first start writes what summaries the last run left out.
    let mut broker = broker;
    for _ in 0..2 {
        broker = restart(broker, dir.path()).await;
        let client = Client::connect(&broker).await;
        assert_eq!(counts(&client, "deep").await.0 as usize, N - 10);
    }
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let got = drain(&ch, "deep").await;
    assert_eq!(got.len(), N - 10);
    for (k, (data, redelivered)) in got.iter().enumerate() {
        assert_eq!(data, &body(k + 10), "message {}", k + 10);
        assert!(!redelivered, "never delivered before");
    }
    broker.stop().await;
}
