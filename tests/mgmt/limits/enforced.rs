//! Vhost and user limits enforced on the wire: connection.open,
//! channel.open and queue.declare refused with RabbitMQ's codes and texts, in
//! RabbitMQ's order, and never passed by clients racing for the last slot.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, connection};

use super::{add_user, open_as, opened};
use crate::common::lapin::{Client, declare_queue, refused};
use crate::common::raw::{RawClient, Seen, channel_open};
use crate::start;

#[tokio::test]
async fn vhost_max_connections_refuses_connection_open() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-connections", r#"{"value":2}"#)
            .await
            .status,
        204
    );
    let _first = opened(broker.addr, "guest", "guest").await;
    let _second = opened(broker.addr, "guest", "guest").await;
    let mut third = open_as(broker.addr, "guest", "guest", "/").await;
    assert_eq!(
        third.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (2) is reached"
                .to_owned(),
            10,
            40
        )
    );
    third.close_ok_and_expect_eof().await;

    // 0: no connection at all.
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-connections", r#"{"value":0}"#)
            .await
            .status,
        204
    );
    let mut none = open_as(broker.addr, "guest", "guest", "/").await;
    let (text, _, _) = none.expect_connection_close(530).await;
    assert!(text.ends_with("connection limit (0) is reached"), "{text}");

    assert_eq!(
        api.delete("/api/vhost-limits/%2F/max-connections")
            .await
            .status,
        204
    );
    let _third = opened(broker.addr, "guest", "guest").await;
}

#[tokio::test]
async fn user_max_connections_refuses_connection_open() {
    let (broker, api) = start().await;
    add_user(&api, "bob").await;
    assert_eq!(
        api.put("/api/user-limits/bob/max-connections", r#"{"value":1}"#)
            .await
            .status,
        204
    );
    let _bob = opened(broker.addr, "bob", "pw").await;
    let mut again = open_as(broker.addr, "bob", "pw", "/").await;
    assert_eq!(
        again.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - connection refused for user 'bob': user connection limit (1) is reached"
                .to_owned(),
            10,
            40
        )
    );
    // Other users are not counted.
    let _guest = opened(broker.addr, "guest", "guest").await;
    let _guest2 = opened(broker.addr, "guest", "guest").await;
}

#[tokio::test]
async fn user_max_channels_refuses_channel_open_over_all_connections() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/user-limits/guest/max-channels", r#"{"value":2}"#)
            .await
            .status,
        204
    );
    let mut a = RawClient::open(broker.addr).await;
    a.open_channel(1).await;
    let mut b = RawClient::open(broker.addr).await;
    b.open_channel(1).await;
    b.send_method(2, channel_open()).await;
    assert_eq!(
        b.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - number of channels opened for user 'guest' has reached the maximum allowed user limit of (2)"
                .to_owned(),
            0,
            0
        )
    );
    b.close_ok_and_expect_eof().await;
    // b's channel is gone with its connection: a may open another.
    let guest_channels = async || broker.broker.channels_of("guest");
    assert_eq!(crate::common::eventually(1, guest_channels).await, 1);
    a.open_channel(2).await;
}

#[tokio::test]
async fn vhost_max_queues_refuses_a_new_queue_only() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-queues", r#"{"value":2}"#)
            .await
            .status,
        204
    );
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "q1").await;
    declare_queue(&ch, "q2").await;
    // Redeclaring one that exists is fine.
    declare_queue(&ch, "q1").await;
    assert_eq!(
        refused(
            ch.queue_declare(
                "q3".into(),
                QueueDeclareOptions::default(),
                FieldTable::default()
            )
            .await
        ),
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) is reached"
                .to_owned()
        )
    );
    let by_api = api.put("/api/queues/%2F/q4", "{}").await;
    assert_eq!(
        (by_api.status, by_api.json()["reason"].clone()),
        (
            400,
            json!("cannot declare queue 'q4': queue limit in vhost '/' (2) is reached")
        )
    );
    assert_eq!(api.delete("/api/queues/%2F/q2").await.status, 204);
    assert_eq!(api.put("/api/queues/%2F/q4", "{}").await.status, 201);
    assert_eq!(
        api.delete("/api/vhost-limits/%2F/max-queues").await.status,
        204
    );
    assert_eq!(api.put("/api/queues/%2F/q5", "{}").await.status, 201);
}

#[tokio::test]
async fn a_raw_queue_declare_over_max_queues_closes_the_channel() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-queues", r#"{"value":0}"#)
            .await
            .status,
        204
    );
    let mut c = RawClient::open(broker.addr).await;
    c.open_channel(1).await;
    c.send_method(1, crate::common::raw::queue_declare("q"))
        .await;
    let (text, class, method) = c.expect_channel_close(1, 406).await;
    assert_eq!(
        (text.as_str(), class, method),
        (
            "PRECONDITION_FAILED - cannot declare queue 'q': queue limit in vhost '/' (0) is reached",
            50,
            10
        )
    );
}

