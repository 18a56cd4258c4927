//! `warrenctl` end to end against a fake management API (no broker needed):
//! the requests it sends (method, percent-encoded path, JSON body, login),
//! what it prints (tables, `--json`) and how it fails (down broker, refused
//! login, missing objects, a 400's reason), always one line and exit code 1.

#[path = "../common/mod.rs"]
mod common;
mod errors;
mod explain;
mod fake;
mod settings;

use std::process::{Command, Output};

use fake::{Fake, Request};
use serde_json::{Value, json};

/// The warrenctl binary, with no proxy settings to send 127.0.0.1 elsewhere.
pub(crate) fn warrenctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warrenctl"));
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs warrenctl against `url` with `args`, ignoring the caller's environment.
pub(crate) fn ctl(url: &str, args: &[&str]) -> Output {
    ctl_with_stdin(url, args, None)
}

/// Runs warrenctl with `stdin` fed in.
pub(crate) fn ctl_with_stdin(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut command = warrenctl();
    command
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("WARREN_MGMT_URL")
        .env_remove("WARRENCTL_USER")
        .env_remove("WARRENCTL_PASSWORD")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run warrenctl");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("warrenctl output")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub(crate) fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "warrenctl failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts a clean failure (exit 1, one stderr line, nothing on stdout, no
/// panic or Debug dump) and returns the line without the `warrenctl: ` prefix.
pub(crate) fn fails(out: Output) -> String {
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "expected exit 1; stderr: {err}");
    assert_eq!(stdout(&out), "", "nothing on stdout on failure");
    assert_eq!(err.lines().count(), 1, "one line of error, got: {err}");
    assert!(!err.contains("panicked") && !err.contains("Error {") && !err.contains("Os {"));
    err.trim_end()
        .strip_prefix("warrenctl: ")
        .unwrap_or_else(|| panic!("error without prefix: {err}"))
        .to_owned()
}

/// A fake that answers every request with 204 No Content.
pub(crate) fn accepting() -> Fake {
    Fake::start(|_| (204, String::new()))
}

/// `Basic base64(user:password)`.
pub(crate) fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn declare_queue_puts_typed_arguments() {
    let api = accepting();
    let out = ok(ctl(
        &api.url(),
        &[
            "declare",
            "queue",
            "orders",
            "--arg",
            "x-max-length=10",
            "--arg",
            "x-queue-type=quorum",
            "--arg",
            "x-single-active-consumer=true",
        ],
    ));
    assert_eq!(out, "declared queue 'orders' in vhost '/'\n");
    let r = api.only_request();
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("PUT", "/api/queues/%2F/orders")
    );
    assert_eq!(
        r.authorization.as_deref(),
        Some(basic("guest", "guest").as_str())
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"durable": true, "auto_delete": false, "arguments": {
            "x-max-length": 10, "x-queue-type": "quorum", "x-single-active-consumer": true}})
    );
}

#[test]
fn names_and_vhosts_are_percent_encoded() {
    let api = accepting();
    ok(ctl(
        &api.url(),
        &[
            "--vhost",
            "dev/team a",
            "declare",
            "exchange",
            "logs#1",
            "--type",
            "topic",
            "--durable",
            "false",
            "--internal",
        ],
    ));
    let r = api.only_request();
    assert_eq!(r.path, "/api/exchanges/dev%2Fteam%20a/logs%231");
    assert_eq!(
        r.json(),
        json!({"type": "topic", "durable": false, "auto_delete": false, "internal": true, "arguments": {}})
    );
}

#[test]
fn list_queues_prints_a_table_or_the_api_json() {
    let queues = json!([
        {"name": "orders", "type": "classic", "durable": true, "auto_delete": false,
         "messages": 12, "messages_ready": 10, "messages_unacknowledged": 2, "consumers": 1,
         "arguments": {"x-max-length": 100}},
        {"name": "q2", "type": "classic", "durable": false, "auto_delete": true,
         "messages": 0, "messages_ready": 0, "messages_unacknowledged": 0, "consumers": 0,
         "arguments": {}}
    ]);
    let body = queues.to_string();
    let api = Fake::start(move |_| (200, body.clone()));
    let table = ok(ctl(&api.url(), &["list", "queues"]));
    assert_eq!(api.only_request().path, "/api/queues/%2F");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("name    type     durable"), "{table}");
    assert!(
        lines[1].starts_with("orders  classic  true")
            && lines[1].contains("{\"x-max-length\":100}")
    );
    assert!(
        lines[2].starts_with("q2      classic  false    true"),
        "{table}"
    );

    let printed: Value = serde_json::from_str(&ok(ctl(&api.url(), &["list", "queues", "--json"])))
        .expect("--json prints JSON");
    assert_eq!(printed, queues);
}

