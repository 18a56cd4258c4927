//! Direct reply-to: the `amq.rabbitmq.reply-to` pseudo-queue. Consuming it in
//! no-ack mode makes a channel's reply consumer; requests published from that
//! channel with `reply_to` set to it carry the consumer's address instead; a
//! reply published to that address reaches the consumer without a queue. Codes,
//! texts and behaviour are those of RabbitMQ 3.10.8 (rabbit_channel's fast
//! reply-to, unchanged in 3.13).

use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Consumer};

use crate::common::lapin::{Client, consume_with, next_delivery, refused, table, try_publish};
use crate::common::start;
use crate::{declare, get_some, send, setup};

const PSEUDO_QUEUE: &str = "amq.rabbitmq.reply-to";

fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

/// basic.consume of the pseudo-queue, no-ack.
async fn reply_consumer(ch: &Channel) -> Consumer {
    consume_with(ch, PSEUDO_QUEUE, "", no_ack()).await
}

fn asking() -> BasicProperties {
    BasicProperties::default().with_reply_to(PSEUDO_QUEUE.into())
}

fn reply_to(properties: &BasicProperties) -> String {
    properties
        .reply_to()
        .as_ref()
        .map(|r| r.to_string())
        .expect("a reply_to property")
}

/// Sends a request from `requester` to queue `service` and returns the address
/// the server sees in its `reply_to`.
async fn request(requester: &Channel, server: &Channel, service: &str) -> String {
    let confirm = send(requester, "", service, b"request", asking()).await;
    assert!(confirm.is_ack(), "{confirm:?}");
    let request = get_some(server, service).await.delivery;
    request
        .acker
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    reply_to(&request.properties)
}

/// A passive queue.declare on a fresh channel: (messages, consumers) or the refusal.
async fn check_queue(client: &Client, name: &str) -> Result<(u32, u32), (u16, String)> {
    let ch = client.channel().await;
    let result = ch
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match result {
        Ok(q) => {
            let _ = ch.close(200, "done".into()).await;
            Ok((q.message_count(), q.consumer_count()))
        }
        Err(e) => Err(crate::common::lapin::amqp_error(&e)),
    }
}

fn not_found(name: &str) -> (u16, String) {
    (404, format!("NOT_FOUND - no queue '{name}' in vhost '/'"))
}

