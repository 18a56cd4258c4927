//! The handshake, tuning, channels and closing, as lapin (a real client) sees them.

mod common;

use std::time::Duration;

use common::lapin::connect;
use common::raw::{
    RawClient, Seen, assert_broker_healthy, channel_open, frame, heartbeat, open_vhost, tune_ok,
};
use common::{eventually, start, start_with};
use lapin::{Connection, ConnectionProperties};
use warren_codec::Frame;
use warren_codec::protocol::{AMQPClass, connection};
use warren_codec::types::AMQPValue;

/// Logged in as guest, tune-ok sent with heartbeats every second, connection.open
/// sent; nothing read after connection.tune.
async fn opening_with_heartbeats(addr: std::net::SocketAddr) -> RawClient {
    let mut c = RawClient::connect(addr).await;
    c.start_ok(b"\0guest\0guest", false).await.expect("tune");
    c.send_method(0, tune_ok(2047, 131_072, 1)).await;
    c.send_method(0, open_vhost("/")).await;
    c
}

#[tokio::test]
async fn lapin_handshake_negotiates_rabbitmq_defaults() {
    let broker = start().await;
    let conn = connect(&broker.uri("")).await;
    assert!(conn.status().connected());
    let config = conn.configuration();
    assert_eq!(config.channel_max(), 2047);
    assert_eq!(config.frame_max(), 131_072);
    assert_eq!(config.heartbeat(), 60);
    conn.close(200, "bye".into()).await.expect("close");
    assert!(conn.status().closed());
}

