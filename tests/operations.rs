//! What an operator meets before any client connects: `--check-config`,
//! JSON logs, and a definitions file imported at start (`load_definitions`),
//! refused with a message that names the bad entry.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use warren::mgmt::definitions::{LoadError, load_file};

const WARREN: &str = env!("CARGO_BIN_EXE_warren");

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn check_config_validates_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = write(&dir, "good.toml", "port = 5999\nconsumer_timeout = 60000\n");
    let out = Command::new(WARREN)
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .expect("run warren");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration is valid"
    );

    let bad = write(&dir, "bad.toml", "frame_max = 100\n");
    let out = Command::new(WARREN)
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .expect("run warren");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("frame_max 100 is below the protocol minimum"),
        "{stderr}"
    );

    let defs = write(&dir, "defs.json", "{\"queues\": [ {\"durable\": true} ]}");
    let out = Command::new(WARREN)
        .args(["--check-config", "--load-definitions"])
        .arg(&defs)
        .output()
        .expect("run warren");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("defs.json") && stderr.contains("missing field `name`"),
        "{stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(WARREN)
        .args([
            "--log-format",
            "json",
            "--port",
            "0",
            "--management-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start warren");
    let stderr = child.stderr.take().expect("stderr");
    // Read on a thread, so a broker that logs nothing fails the test, not hangs it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a log line within 20 s");
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert!(
        entry["level"].is_string() && entry["fields"]["message"].is_string(),
        "{line}"
    );
}

#[tokio::test]
async fn a_definitions_file_is_imported_or_refused_naming_the_entry() {
    let broker = common::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let good = write(
        &dir,
        "defs.json",
        r#"{"queues": [{"name": "orders", "vhost": "/", "durable": true,
                        "arguments": {"x-max-length": 10}}],
            "exchanges": [{"name": "events", "vhost": "/", "type": "topic", "durable": true}],
            "bindings": [{"source": "events", "vhost": "/", "destination": "orders",
                          "destination_type": "queue", "routing_key": "order.*"}]}"#,
    );
    load_file(&broker.broker, &good).await.expect("loads");
    let vhost = broker.broker.vhost("/").expect("default vhost");
    assert!(vhost.queue("orders").is_some());
    assert!(vhost.exchange("events").is_some());

    let bad = write(
        &dir,
        "bad.json",
        r#"{"queues": [{"name": "fine", "vhost": "/"},
                       {"name": "broken", "vhost": "/", "arguments": {"x-max-length": "ten"}}]}"#,
    );
    let error = load_file(&broker.broker, &bad).await.expect_err("refused");
    assert!(matches!(error, LoadError::Refused { .. }));
    let text = error.to_string();
    assert!(
        text.contains("bad.json") && text.contains("queue 'broken' in vhost '/'"),
        "{text}"
    );
    assert!(text.contains("x-max-length"), "{text}");
}