/// Publishes a mandatory reply and returns the reply code it came back with
/// (None: not returned).
async fn mandatory_reply(ch: &Channel, address: &str, body: &[u8]) -> Option<u16> {
    let confirm = try_publish(ch, "", address, true, body, BasicProperties::default())
        .await
        .expect("confirm");
    match confirm {
        Confirmation::Ack(returned) => returned.map(|r| r.reply_code),
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_carries_an_address_that_routes_the_reply_back() {
    let (broker, server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let mut replies = reply_consumer(&requester).await;

    let address = request(&requester, &server, "rpc").await;
    assert!(
        address.starts_with("amq.rabbitmq.reply-to.") && address.len() > 40,
        "{address}"
    );
    // The address is the channel's: every request from it carries the same one.
    assert_eq!(request(&requester, &server, "rpc").await, address);
    // A live address passes the passive declare servers use to check for it.
    assert_eq!(check_queue(&server_client, &address).await, Ok((0, 1)));

    let answer = BasicProperties::default().with_correlation_id("42".into());
    let confirm = send(&server, "", &address, b"pong", answer).await;
    assert!(matches!(confirm, Confirmation::Ack(None)), "{confirm:?}");
    let reply = next_delivery(&mut replies).await;
    assert_eq!(reply.data, b"pong");
    assert_eq!(reply.exchange.as_str(), "");
    assert_eq!(reply.routing_key.as_str(), address);
    assert!(!reply.redelivered);
    assert_eq!(
        reply
            .properties
            .correlation_id()
            .as_ref()
            .map(ShortString::as_str),
        Some("42")
    );
    // Replies take tags from the channel's sequence. (RabbitMQ hands a reply the
    // channel's next tag without taking it, so its replies repeat tags; tags
    // that only go up are what the protocol promises.)
    send(&server, "", &address, b"again", BasicProperties::default()).await;
    let second = next_delivery(&mut replies).await;
    assert_eq!(second.data, b"again");
    assert!(second.delivery_tag > reply.delivery_tag);
    // The reply consumer is no queue: the service queue is all there is.
    assert_eq!(check_queue(&client, "rpc").await, Ok((0, 0)));
}

#[tokio::test]
async fn a_message_dead_lettered_to_a_reply_address_reaches_the_reply_consumer() {
    let (broker, _server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let mut replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    // A queue whose messages expire at once into the default exchange with the
    // reply address as their routing key.
    declare(
        &server,
        "bounce",
        &[
            ("x-message-ttl", crate::int(0)),
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(address.as_str().into()),
            ),
        ],
    )
    .await;
    send(
        &server,
        "",
        "bounce",
        b"late reply",
        BasicProperties::default(),
    )
    .await;
    let reply = next_delivery(&mut replies).await;
    assert_eq!(reply.data, b"late reply");
    assert_eq!(reply.routing_key.as_str(), address);
}

#[tokio::test]
async fn each_channel_has_its_own_address() {
    let (broker, _server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let (a, b) = (client.confirming().await, client.confirming().await);
    let (mut replies_a, mut replies_b) = (reply_consumer(&a).await, reply_consumer(&b).await);
    let address_a = request(&a, &server, "rpc").await;
    let address_b = request(&b, &server, "rpc").await;
    assert_ne!(address_a, address_b);
    send(
        &server,
        "",
        &address_b,
        b"for b",
        BasicProperties::default(),
    )
    .await;
    send(
        &server,
        "",
        &address_a,
        b"for a",
        BasicProperties::default(),
    )
    .await;
    assert_eq!(next_delivery(&mut replies_a).await.data, b"for a");
    assert_eq!(next_delivery(&mut replies_b).await.data, b"for b");
}

#[tokio::test]
async fn a_reply_consumer_must_be_no_ack() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let result = ch
        .basic_consume(
            PSEUDO_QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(
        refused(result),
        (
            406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge".to_owned()
        )
    );
}

#[tokio::test]
async fn a_channel_has_at_most_one_reply_consumer() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    let first = reply_consumer(&ch).await;
    assert!(first.tag().as_str().starts_with("amq.ctag-"));
    let result = ch
        .basic_consume(
            PSEUDO_QUEUE.into(),
            "second".into(),
            no_ack(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(
        refused(result),
        (
            406,
            "PRECONDITION_FAILED - reply consumer already set".to_owned()
        )
    );
    // Another channel of the same connection may have its own.
    let other = client.channel().await;
    reply_consumer(&other).await;
}

#[tokio::test]
async fn a_reply_consumer_cannot_reuse_a_consumer_tag() {
    let broker = start().await;
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "q", &[]).await;
    consume_with(&ch, "q", "tag", no_ack()).await;
    let result = ch
        .basic_consume(
            PSEUDO_QUEUE.into(),
            "tag".into(),
            no_ack(),
            FieldTable::default(),
        )
        .await;
    // A connection error, as in RabbitMQ.
    assert_eq!(
        refused(result),
        (
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 'tag'".to_owned()
        )
    );
}

#[tokio::test]
async fn asking_for_replies_without_a_reply_consumer_is_refused() {
    let broker = start().await;
    let mut client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare(&ch, "rpc", &[]).await;
    let _ = ch
        .basic_publish(
            "".into(),
            "rpc".into(),
            BasicPublishOptions::default(),
            b"request",
            asking(),
        )
        .await;
    assert_eq!(
        client.exception().await,
        (
            406,
            "PRECONDITION_FAILED - fast reply consumer does not exist".to_owned()
        )
    );
    // The refused request went nowhere.
    assert_eq!(check_queue(&client, "rpc").await, Ok((0, 0)));
}

#[tokio::test]
async fn declaring_reply_to_names_checks_them() {
    let (_broker, client, server) = setup().await;
    // The pseudo-queue always exists, with its one consumer, whatever the flags.
    assert_eq!(check_queue(&client, PSEUDO_QUEUE).await, Ok((0, 1)));
    let ok = server
        .queue_declare(
            PSEUDO_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare-ok");
    assert_eq!(
        (ok.name().as_str(), ok.message_count(), ok.consumer_count()),
        (PSEUDO_QUEUE, 0, 1)
    );
    for name in ["amq.rabbitmq.reply-to.nobody", "amq.rabbitmq.reply-toX"] {
        assert_eq!(check_queue(&client, name).await, Err(not_found(name)));
    }
    // Declaring it names it for the empty-name shortcut: consume "" is a reply consumer.
    let _replies = server
        .basic_consume("".into(), "r".into(), no_ack(), FieldTable::default())
        .await
        .expect("consume-ok");
    declare(&server, "rpc", &[]).await;
    let address = request(&server, &server, "rpc").await;
    assert_eq!(check_queue(&client, &address).await, Ok((0, 1)));
}

#[tokio::test]
async fn replies_count_as_unrouted_for_mandatory() {
    let (broker, _server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let mut replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    // Delivered, and returned all the same: RabbitMQ routes it to no queue.
    assert_eq!(mandatory_reply(&server, &address, b"one").await, Some(312));
    assert_eq!(next_delivery(&mut replies).await.data, b"one");
    let unknown = "amq.rabbitmq.reply-to.nobody";
    assert_eq!(mandatory_reply(&server, unknown, b"two").await, Some(312));
    let plain = try_publish(
        &server,
        "",
        unknown,
        false,
        b"three",
        BasicProperties::default(),
    )
    .await
    .expect("confirm");
    assert!(matches!(plain, Confirmation::Ack(None)), "{plain:?}");
}

#[tokio::test]
async fn a_reply_named_in_cc_is_delivered_with_the_published_key() {
    let (broker, _server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let mut replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    let cc = AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
        LongString::from(address.as_str()),
    )]));
    let headers = BasicProperties::default().with_headers(table(&[("CC", cc)]));
    send(&server, "", "elsewhere", b"via cc", headers).await;
    let reply = next_delivery(&mut replies).await;
    assert_eq!(reply.data, b"via cc");
    assert_eq!(reply.routing_key.as_str(), "elsewhere");
}

/// As in RabbitMQ, a reply goes out when it is published, not at tx.commit.
#[tokio::test]
async fn a_reply_published_in_a_transaction_goes_out_at_once() {
    let (broker, server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let mut replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    let tx = server_client.channel().await;
    tx.tx_select().await.expect("tx.select");
    tx.basic_publish(
        "".into(),
        address.as_str().into(),
        BasicPublishOptions::default(),
        b"in tx",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    assert_eq!(next_delivery(&mut replies).await.data, b"in tx");
    tx.tx_rollback().await.expect("rollback");
}

#[tokio::test]
async fn cancelling_the_reply_consumer_retires_its_address() {
    let (broker, server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let mut client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    requester
        .basic_cancel(replies.tag(), BasicCancelOptions::default())
        .await
        .expect("cancel-ok");
    assert_eq!(
        check_queue(&server_client, &address).await,
        Err(not_found(&address))
    );
    assert_eq!(mandatory_reply(&server, &address, b"late").await, Some(312));
    // A new reply consumer gets a new address.
    let _again = reply_consumer(&requester).await;
    let renewed = request(&requester, &server, "rpc").await;
    assert_ne!(renewed, address);
    assert_eq!(
        check_queue(&server_client, &address).await,
        Err(not_found(&address))
    );
    // Without a reply consumer, asking for replies is refused again.
    let bare = client.channel().await;
    let _ = bare
        .basic_publish(
            "".into(),
            "rpc".into(),
            BasicPublishOptions::default(),
            b"request",
            asking(),
        )
        .await;
    assert_eq!(client.exception().await.0, 406);
}

#[tokio::test]
async fn the_address_dies_with_the_requesting_channel() {
    let (broker, server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let _replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    requester.close(200, "done".into()).await.expect("close");
    assert_eq!(
        check_queue(&server_client, &address).await,
        Err(not_found(&address))
    );
    assert_eq!(mandatory_reply(&server, &address, b"late").await, Some(312));
}

#[tokio::test]
async fn the_address_dies_with_a_channel_closed_by_an_error() {
    let (broker, server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let mut client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let _replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    let _ = requester
        .queue_declare(
            "missing".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_eq!(client.exception().await.0, 404);
    assert_eq!(
        check_queue(&server_client, &address).await,
        Err(not_found(&address))
    );
    assert_eq!(mandatory_reply(&server, &address, b"late").await, Some(312));
}

#[tokio::test]
async fn the_address_dies_with_the_requesting_connection() {
    let (broker, server_client, server) = setup().await;
    declare(&server, "rpc", &[]).await;
    let client = Client::connect(&broker).await;
    let requester = client.confirming().await;
    let _replies = reply_consumer(&requester).await;
    let address = request(&requester, &server, "rpc").await;
    client.close().await;
    let gone = crate::common::eventually(Err(not_found(&address)), async || {
        check_queue(&server_client, &address).await
    })
    .await;
    assert_eq!(gone, Err(not_found(&address)));
    assert_eq!(mandatory_reply(&server, &address, b"late").await, Some(312));
}
