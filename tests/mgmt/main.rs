//! The management HTTP API as a RabbitMQ tool sees it: paths, status codes,
//! JSON field names and error bodies as RabbitMQ 3.10.8 answers them (checked
//! with curl against it), and what an AMQP client sees when the API acts.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod limits;
mod live;
mod objects;
mod policies;
mod rabbitmqadmin;
mod rates;
mod route_explain;

use std::net::SocketAddr;

use common::TestBroker;
use common::http::Http;
use tokio::net::TcpListener;

/// A broker with its management API on an ephemeral port.
async fn start() -> (TestBroker, Http) {
    start_with(|_| {}).await
}

/// [`start`] with a configuration tweak.
async fn start_with(tweak: impl FnOnce(&mut warren::config::Config)) -> (TestBroker, Http) {
    let broker = common::start_with(tweak).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(warren::mgmt::serve(
        listener,
        broker.broker.clone(),
        std::future::pending(),
    ));
    (broker, Http::new(addr, "guest", "guest"))
}