#[test]
fn every_list_goes_to_its_endpoint() {
    let api = Fake::start(|_| (200, "[]".into()));
    for (what, path) in [
        ("exchanges", "/api/exchanges/v1"),
        ("bindings", "/api/bindings/v1"),
        ("connections", "/api/connections"),
        ("channels", "/api/channels"),
        ("consumers", "/api/consumers/v1"),
        ("users", "/api/users"),
        ("vhosts", "/api/vhosts"),
        ("permissions", "/api/vhosts/v1/permissions"),
    ] {
        let out = ok(ctl(&api.url(), &["--vhost", "v1", "list", what]));
        assert_eq!(out.lines().count(), 1, "only the header for an empty list");
        let last = api.requests().pop().expect("a request");
        assert_eq!((last.method.as_str(), last.path.as_str()), ("GET", path));
    }
}

#[test]
fn login_and_url_come_from_the_environment() {
    let api = Fake::start(|_| {
        (
            200,
            r#"{"product_name":"Warren","product_version":"0.1.0"}"#.into(),
        )
    });
    let out = warrenctl()
        .arg("overview")
        .env("WARREN_MGMT_URL", api.url())
        .env("WARRENCTL_USER", "ops")
        .env("WARRENCTL_PASSWORD", "s3cret")
        .output()
        .expect("run warrenctl");
    let text = ok(out);
    assert!(
        text.contains("product") && text.contains("Warren"),
        "{text}"
    );
    let r = api.only_request();
    assert_eq!(r.path, "/api/overview");
    assert_eq!(
        r.authorization.as_deref(),
        Some(basic("ops", "s3cret").as_str())
    );
}