#[tokio::test]
async fn connection_limits_are_checked_before_vhost_access() {
    // As RabbitMQ 3.10.8 orders them: the vhost's limit, the user's, then
    // whether the user may use the vhost at all.
    let (broker, api) = start().await;
    let user = api
        .put("/api/users/noperm", r#"{"password":"pw","tags":""}"#)
        .await;
    assert_eq!(user.status, 201);
    let mut no_access = open_as(broker.addr, "noperm", "pw", "/").await;
    let (text, _, _) = no_access.expect_connection_close(530).await;
    assert_eq!(
        text,
        "NOT_ALLOWED - access to vhost '/' refused for user 'noperm'"
    );
    let limit = r#"{"value":0}"#;
    assert_eq!(
        api.put("/api/user-limits/noperm/max-connections", limit)
            .await
            .status,
        204
    );
    let mut user_limit = open_as(broker.addr, "noperm", "pw", "/").await;
    assert_eq!(
        user_limit.expect_connection_close(530).await,
        (
            "NOT_ALLOWED - connection refused for user 'noperm': user connection limit (0) is reached"
                .to_owned(),
            10,
            40
        )
    );
    assert_eq!(
        api.put("/api/vhost-limits/%2F/max-connections", limit)
            .await
            .status,
        204
    );
    let mut vhost_limit = open_as(broker.addr, "noperm", "pw", "/").await;
    let (text, _, _) = vhost_limit.expect_connection_close(530).await;
    assert_eq!(
        text,
        "NOT_ALLOWED - access to vhost '/' refused for user 'noperm': connection limit (0) is reached"
    );
}

#[tokio::test]
async fn a_closed_channel_with_a_consumer_no_longer_counts() {
    let (broker, api) = start().await;
    assert_eq!(
        api.put("/api/user-limits/guest/max-channels", r#"{"value":1}"#)
            .await
            .status,
        204
    );
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "consumed").await;
    let _consumer = crate::common::lapin::consume(&ch, "consumed").await;
    ch.close(200, "bye".into()).await.expect("close");
    let guest_channels = async || broker.broker.channels_of("guest");
    assert_eq!(crate::common::eventually(0, guest_channels).await, 0);
    let again = client.channel().await;
    declare_queue(&again, "consumed").await;
}

#[tokio::test]
async fn concurrent_declares_never_pass_max_queues_together() {
    use std::sync::{Arc, Barrier};
    use warren::names::ConnectionId;
    use warren::vhost::QueueDeclare;

    let (broker, api) = start().await;
    let r = api
        .put("/api/vhost-limits/%2F/max-queues", r#"{"value":1}"#)
        .await;
    assert_eq!(r.status, 204);
    let vhost = broker.broker.vhost("/").expect("default vhost");
    let declare = |name: String| QueueDeclare {
        name,
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Default::default(),
        server_named: false,
        quorum: None,
    };
    // Two threads race to declare different queues into the one free slot,
    // round after round; never may both win.
    const ROUNDS: usize = 2000;
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|t| {
            let (vhost, barrier) = (vhost.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut won = Vec::with_capacity(ROUNDS);
                for round in 0..ROUNDS {
                    barrier.wait();
                    let req = declare(format!("q{t}-{round}"));
                    won.push(vhost.declare_queue(&req, ConnectionId(1)).is_ok());
                    barrier.wait();
                    if t == 0 {
                        for q in vhost.queues() {
                            vhost.remove_queue(&q);
                        }
                    }
                }
                won
            })
        })
        .collect();
    let results: Vec<Vec<bool>> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    let both = (0..ROUNDS)
        .filter(|&i| results[0][i] && results[1][i])
        .count();
    let none = (0..ROUNDS)
        .filter(|&i| !results[0][i] && !results[1][i])
        .count();
    assert_eq!(
        (both, none),
        (0, 0),
        "rounds where both or neither declared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_never_pass_max_connections_together() {
    let (broker, api) = start().await;
    let r = api
        .put("/api/vhost-limits/%2F/max-connections", r#"{"value":1}"#)
        .await;
    assert_eq!(r.status, 204);
    let open_ok = |seen: &Seen| {
        matches!(
            seen,
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))
            ))
        )
    };
    for round in 0..30 {
        let (mut a, mut b) = tokio::join!(
            open_as(broker.addr, "guest", "guest", "/"),
            open_as(broker.addr, "guest", "guest", "/"),
        );
        let (seen_a, seen_b) = tokio::join!(a.next(), b.next());
        let opened = usize::from(open_ok(&seen_a)) + usize::from(open_ok(&seen_b));
        assert_eq!(opened, 1, "round {round}: {seen_a:?} / {seen_b:?}");
        drop((a, b));
        let live = crate::common::eventually(0, async || broker.broker.connections.len()).await;
        assert_eq!(live, 0, "round {round}: connections left");
    }
}
