//! The migration scenario against a real RabbitMQ node: a shovel drains a
//! RabbitMQ queue into Warren while a publisher keeps publishing to RabbitMQ
//! with confirms, and RabbitMQ is killed and started again mid-way. Every
//! message RabbitMQ confirmed must arrive in Warren at least once; the
//! duplicates are counted and printed.
//!
//! Runs `../shared/rabbitmq-node.sh` (a private node on ports 5692/15692
//! under a fresh directory); skipped, saying so, when the script or
//! RabbitMQ (`/usr/lib/rabbitmq/bin/rabbitmq-server`) is not there.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use parking_lot::Mutex;
use serde_json::json;

use super::{drain_ids, put_shovel, start_api, state_of};

const PORT: u16 = 5692;
const MGMT: u16 = 15692;
const TOTAL: u32 = 3000;
/// RabbitMQ is killed once this many messages were confirmed.
const KILL_AT: usize = 1000;

fn rabbit_uri() -> String {
    format!("amqp://guest:guest@127.0.0.1:{PORT}/%2f")
}

/// A RabbitMQ node started by the shared script, in its own process group.
struct Node {
    script: PathBuf,
    base: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::File::create(self.base.join("node.log")).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = Command::new("setsid")
            .arg(&self.script)
            .args([PORT.to_string(), MGMT.to_string()])
            .arg(&self.base)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("start rabbitmq-node.sh");
        self.child = Some(child);
    }

    /// SIGKILL to the node's whole process group (the script execs the
    /// server, which runs the Erlang VM).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn connect_rabbit(within: Duration) -> Option<Connection> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(&rabbit_uri(), ConnectionProperties::default()),
        )
        .await;
        if let Ok(Ok(conn)) = attempt {
            return Some(conn);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Publishes ids `0..TOTAL` with confirms, reconnecting as needed; an id is
/// retried until RabbitMQ confirms it.
async fn publish_all(confirmed: Arc<Mutex<Vec<u32>>>) {
    let mut i = 0;
    while i < TOTAL {
        let Some(conn) = connect_rabbit(Duration::from_secs(60)).await else {
            panic!("RabbitMQ did not come back within 60 s");
        };
        let Ok(ch) = conn.create_channel().await else {
            continue;
        };
        if ch
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .is_err()
        {
            continue;
        }
        while i < TOTAL {
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_message_id(i.to_string().into());
            let sent = ch
                .basic_publish("".into(), "drain".into(), Default::default(), b"x", props)
                .await;
            let acked = match sent {
                Ok(confirm) => matches!(confirm.await, Ok(c) if c.is_ack()),
                Err(_) => false,
            };
            if !acked {
                break;
            }
            confirmed.lock().push(i);
            i += 1;
        }
    }
}

/// Writes a line to stderr past the test harness's capture (which takes
/// only `print!`/`eprint!`), so `cargo test` shows the numbers even when
/// the test passes.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::test]
async fn drains_a_rabbitmq_queue_through_a_rabbitmq_restart() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/rabbitmq-node.sh");
    if !script.exists() || !std::path::Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
        report(&format!(
            "shovel-rabbitmq: SKIPPED: needs {} and RabbitMQ (/usr/lib/rabbitmq/bin/rabbitmq-server)",
            script.display()
        ));
        return;
    }
    // Someone else's node on the port would be drained (and killed) instead.
    if std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok() {
        report(&format!(
            "shovel-rabbitmq: SKIPPED: port {PORT} is already in use"
        ));
        return;
    }
    let base = tempfile::Builder::new()
        .prefix("warren-shovel-rabbitmq-")
        .tempdir_in("/tmp")
        .expect("base dir");
    let mut node = Node {
        script,
        base: base.path().to_owned(),
        child: None,
    };
    node.start();
    let started = Instant::now();
    let conn = connect_rabbit(Duration::from_secs(60))
        .await
        .expect("RabbitMQ started within 60 s");
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        "drain".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare on RabbitMQ");
    drop(conn);

    let (warren, api) = start_api(None).await;
    put_shovel(
        &api,
        "from-rabbitmq",
        json!({"src-uri": rabbit_uri(), "src-queue": "drain", "dest-uri": "amqp://",
               "dest-queue": "drained", "reconnect-delay": 1}),
    )
    .await;
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let publisher = tokio::spawn(publish_all(confirmed.clone()));

    // Mid-way: kill RabbitMQ and start it again on the same directory.
    let deadline = Instant::now() + Duration::from_secs(60);
    while confirmed.lock().len() < KILL_AT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.kill();
    let terminated = super::common::eventually("terminated".to_owned(), async || {
        state_of(&api, "from-rabbitmq").await
    })
    .await;
    node.start();
    tokio::time::timeout(Duration::from_secs(90), publisher)
        .await
        .expect("publisher finished in time")
        .expect("publisher");
    let confirmed: HashSet<u32> = confirmed.lock().iter().copied().collect();

    // Read until every confirmed id is in (counting ready messages would stop
    // early: duplicates of retried publishes count too), or a minute passed.
    let conn = super::common::lapin::connect(&warren.uri("")).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ids = Vec::new();
    let mut received: HashSet<u32> = HashSet::new();
    while !confirmed.is_subset(&received) && Instant::now() < deadline {
        let more = drain_ids(&conn, "drained").await;
        received.extend(more.iter().filter_map(|s| s.parse::<u32>().ok()));
        ids.extend(more);
        if !confirmed.is_subset(&received) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let lost: Vec<u32> = confirmed.difference(&received).copied().collect();
    let duplicates = ids.len() - received.len();
    report(&format!(
        "shovel-rabbitmq: {} confirmed by RabbitMQ, {} received by Warren ({} distinct), {} duplicates, {} lost; shovel state after the kill: {terminated}; {:.1} s",
        confirmed.len(),
        ids.len(),
        received.len(),
        duplicates,
        lost.len(),
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(confirmed.len() as u32, TOTAL);
    assert!(
        lost.is_empty(),
        "confirmed by RabbitMQ, never in Warren: {lost:?}"
    );
}