#[test]
fn publish_sends_properties_headers_and_body() {
    let api = Fake::start(|_| (200, r#"{"routed":true}"#.into()));
    let out = ok(ctl(
        &api.url(),
        &[
            "publish",
            "--exchange",
            "amq.topic",
            "--routing-key",
            "a.b",
            "--body",
            "hi there",
            "--property",
            "content_type=text/plain",
            "--property",
            "priority=3",
            "--header",
            "retries=2",
            "--header",
            "tag=x",
            "--persistent",
        ],
    ));
    assert_eq!(
        out,
        "published to exchange 'amq.topic' with routing key 'a.b'\n"
    );
    let r = api.only_request();
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/api/exchanges/%2F/amq.topic/publish")
    );
    assert_eq!(
        r.json(),
        json!({
            "routing_key": "a.b", "payload": "hi there", "payload_encoding": "string",
            "properties": {"content_type": "text/plain", "priority": 3, "delivery_mode": 2,
                           "headers": {"retries": 2, "tag": "x"}}
        })
    );
}

#[test]
fn publish_to_the_default_exchange_and_unrouted() {
    let api = Fake::start(|_| (200, r#"{"routed":false}"#.into()));
    let out = ok(ctl_with_stdin(
        &api.url(),
        &["publish", "--routing-key", "jobs", "--body-file", "-"],
        Some("from stdin"),
    ));
    assert!(out.contains("NOT routed"), "{out}");
    let r = api.only_request();
    assert_eq!(r.path, "/api/exchanges/%2F/amq.default/publish");
    assert_eq!(r.json()["payload"], "from stdin");
    let json_out = ok(ctl(
        &api.url(),
        &["--json", "publish", "--routing-key", "jobs"],
    ));
    assert_eq!(
        serde_json::from_str::<Value>(&json_out).expect("json"),
        json!({"routed": false})
    );
}

#[test]
fn publish_binary_bodies_as_base64() {
    let api = Fake::start(|_| (200, r#"{"routed":true}"#.into()));
    let file = std::env::temp_dir().join(format!("warrenctl-test-{}.bin", std::process::id()));
    std::fs::write(&file, [0xff_u8, 0x00, 0x01]).expect("write temp file");
    let path = file.to_str().expect("utf-8 temp path");
    ok(ctl(
        &api.url(),
        &["publish", "--routing-key", "q", "--body-file", path],
    ));
    let _ = std::fs::remove_file(&file);
    let body = api.only_request().json();
    assert_eq!(
        (body["payload"].as_str(), body["payload_encoding"].as_str()),
        (Some("/wAB"), Some("base64"))
    );
}

#[test]
fn get_requeues_by_default_and_acks_on_request() {
    let messages = json!([{"payload_bytes": 5, "redelivered": false, "exchange": "", "routing_key": "q",
        "message_count": 3, "properties": {"delivery_mode": 2}, "payload": "hello", "payload_encoding": "string"}]);
    let body = messages.to_string();
    let api = Fake::start(move |_| (200, body.clone()));
    let table = ok(ctl(&api.url(), &["get", "--queue", "q", "--count", "2"]));
    assert!(
        table.contains("hello") && table.contains("(AMQP default)"),
        "{table}"
    );
    ok(ctl(&api.url(), &["get", "--queue", "q", "--ack"]));
    let printed = ok(ctl(&api.url(), &["--json", "get", "--queue", "q"]));
    assert_eq!(
        serde_json::from_str::<Value>(&printed).expect("json"),
        messages
    );
    let sent: Vec<Value> = api.requests().iter().map(Request::json).collect();
    assert_eq!(api.requests()[0].path, "/api/queues/%2F/q/get");
    assert_eq!(
        sent[0],
        json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto"})
    );
    assert_eq!(sent[1]["ackmode"], "ack_requeue_false");
}

#[test]
fn bindings_are_declared_and_deleted_by_properties_key() {
    let api = Fake::start(|r: &Request| match r.method.as_str() {
        "GET" => (
            200,
            json!([
                {"source": "ex", "destination": "q", "destination_type": "queue",
                 "routing_key": "k", "arguments": {}, "properties_key": "k"},
                {"source": "ex", "destination": "q", "destination_type": "queue",
                 "routing_key": "k", "arguments": {"x-match": "any"}, "properties_key": "k~abc"}
            ])
            .to_string(),
        ),
        _ => (201, String::new()),
    });
    ok(ctl(
        &api.url(),
        &[
            "declare",
            "binding",
            "--source",
            "ex",
            "--destination",
            "q",
            "--routing-key",
            "k",
        ],
    ));
    ok(ctl(
        &api.url(),
        &[
            "delete",
            "binding",
            "--source",
            "ex",
            "--destination",
            "q",
            "--routing-key",
            "k",
            "--arg",
            "x-match=any",
        ],
    ));
    let e2e = ok(ctl(
        &api.url(),
        &[
            "declare",
            "binding",
            "--source",
            "ex",
            "--destination",
            "ex2",
            "--destination-type",
            "exchange",
        ],
    ));
    assert!(e2e.contains("exchange 'ex2'"), "{e2e}");
    let missing = fails(ctl(
        &api.url(),
        &[
            "delete",
            "binding",
            "--source",
            "ex",
            "--destination",
            "q",
            "--routing-key",
            "other",
        ],
    ));
    assert_eq!(
        missing,
        "no binding from exchange 'ex' to queue 'q' with routing key 'other' in vhost '/'"
    );
    let seen: Vec<(String, String)> = api
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let expect = |m: &str, p: &str| (m.to_owned(), p.to_owned());
    assert_eq!(
        seen,
        vec![
            expect("POST", "/api/bindings/%2F/e/ex/q/q"),
            expect("GET", "/api/bindings/%2F/e/ex/q/q"),
            expect("DELETE", "/api/bindings/%2F/e/ex/q/q/k~abc"),
            expect("POST", "/api/bindings/%2F/e/ex/e/ex2"),
            expect("GET", "/api/bindings/%2F/e/ex/q/q"),
        ]
    );
    assert_eq!(
        api.requests()[0].json(),
        json!({"routing_key": "k", "arguments": {}})
    );
}

#[test]
fn deletes_carry_their_conditions() {
    let api = accepting();
    ok(ctl(
        &api.url(),
        &["delete", "queue", "q", "--if-unused", "--if-empty"],
    ));
    ok(ctl(&api.url(), &["delete", "exchange", "x", "--if-unused"]));
    let paths: Vec<String> = api.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/queues/%2F/q?if-unused=true&if-empty=true",
            "/api/exchanges/%2F/x?if-unused=true"
        ]
    );
}

#[test]
fn users_vhosts_and_permissions() {
    let api = accepting();
    ok(ctl(
        &api.url(),
        &[
            "declare",
            "user",
            "bob",
            "--password",
            "pw",
            "--tags",
            "management,monitoring",
        ],
    ));
    ok(ctl(
        &api.url(),
        &["declare", "user", "carl", "--password-hash", "HASH"],
    ));
    ok(ctl(&api.url(), &["declare", "vhost", "dev"]));
    ok(ctl(
        &api.url(),
        &[
            "declare",
            "permission",
            "--vhost",
            "dev",
            "--user",
            "bob",
            "--configure",
            "^bob-.*",
            "--write",
            ".*",
            "--read",
            ".*",
        ],
    ));
    ok(ctl(
        &api.url(),
        &["--vhost", "dev", "delete", "permission", "--user", "bob"],
    ));
    ok(ctl(&api.url(), &["delete", "vhost", "dev"]));
    ok(ctl(&api.url(), &["delete", "user", "bob"]));
    let seen: Vec<(String, String, Value)> = api
        .requests()
        .into_iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.json()))
        .collect();
    let row = |m: &str, p: &str, b: Value| (m.to_owned(), p.to_owned(), b);
    assert_eq!(
        seen,
        vec![
            row(
                "PUT",
                "/api/users/bob",
                json!({"password": "pw", "tags": "management,monitoring"})
            ),
            row(
                "PUT",
                "/api/users/carl",
                json!({"password_hash": "HASH", "tags": ""})
            ),
            row("PUT", "/api/vhosts/dev", json!({})),
            row(
                "PUT",
                "/api/permissions/dev/bob",
                json!({"configure": "^bob-.*", "write": ".*", "read": ".*"})
            ),
            row("DELETE", "/api/permissions/dev/bob", Value::Null),
            row("DELETE", "/api/vhosts/dev", Value::Null),
            row("DELETE", "/api/users/bob", Value::Null),
        ]
    );
}

#[test]
fn json_mode_confirms_changes_as_json() {
    let api = accepting();
    let out = ok(ctl(&api.url(), &["--json", "declare", "vhost", "dev"]));
    let value: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(value["ok"], true);
    assert_eq!(value["vhost"], "dev");
}

#[test]
fn definitions_round_trip_through_a_file() {
    let definitions = json!({"rabbit_version": "3.10.8", "queues": [{"name": "q", "vhost": "/",
        "durable": true, "auto_delete": false, "arguments": {}}], "exchanges": [], "bindings": []});
    let body = definitions.to_string();
    let api = Fake::start(move |r: &Request| match r.method.as_str() {
        "GET" => (200, body.clone()),
        _ => (204, String::new()),
    });
    let file = std::env::temp_dir().join(format!("warrenctl-defs-{}.json", std::process::id()));
    let path = file.to_str().expect("utf-8 temp path");
    let out = ok(ctl(&api.url(), &["export", "definitions", path]));
    assert!(out.contains("1 queues"), "{out}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("exported file"))
            .expect("JSON file");
    assert_eq!(written, definitions);
    ok(ctl(&api.url(), &["import", "definitions", path]));
    ok(ctl(
        &api.url(),
        &["--vhost", "dev", "import", "definitions", path],
    ));
    let _ = std::fs::remove_file(&file);
    let stdout_export: Value =
        serde_json::from_str(&ok(ctl(&api.url(), &["export", "definitions"])))
            .expect("JSON on stdout");
    assert_eq!(stdout_export, definitions);
    let seen: Vec<(String, String)> = api
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(seen[0], ("GET".to_owned(), "/api/definitions".to_owned()));
    assert_eq!(seen[1], ("POST".to_owned(), "/api/definitions".to_owned()));
    assert_eq!(
        seen[2],
        ("POST".to_owned(), "/api/definitions/dev".to_owned())
    );
    assert_eq!(api.requests()[1].json(), definitions);
}
