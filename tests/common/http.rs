//! A tiny HTTP/1.1 client for the management API tests: one request per
//! connection (`Connection: close`), basic auth, JSON bodies. Enough for a
//! server that answers with a Content-Length body, which axum does.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// What the server answered.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An API client for one user.
#[derive(Clone)]
pub struct Http {
    /// The API's address.
    pub addr: SocketAddr,
    auth: Option<(String, String)>,
}

impl Http {
    /// A client that logs in as `user` / `password`.
    pub fn new(addr: SocketAddr, user: &str, password: &str) -> Self {
        Http {
            addr,
            auth: Some((user.into(), password.into())),
        }
    }

    /// A client that sends no credentials.
    pub fn anonymous(addr: SocketAddr) -> Self {
        Http { addr, auth: None }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, None).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: &str) -> Response {
        self.request("PUT", path, Some(body)).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &str) -> Response {
        self.request("POST", path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path, None).await
    }

    /// Any request.
    pub async fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        tokio::time::timeout(WAIT, self.exchange(method, path, body))
            .await
            .expect("HTTP answer in time")
    }

    async fn exchange(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some((user, password)) = &self.auth {
            let token = STANDARD.encode(format!("{user}:{password}"));
            request.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        let body = body.unwrap_or("");
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8(raw).expect("UTF-8 answer");
        let (head, body) = text.split_once("\r\n\r\n").expect("a full answer");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }
}

/// The management API of `broker` on an ephemeral port (guest's basic auth),
/// and what stops it: it holds the broker, so it goes before a restart on
/// the same data directory.
pub async fn api_of(broker: &super::TestBroker) -> (Http, impl AsyncFnOnce()) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(warren::mgmt::serve(
        listener,
        broker.broker.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let stop = async move || {
        let _ = stop.send(());
        let _ = server.await;
    };
    (Http::new(addr, "guest", "guest"), stop)
}
