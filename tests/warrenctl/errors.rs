//! How warrenctl fails: one line on stderr, exit code 1, for a down broker,
//! a refused login, missing rights, a missing object or vhost, a 400, a port
//! that is not HTTP, and bad local input.

use std::net::TcpListener;

use crate::fake::{Fake, Request};
use crate::{accepting, basic, ctl, ctl_with_stdin, fails, stderr};

#[test]
fn a_down_broker_is_one_clear_line() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let line = fails(ctl(&url, &["list", "queues"]));
    assert_eq!(
        line,
        format!("cannot reach the management API at {url}: is the broker running?")
    );
}

#[test]
fn a_refused_login_names_the_user() {
    let api = Fake::start(|_| {
        (
            401,
            r#"{"error":"not_authorized","reason":"Login failed"}"#.into(),
        )
    });
    let line = fails(ctl(
        &api.url(),
        &["--user", "alice", "--password", "pw", "overview"],
    ));
    assert_eq!(line, "login refused for user 'alice'");
    assert_eq!(
        api.only_request().authorization.as_deref(),
        Some(basic("alice", "pw").as_str())
    );
}

#[test]
fn a_user_without_rights_is_told_so() {
    let api = Fake::start(|r: &Request| match r.path.as_str() {
        "/api/vhosts/dev" => (200, r#"{"name":"dev"}"#.into()),
        "/api/overview" => (
            401,
            r#"{"error":"not_authorized","reason":"Not management user"}"#.into(),
        ),
        _ => (
            401,
            r#"{"error":"not_authorised","reason":"Not administrator user"}"#.into(),
        ),
    });
    assert_eq!(
        fails(ctl(&api.url(), &["--user", "app", "overview"])),
        "login refused for user 'app': it lacks a management tag"
    );
    assert_eq!(
        fails(ctl(&api.url(), &["--user", "app", "declare", "vhost", "x"])),
        "user 'app' may not do this: Not administrator user"
    );
    assert_eq!(
        fails(ctl(
            &api.url(),
            &["--user", "app", "--vhost", "dev", "declare", "queue", "q"]
        )),
        "user 'app' may not do this in vhost 'dev': Not administrator user"
    );
}

#[test]
fn a_missing_queue_is_named_with_its_vhost() {
    // RabbitMQ's bare 404; the vhost exists, so the queue is what is missing.
    let api = Fake::start(|r: &Request| match r.path.as_str() {
        "/api/vhosts/%2F" => (200, r#"{"name":"/"}"#.into()),
        _ => (
            404,
            r#"{"error":"Object Not Found","reason":"Not Found"}"#.into(),
        ),
    });
    assert_eq!(
        fails(ctl(&api.url(), &["delete", "queue", "nope"])),
        "queue 'nope' not found in vhost '/'"
    );
    assert_eq!(
        fails(ctl(&api.url(), &["purge", "queue", "nope"])),
        "queue 'nope' not found in vhost '/'"
    );
    assert_eq!(
        fails(ctl(&api.url(), &["delete", "exchange", "x"])),
        "exchange 'x' not found in vhost '/'"
    );
    assert_eq!(
        fails(ctl(&api.url(), &["delete", "user", "bob"])),
        "user 'bob' not found"
    );
    let paths: Vec<String> = api.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/api/queues/%2F/nope/contents".to_owned()),
        "{paths:?}"
    );
}

#[test]
fn a_missing_vhost_is_named() {
    let api = Fake::start(|_| {
        (
            404,
            r#"{"error":"Object Not Found","reason":"Not Found"}"#.into(),
        )
    });
    assert_eq!(
        fails(ctl(&api.url(), &["--vhost", "nov", "get", "--queue", "q"])),
        "vhost 'nov' not found"
    );
    let api = Fake::start(|_| {
        (
            404,
            r#"{"error":"not_found","reason":"vhost_not_found"}"#.into(),
        )
    });
    assert_eq!(
        fails(ctl(
            &api.url(),
            &["--vhost", "nov", "declare", "queue", "q"]
        )),
        "vhost 'nov' not found"
    );
}

#[test]
fn a_bad_request_shows_the_api_reason() {
    let api = Fake::start(|_| {
        (400, r#"{"error":"bad_request","reason":"inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'"}"#.into())
    });
    assert_eq!(
        fails(ctl(
            &api.url(),
            &["declare", "queue", "q", "--durable", "false"]
        )),
        "inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'"
    );
}

#[test]
fn a_non_http_port_is_called_out() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"AMQP\x00\x00\x09\x01");
        }
    });
    let line = fails(ctl(&url, &["overview"]));
    assert!(line.contains("is this the management port"), "{line}");
}

#[test]
fn bad_local_input_fails_before_any_request() {
    let api = accepting();
    let missing = fails(ctl(
        &api.url(),
        &["import", "definitions", "/nonexistent/defs.json"],
    ));
    assert!(
        missing.starts_with("cannot read /nonexistent/defs.json"),
        "{missing}"
    );
    let not_json = fails(ctl_with_stdin(
        &api.url(),
        &["import", "definitions", "-"],
        Some("nope"),
    ));
    assert!(not_json.starts_with("stdin is not JSON"), "{not_json}");
    assert_eq!(
        fails(ctl(&api.url(), &["declare", "queue", ""])),
        "a queue name cannot be empty"
    );
    assert!(api.requests().is_empty());
    // Usage errors are clap's: exit code 2 and a usage hint.
    let usage = ctl(&api.url(), &["declare", "queue", "q", "--arg", "novalue"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("expected key=value"));
}