#[tokio::test]
async fn client_lower_limits_win() {
    let broker = start().await;
    let conn = connect(&broker.uri("heartbeat=5&frame_max=8192&channel_max=10")).await;
    let config = conn.configuration();
    assert_eq!(
        (config.channel_max(), config.frame_max(), config.heartbeat()),
        (10, 8192, 5)
    );
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn server_properties_advertise_rabbitmq_capabilities() {
    let broker = start().await;
    let mut c = RawClient::connect(broker.addr).await;
    c.send_raw(&warren_codec::frame::PROTOCOL_HEADER).await;
    let start = c.expect_start().await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert_eq!(start.mechanisms.as_bytes(), b"PLAIN AMQPLAIN");
    assert_eq!(start.locales.as_bytes(), b"en_US");
    let Some(AMQPValue::FieldTable(caps)) = start.server_properties.inner().get("capabilities")
    else {
        panic!("no capabilities table");
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        assert_eq!(
            caps.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "{cap}"
        );
    }
    // Clients check for RabbitMQ (amqplib's own suite asserts it); Warren names
    // itself in platform and information.
    let text = |key: &str| match start.server_properties.inner().get(key) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(text("product"), "RabbitMQ");
    assert_eq!(text("version"), "3.13.7");
    assert!(
        text("platform").starts_with("Warren "),
        "{}",
        text("platform")
    );
    for key in [
        "product",
        "version",
        "platform",
        "cluster_name",
        "copyright",
        "information",
    ] {
        assert!(start.server_properties.inner().contains_key(key), "{key}");
    }
}

#[tokio::test]
async fn three_hundred_channels_open_and_close() {
    let broker = start().await;
    let conn = connect(&broker.uri("")).await;
    let mut channels = Vec::new();
    for _ in 0..300 {
        channels.push(conn.create_channel().await.expect("channel"));
    }
    let mut ids: Vec<u16> = channels.iter().map(|c| c.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    for ch in &channels {
        ch.close(200, "done".into()).await.expect("close channel");
    }
    // Closed channels free their slots: more can be opened.
    let again = conn.create_channel().await.expect("channel after closes");
    assert!(again.status().connected());
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn channel_max_counts_open_channels() {
    let broker = start().await;
    let mut c = RawClient::open_tuned(broker.addr, 131_072, 3).await;
    // Ids above channel_max are fine (RabbitMQ counts channels, not ids).
    for id in [1, 2, 500] {
        c.open_channel(id).await;
    }
    c.send_method(4, channel_open()).await;
    let (text, _, _) = c.expect_connection_close(530).await;
    assert_eq!(
        text,
        "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)"
    );
    c.close_ok_and_expect_eof().await;
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn lapin_sees_channel_max_refusal() {
    let broker = start().await;
    let conn = connect(&broker.uri("channel_max=2")).await;
    // Dropping a lapin channel closes it: keep both open.
    let _first = conn.create_channel().await.expect("first");
    let _second = conn.create_channel().await.expect("second");
    assert!(
        conn.create_channel().await.is_err(),
        "a third channel is refused"
    );
}

#[tokio::test]
async fn heartbeats_are_sent_at_the_negotiated_interval() {
    let broker = start().await;
    let mut c = opening_with_heartbeats(broker.addr).await;
    assert!(matches!(
        c.next().await,
        Seen::Frame(Frame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))
        ))
    ));
    // Keep the server from timing us out while we count its heartbeats.
    let mut heartbeats = 0;
    while heartbeats < 3 {
        c.send_raw(&heartbeat(0)).await;
        match c.next().await {
            Seen::Frame(Frame::Heartbeat(0)) => heartbeats += 1,
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_client_is_disconnected_after_missed_heartbeats() {
    let broker = start().await;
    let mut c = opening_with_heartbeats(broker.addr).await;
    // The client never sends anything again: the server drops it (no close frame).
    loop {
        match c.next().await {
            Seen::Frame(Frame::Heartbeat(0)) => continue,
            Seen::Frame(Frame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)),
            )) => continue,
            Seen::Closed => break,
            other => panic!("expected heartbeats then a close, got {other:?}"),
        }
    }
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn lapin_with_heartbeats_stays_connected() {
    let broker = start().await;
    let conn = connect(&broker.uri("heartbeat=1")).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        conn.status().connected(),
        "lapin's heartbeats keep the connection up"
    );
    let ch = conn.create_channel().await.expect("channel");
    assert!(ch.status().connected());
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn frame_max_is_enforced_and_bodies_split_by_it() {
    let broker = start().await;
    let mut c = RawClient::open_tuned(broker.addr, 4096, 2047).await;
    c.open_channel(1).await;
    // A 5000-octet payload on a 4096 frame_max connection.
    c.send_raw(&frame(3, 1, &[0u8; 5000])).await;
    let (text, class, method) = c.expect_connection_close(501).await;
    assert_eq!(
        text,
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}"
    );
    assert_eq!((class, method), (0, 0));
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn client_close_gets_close_ok() {
    let broker = start().await;
    let conn = connect(&broker.uri("")).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.close(200, "done".into()).await.expect("channel close");
    conn.close(200, "bye".into())
        .await
        .expect("close-ok arrives");
    assert!(conn.status().closed());
}

#[tokio::test]
async fn broker_shutdown_closes_connections_with_320() {
    let broker = start().await;
    let mut c = RawClient::open(broker.addr).await;
    let stopping = tokio::spawn(broker.stop());
    let (text, _, _) = c.expect_connection_close(320).await;
    assert_eq!(
        text,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    );
    c.close_ok_and_expect_eof().await;
    stopping.await.expect("broker stopped");
}

#[tokio::test]
async fn lapin_notices_broker_shutdown() {
    let broker = start().await;
    let conn = connect(&broker.uri("")).await;
    broker.stop().await;
    assert!(eventually(true, async || !conn.status().connected()).await);
}

#[tokio::test]
async fn wrong_vhost_is_530() {
    let broker = start().await;
    let err = Connection::connect(
        &format!("amqp://guest:guest@{}/nosuch", broker.addr),
        ConnectionProperties::default(),
    )
    .await
    .expect_err("unknown vhost");
    assert!(err.to_string().contains("vhost nosuch not found"), "{err}");
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let broker = start().await;
    let err = Connection::connect(
        &format!("amqp://guest:nope@{}/%2f", broker.addr),
        ConnectionProperties::default(),
    )
    .await
    .expect_err("bad password");
    assert!(!err.to_string().is_empty());
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn config_can_change_the_offered_limits() {
    let broker = start_with(|c| {
        c.channel_max = 100;
        c.heartbeat = 30;
    })
    .await;
    let conn = connect(&broker.uri("")).await;
    assert_eq!(conn.configuration().channel_max(), 100);
    assert_eq!(conn.configuration().heartbeat(), 30);
}
