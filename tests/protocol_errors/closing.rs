//! Closing: what counts once a close is under way.

use std::time::Duration;

use crate::common::raw::{
    Seen, assert_broker_healthy, channel_open, connection_close, connection_close_ok, heartbeat,
    open_vhost, queue_declare,
};
use crate::common::start;
use crate::{body, expect_method, qos, with_channel};

#[tokio::test]
async fn client_close_gets_close_ok_and_nothing_else() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(0, connection_close()).await;
    expect_method(&mut c, 0, connection_close_ok()).await;
    // The client has not hung up yet: a repeated close gets another close-ok;
    // anything else is ignored.
    c.send_method(2, channel_open()).await;
    c.send_method(1, qos()).await;
    c.send_method(0, connection_close()).await;
    expect_method(&mut c, 0, connection_close_ok()).await;
    assert_eq!(
        c.next_within(Duration::from_millis(300)).await,
        Seen::Nothing,
        "nothing more after close-ok"
    );
    drop(c);
    assert_broker_healthy(broker.addr).await;
}

#[tokio::test]
async fn after_a_server_close_only_close_ok_counts() {
    let broker = start().await;
    let mut c = with_channel(broker.addr).await;
    c.send_method(0, queue_declare("q")).await;
    let (text, _, _) = c.expect_connection_close(504).await;
    assert_eq!(
        text,
        "CHANNEL_ERROR - unexpected method in connection state running"
    );
    c.send_method(2, channel_open()).await;
    c.send_method(1, qos()).await;
    c.send_raw(&heartbeat(0)).await;
    c.send_raw(&body(1, b"hello")).await;
    c.send_method(0, open_vhost("/")).await;
    c.send_method(0, connection_close_ok()).await;
    assert_eq!(
        c.next().await,
        Seen::Closed,
        "no answer to ignored frames, TCP closed after close-ok"
    );
    assert_broker_healthy(broker.addr).await;
}
