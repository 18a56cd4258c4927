//! Limits and policies against a real Warren (broker and management API in
//! this process), and policies against the fake API too, asserting the
//! requests RabbitMQ's API takes (`PUT /api/policies/{vhost}/{name}` with
//! pattern, definition, priority and apply-to; the same under
//! `/api/operator-policies`).

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::common::{self, TestBroker};
use super::fake::Fake;
use super::{accepting, ctl, fails, ok};

/// A Warren with its management API on an ephemeral port; returns its API URL.
pub(crate) async fn warren() -> (TestBroker, String) {
    let broker = common::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(warren::mgmt::serve(
        listener,
        broker.broker.clone(),
        std::future::pending(),
    ));
    (broker, format!("http://{addr}"))
}

/// Runs warrenctl off the runtime's threads (it blocks on HTTP).
pub(crate) async fn run(url: &str, args: &[&str]) -> std::process::Output {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&url, &args)
    })
    .await
    .expect("warrenctl task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_limits_are_set_listed_and_cleared_on_warren() {
    let (broker, url) = warren().await;
    let out = ok(run(
        &url,
        &[
            "set-vhost-limits",
            "/",
            r#"{"max-connections": 100, "max-queues": 10}"#,
        ],
    )
    .await);
    assert_eq!(
        out,
        "set limits {\"max-connections\":100,\"max-queues\":10} on vhost '/'\n"
    );
    assert_eq!(
        ok(run(&url, &["list-vhost-limits"]).await),
        "vhost  limit            value\n\
         /      max-connections  100\n\
         /      max-queues       10\n"
    );
    let listed: Value = serde_json::from_str(&ok(run(
        &url,
        &["--json", "--vhost", "/", "list-vhost-limits"],
    )
    .await))
    .expect("JSON");
    assert_eq!(
        listed,
        json!([{"vhost": "/", "value": {"max-connections": 100, "max-queues": 10}}])
    );
    assert_eq!(
        ok(run(&url, &["clear-vhost-limits", "/", "max-queues"]).await),
        "cleared limit 'max-queues' on vhost '/'\n"
    );
    assert_eq!(
        ok(run(&url, &["list-vhost-limits"]).await),
        "vhost  limit            value\n\
         /      max-connections  100\n"
    );
    ok(run(&url, &["set-vhost-limits", "/", r#"{"max-queues": 3}"#]).await);
    assert_eq!(
        ok(run(&url, &["clear-vhost-limits", "/", "all"]).await),
        "cleared every limit on vhost '/'\n"
    );
    assert_eq!(
        ok(run(&url, &["list-vhost-limits"]).await),
        "vhost  limit  value\n"
    );
    // Refusals: a missing vhost, a name RabbitMQ does not know, bad JSON.
    assert_eq!(
        fails(run(&url, &["set-vhost-limits", "nope", r#"{"max-queues": 1}"#]).await),
        "vhost 'nope' not found"
    );
    let unknown = run(&url, &["set-vhost-limits", "/", r#"{"max-foo": 1}"#]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        super::stderr(&unknown).contains("max-foo"),
        "{}",
        super::stderr(&unknown)
    );
    assert!(
        fails(run(&url, &["set-vhost-limits", "/", "100"]).await)
            .starts_with("limits must be a JSON object")
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_limits_are_set_listed_and_cleared_on_warren() {
    let (broker, url) = warren().await;
    assert_eq!(
        ok(run(
            &url,
            &[
                "set-user-limits",
                "guest",
                r#"{"max-connections": 5, "max-channels": 20}"#
            ]
        )
        .await),
        "set limits {\"max-channels\":20,\"max-connections\":5} on user 'guest'\n"
    );
    assert_eq!(
        ok(run(&url, &["list-user-limits"]).await),
        "user   limit            value\n\
         guest  max-channels     20\n\
         guest  max-connections  5\n"
    );
    assert_eq!(
        ok(run(&url, &["list-user-limits", "--user", "guest"]).await),
        ok(run(&url, &["list-user-limits"]).await)
    );
    assert_eq!(
        ok(run(&url, &["clear-user-limits", "guest", "max-channels"]).await),
        "cleared limit 'max-channels' on user 'guest'\n"
    );
    let listed: Value =
        serde_json::from_str(&ok(run(&url, &["--json", "list-user-limits"]).await)).expect("JSON");
    assert_eq!(
        listed,
        json!([{"user": "guest", "value": {"max-connections": 5}}])
    );
    ok(run(&url, &["clear-user-limits", "guest", "all"]).await);
    assert_eq!(
        ok(run(&url, &["list-user-limits"]).await),
        "user  limit  value\n"
    );
    let missing = run(
        &url,
        &["set-user-limits", "nobody", r#"{"max-channels": 1}"#],
    )
    .await;
    assert_eq!(
        missing.status.code(),
        Some(1),
        "{}",
        super::stderr(&missing)
    );
    broker.stop().await;
}

/// A fake that records requests and lists one policy on GET.
fn policy_api() -> Fake {
    Fake::start(|r| {
        if r.method == "GET" {
            let body = json!([{"vhost": "dev", "name": "ttl", "pattern": "^ttl\\.",
                "apply-to": "queues", "definition": {"message-ttl": 1000}, "priority": 3}]);
            (200, body.to_string())
        } else {
            (204, String::new())
        }
    })
}

fn seen(api: &Fake) -> Vec<(String, String, Value)> {
    api.requests()
        .into_iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.json()))
        .collect()
}

fn row(m: &str, p: &str, b: Value) -> (String, String, Value) {
    (m.to_owned(), p.to_owned(), b)
}

#[test]
fn policies_are_put_listed_and_deleted_as_rabbitmq_takes_them() {
    let api = policy_api();
    let url = api.url();
    assert_eq!(
        ok(ctl(
            &url,
            &[
                "set-policy",
                "ttl",
                "^ttl\\.",
                r#"{"message-ttl": 1000, "dead-letter-exchange": "dlx"}"#,
                "--priority",
                "3",
                "--apply-to",
                "queues",
                "--vhost",
                "dev",
            ],
        )),
        "set policy 'ttl' in vhost 'dev'\n"
    );
    ok(ctl(
        &url,
        &["set-policy", "all", ".*", r#"{"max-length": 5}"#],
    ));
    ok(ctl(
        &url,
        &[
            "set-policy",
            "cq",
            "^c",
            r#"{"max-length": 5}"#,
            "--apply-to",
            "classic_queues",
            "--priority",
            "-1",
        ],
    ));
    assert_eq!(
        ok(ctl(&url, &["--vhost", "dev", "list-policies"])),
        "vhost  name  pattern  apply_to  definition            priority\n\
         dev    ttl   ^ttl\\.   queues    {\"message-ttl\":1000}  3\n"
    );
    assert_eq!(
        ok(ctl(&url, &["--vhost", "dev", "clear-policy", "ttl"])),
        "cleared policy 'ttl' in vhost 'dev'\n"
    );
    assert_eq!(
        seen(&api),
        vec![
            row(
                "PUT",
                "/api/policies/dev/ttl",
                json!({"pattern": "^ttl\\.", "definition": {"message-ttl": 1000,
                    "dead-letter-exchange": "dlx"}, "priority": 3, "apply-to": "queues"})
            ),
            row(
                "PUT",
                "/api/policies/%2F/all",
                json!({"pattern": ".*", "definition": {"max-length": 5}, "priority": 0,
                    "apply-to": "all"})
            ),
            row(
                "PUT",
                "/api/policies/%2F/cq",
                json!({"pattern": "^c", "definition": {"max-length": 5}, "priority": -1,
                    "apply-to": "classic_queues"})
            ),
            row("GET", "/api/policies/dev", Value::Null),
            row("DELETE", "/api/policies/dev/ttl", Value::Null),
        ]
    );
}

#[test]
fn operator_policies_go_to_their_own_endpoint() {
    let api = policy_api();
    let url = api.url();
    assert_eq!(
        ok(ctl(
            &url,
            &[
                "set-operator-policy",
                "cap",
                "^cap\\.",
                r#"{"max-length": 10}"#
            ]
        )),
        "set operator policy 'cap' in vhost '/'\n"
    );
    ok(ctl(
        &url,
        &[
            "set-operator-policy",
            "qq",
            ".*",
            r#"{"delivery-limit": 3}"#,
            "--apply-to",
            "quorum_queues",
            "--priority",
            "7",
        ],
    ));
    ok(ctl(&url, &["list-operator-policies", "--json"]));
    ok(ctl(&url, &["clear-operator-policy", "cap"]));
    assert_eq!(
        seen(&api),
        vec![
            row(
                "PUT",
                "/api/operator-policies/%2F/cap",
                json!({"pattern": "^cap\\.", "definition": {"max-length": 10}, "priority": 0,
                    "apply-to": "queues"})
            ),
            row(
                "PUT",
                "/api/operator-policies/%2F/qq",
                json!({"pattern": ".*", "definition": {"delivery-limit": 3}, "priority": 7,
                    "apply-to": "quorum_queues"})
            ),
            row("GET", "/api/operator-policies/%2F", Value::Null),
            row("DELETE", "/api/operator-policies/%2F/cap", Value::Null),
        ]
    );
}

#[test]
fn bad_policy_input_fails_before_any_request() {
    let api = accepting();
    let url = api.url();
    assert!(
        fails(ctl(&url, &["set-policy", "p", ".*", "not json"]))
            .starts_with("the definition must be a JSON object")
    );
    assert!(
        fails(ctl(&url, &["set-policy", "p", ".*", "{}"]))
            .starts_with("the definition must be a non-empty JSON object")
    );
    let bad_apply = ctl(
        &url,
        &[
            "set-policy",
            "p",
            ".*",
            r#"{"max-length":1}"#,
            "--apply-to",
            "topics",
        ],
    );
    assert_eq!(bad_apply.status.code(), Some(2), "clap refuses it");
    assert!(api.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_set_listed_and_cleared_on_warren() {
    let (broker, url) = warren().await;
    assert_eq!(
        ok(run(
            &url,
            &[
                "set-policy",
                "ttl",
                "^jobs\\.",
                r#"{"message-ttl": 1000}"#,
                "--priority",
                "2",
                "--apply-to",
                "queues",
            ],
        )
        .await),
        "set policy 'ttl' in vhost '/'\n"
    );
    ok(run(
        &url,
        &["set-operator-policy", "cap", ".*", r#"{"max-length": 5}"#],
    )
    .await);
    assert_eq!(
        ok(run(&url, &["list-policies"]).await),
        "vhost  name  pattern  apply_to  definition            priority\n\
         /      ttl   ^jobs\\.  queues    {\"message-ttl\":1000}  2\n"
    );
    let listed: Value =
        serde_json::from_str(&ok(run(&url, &["--json", "list-operator-policies"]).await))
            .expect("JSON");
    assert_eq!(
        listed,
        json!([{"vhost": "/", "name": "cap", "pattern": ".*", "apply-to": "queues",
                "definition": {"max-length": 5}, "priority": 0}])
    );
    // The broker refuses what RabbitMQ refuses, and warrenctl says why.
    let refused = run(&url, &["set-policy", "bad", ".*", r#"{"message-ttl": -1}"#]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        super::stderr(&refused).contains("-1 is not a valid message TTL"),
        "{}",
        super::stderr(&refused)
    );
    ok(run(&url, &["clear-policy", "ttl"]).await);
    ok(run(&url, &["clear-operator-policy", "cap"]).await);
    assert!(broker.broker.policies.export().policies.is_empty());
    assert!(broker.broker.policies.export().operator_policies.is_empty());
    broker.stop().await;
}
