//! `warrenctl explain EXCHANGE ROUTING_KEY`: the request it sends to
//! `POST /api/route-explain/{vhost}` and how it prints the answer, against
//! the fake API and against Warren.

use serde_json::json;

use super::fake::Fake;
use super::settings::{run, warren};
use super::{ctl, fails, ok};

#[test]
fn explain_sends_the_message_and_prints_each_hop() {
    let answer = json!({
        "exchange": "orders", "routing_keys": ["order.eu"], "routed": true,
        "queues": ["q2"], "direct_reply_to_consumers": 0,
        "hops": [
            {"exchange": "orders", "type": "topic", "partition": null, "alternate_exchange": null,
             "bindings": [{"destination": "parts", "destination_type": "exchange",
                           "routing_key": "order.#", "arguments": {}}]},
            {"exchange": "parts", "type": "x-consistent-hash", "alternate_exchange": null,
             "partition": {"hashed": "routing key", "hash": 7, "destination": "q2",
                           "destination_type": "queue", "of": 256},
             "bindings": [{"destination": "q2", "destination_type": "queue",
                           "routing_key": "1", "arguments": {}}]}
        ]
    });
    let body = answer.to_string();
    let api = Fake::start(move |_| (200, body.clone()));
    let out = ok(ctl(
        &api.url(),
        &[
            "--vhost",
            "v1",
            "explain",
            "orders",
            "order.eu",
            "--header",
            "n=2",
            "--property",
            "message_id=m1",
        ],
    ));
    assert_eq!(
        out,
        "routing keys: order.eu\n\
         exchange 'orders' (topic) --[order.#]--> exchange 'parts'\n\
         exchange 'parts' (x-consistent-hash): hashed the routing key -> queue 'q2'\n\
         exchange 'parts' (x-consistent-hash) --[1]--> queue 'q2'\n\
         queues: q2\n"
    );
    let r = api.only_request();
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/api/route-explain/v1")
    );
    assert_eq!(
        r.json(),
        json!({"exchange": "orders", "routing_key": "order.eu", "headers": {"n": 2},
               "properties": {"message_id": "m1"}})
    );
}

#[test]
fn explain_of_a_missing_exchange_fails_in_one_line() {
    let api = Fake::start(|r| {
        if r.path.starts_with("/api/vhosts/") {
            (200, "{}".into())
        } else {
            (
                404,
                r#"{"error":"Object Not Found","reason":"Not Found"}"#.into(),
            )
        }
    });
    assert_eq!(
        fails(ctl(&api.url(), &["explain", "nope", "k"])),
        "exchange 'nope' not found in vhost '/'"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_against_warren() {
    let (_broker, url) = warren().await;
    ok(run(&url, &["declare", "queue", "ex-q"]).await);
    ok(run(
        &url,
        &["declare", "exchange", "ex-x", "--type", "x-modulus-hash"],
    )
    .await);
    ok(run(
        &url,
        &[
            "declare",
            "binding",
            "--source",
            "ex-x",
            "--destination",
            "ex-q",
        ],
    )
    .await);
    let out = ok(run(&url, &["explain", "ex-x", "anything"]).await);
    assert_eq!(
        out,
        "routing keys: anything\n\
         exchange 'ex-x' (x-modulus-hash): hashed the routing keys -> queue 'ex-q'\n\
         exchange 'ex-x' (x-modulus-hash) --[]--> queue 'ex-q'\n\
         queues: ex-q\n"
    );
    let out = ok(run(&url, &["explain", "", "ex-q", "--header", "CC:=[\"nope\"]"]).await);
    assert_eq!(
        out,
        "routing keys: ex-q, nope\n\
         exchange '(AMQP default)' (direct) --[ex-q]--> queue 'ex-q'\n\
         queues: ex-q\n"
    );
}
