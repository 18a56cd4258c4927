//! The management API over https (`management_tls`) and warrenctl talking
//! to it with `--cacert`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::certs::Pki;
use crate::common::{self, WAIT};
use crate::{amqps_uri, client_tls, connect, server_files, tls_connector};

/// GET `path` over https with guest's basic auth; the status line and the
/// whole response.
async fn https_get(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    path: &str,
) -> std::io::Result<String> {
    use base64::Engine;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let mut tls = connector.connect(name, tcp).await?;
    let auth = base64::engine::general_purpose::STANDARD.encode("guest:guest");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // axum closes after the answer (Connection: close); rustls may see the
    // TCP close without close_notify, which is fine once the answer is in.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut response)).await;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test]
async fn the_management_api_over_https() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| {
        server_files(&pki, c);
        c.management_tls = true;
    })
    .await;
    let acceptor = warren::tls::https_acceptor(&broker.broker.config)
        .expect("https configuration")
        .expect("management_tls is on");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(warren::mgmt::serve_tls(
        listener,
        acceptor,
        Duration::from_secs(1),
        broker.broker.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    // A client that never finishes its TLS handshake holds nobody up.
    let _silent = tokio::net::TcpStream::connect(addr).await.expect("tcp");

    let connector = tls_connector(&pki, None, vec![b"http/1.1".to_vec()]);
    let response = https_get(&connector, addr, "/api/overview")
        .await
        .expect("https request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"rabbitmq_version\""), "{response}");
    let response = https_get(&connector, addr, "/api/whoami")
        .await
        .expect("https request");
    assert!(response.contains("\"name\":\"guest\""), "{response}");

    // The API tells amqps connections from plain ones.
    let _tls = connect(
        &amqps_uri(&broker, Some(("guest", "guest")), ""),
        client_tls(&pki.ca_pem, None),
    )
    .await;
    let _plain = common::lapin::connect(&broker.uri("")).await;
    let response = https_get(&connector, addr, "/api/connections?columns=ssl,peer_port")
        .await
        .expect("https request");
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    let listed: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let mut ssl: Vec<bool> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["ssl"].as_bool().expect("ssl"))
        .collect();
    ssl.sort();
    assert_eq!(ssl, [false, true]);

    // A client that does not trust the CA gets no answer.
    let stranger = Pki::new("Some other CA");
    let untrusting = tls_connector(&stranger, None, Vec::new());
    let refused = https_get(&untrusting, addr, "/api/overview").await;
    assert!(refused.is_err(), "{refused:?}");

    // Plain HTTP on the https port is not served.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    tcp.write_all(b"GET /api/overview HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
    let _ = stop.send(());
}

/// Runs the warrenctl binary with `args` (no proxies, no login from the
/// environment); (exit success, stdout, stderr).
fn warrenctl(args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_warrenctl"));
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "WARREN_MGMT_URL",
        "WARRENCTL_USER",
        "WARRENCTL_PASSWORD",
        "WARRENCTL_CACERT",
        "RUST_BACKTRACE",
    ] {
        command.env_remove(var);
    }
    let out = command.args(args).output().expect("run warrenctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warrenctl_over_https() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_with(|c| {
        server_files(&pki, c);
        c.management_tls = true;
    })
    .await;
    let acceptor = warren::tls::https(&broker.broker.config).expect("https configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(warren::mgmt::serve_tls(
        listener,
        acceptor,
        Duration::from_secs(5),
        broker.broker.clone(),
        std::future::pending(),
    ));
    let url = format!("https://localhost:{port}");
    let ca = pki.ca.display().to_string();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let (url, ca) = (url.clone(), ca.clone());
        move || warrenctl(&["--url", &url, "--cacert", &ca, "--json", "list", "vhosts"])
    })
    .await
    .expect("warrenctl");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"name\""), "{stdout}");

    // Without --cacert the test CA is not trusted: one line, exit 1.
    let (ok, _, stderr) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || warrenctl(&["--url", &url, "list", "vhosts"])
    })
    .await
    .expect("warrenctl");
    assert!(!ok);
    assert!(stderr.contains(&url), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // A --cacert file that is not there is named.
    let missing = pki.path("nope.pem").display().to_string();
    let (ok, _, stderr) = tokio::task::spawn_blocking({
        let missing = missing.clone();
        move || warrenctl(&["--url", &url, "--cacert", &missing, "list", "vhosts"])
    })
    .await
    .expect("warrenctl");
    assert!(!ok);
    assert!(stderr.contains(&missing), "{stderr}");
}
