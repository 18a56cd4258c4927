//! The cluster refuses what a single node refuses, with the same codes and texts, on
//! every node.

use lapin::Channel;
use lapin::options::*;
use lapin::types::FieldTable;

use super::common::lapin::{refused, table, text};
use super::*;
use crate::nodes::Nodes;

/// One refusal case: what a client does, on a fresh channel, after `setup`.
async fn refusal(ch: &Channel, case: usize) -> (u16, String) {
    let durable = durable_queue();
    let none = FieldTable::default;
    match case {
        0 => refused(
            ch.exchange_declare(
                "amq.mine".into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                none(),
            )
            .await,
        ),
        1 => refused(ch.queue_declare("amq.mine".into(), durable, none()).await),
        2 => refused(
            ch.queue_declare(
                "limits".into(),
                durable,
                table(&[("x-max-length", text("ten"))]),
            )
            .await,
        ),
        3 => refused(
            ch.queue_bind(
                "shared".into(),
                "no-such-exchange".into(),
                "k".into(),
                QueueBindOptions::default(),
                none(),
            )
            .await,
        ),
        4 => refused(
            ch.queue_bind(
                "no-such-queue".into(),
                "amq.direct".into(),
                "k".into(),
                QueueBindOptions::default(),
                none(),
            )
            .await,
        ),
        5 => refused(
            ch.exchange_declare(
                "shared-x".into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                none(),
            )
            .await,
        ),
        6 => refused(
            ch.queue_declare("shared".into(), QueueDeclareOptions::default(), none())
                .await,
        ),
        7 => refused(
            ch.queue_declare(
                "shared".into(),
                durable,
                table(&[("x-max-length", AMQPValue::LongLongInt(5))]),
            )
            .await,
        ),
        8 => refused(
            ch.queue_declare(
                "a-stream".into(),
                QueueDeclareOptions::default(),
                table(&[("x-queue-type", text("stream"))]),
            )
            .await,
        ),
        9 => refused(
            ch.exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default())
                .await,
        ),
        10 => refused(
            ch.exchange_bind(
                "no-such-x".into(),
                "amq.direct".into(),
                "k".into(),
                Default::default(),
                none(),
            )
            .await,
        ),
        _ => unreachable!("no case {case}"),
    }
}

const CASES: usize = 11;

/// The queue `shared` and exchange `shared-x` the refusal cases run against.
async fn setup(ch: &Channel) {
    ch.queue_declare("shared".into(), durable_queue(), FieldTable::default())
        .await
        .expect("shared queue");
    durable_exchange(ch, "shared-x", ExchangeKind::Topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_refuses_as_a_single_node_does_on_every_node() {
    let single = common::start().await;
    let (_s, ch) = channel(&single.uri("")).await;
    setup(&ch).await;
    let mut expected = Vec::new();
    for case in 0..CASES {
        let (_c, ch) = channel(&single.uri("")).await;
        expected.push(refusal(&ch, case).await);
    }

    let nodes = Nodes::start().await;
    let (_c, ch) = channel(&nodes.uri(0)).await;
    setup(&ch).await;
    // Node 0 holds `shared`; nodes 1 and 2 only its record: the answers must not differ.
    for i in 0..3 {
        for (case, want) in expected.iter().enumerate() {
            let (_c, ch) = channel(&nodes.uri(i)).await;
            let got = refusal(&ch, case).await;
            assert_eq!(&got, want, "case {case} on node {i}");
        }
    }
    single.stop().await;
}
