//! The `warren` server binary.

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use warren::cli::Args;
use warren::{Broker, server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let check_only = args.check_config;
    let config = args.into_config()?;
    if check_only {
        // The definitions file too: a start would refuse it.
        if let Some(path) = &config.load_definitions {
            warren::mgmt::definitions::read_file(path)?;
        }
        println!("configuration is valid");
        return Ok(());
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr, as README says; stdout is left to --check-config.
    if config.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
    let acceptor = warren::tls::amqps_acceptor(&config)?;
    let https = warren::tls::https_acceptor(&config)?;
    let data_dir = config.data_dir.clone();
    let broker = Broker::open(config)
        .with_context(|| format!("cannot open the data directory {}", data_dir.display()))?;
    // Before the listeners: clients see the topology from their first frame. A cluster
    // node loads them once its metadata log is replayed (below), through the log.
    let clustered = broker.config.cluster()?.is_some();
    if let Some(path) = broker
        .config
        .load_definitions
        .clone()
        .filter(|_| !clustered)
    {
        warren::mgmt::definitions::load_file(&broker, &path).await?;
        tracing::info!(file = %path.display(), "definitions loaded");
    }
    let config = &broker.config;
    let listener = server::bind(config)
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.bind, config.port))?;
    tracing::info!(address = %listener.local_addr()?, "Warren is accepting AMQP 0-9-1 connections");
    let amqps = match acceptor {
        Some(acceptor) => {
            let tls = server::bind_tls(config).await.with_context(|| {
                format!(
                    "cannot listen on {}:{} (amqps)",
                    config.bind, config.tls_port
                )
            })?;
            tracing::info!(address = %tls.local_addr()?, "Warren is accepting AMQP 0-9-1 connections over TLS (amqps)");
            Some((tls, acceptor))
        }
        None => None,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let http = if broker.config.management {
        let addr = (broker.config.management_bind, broker.config.management_port);
        // A busy management port does not stop the broker: AMQP clients come
        // first, and several brokers on one machine (tests, interop) would
        // otherwise collide on the fixed default port.
        match tokio::net::TcpListener::bind(addr).await {
            Ok(http) => Some(http),
            Err(error) => {
                tracing::error!(%error, port = addr.1, "management API not started: cannot listen");
                None
            }
        }
    } else {
        None
    };
    // Only with cluster keys: the Raft node and the metadata group (issue 18).
    let cluster = match config.cluster()? {
        Some(keys) => {
            let listeners = warren::cluster::Listeners {
                amqp: listener.local_addr()?,
                mgmt: http.as_ref().and_then(|h| h.local_addr().ok()),
            };
            let cluster = warren::cluster::Cluster::start(&broker, &keys, listeners)
                .await
                .with_context(|| format!("cannot start the cluster node on port {}", keys.port))?;
            Some(cluster)
        }
        None => None,
    };
    let management = match http {
        Some(http) => {
            let stopped = stop.clone().cancelled_owned();
            match https {
                Some(acceptor) => {
                    tracing::info!(address = %http.local_addr()?, "management API and /metrics listening (https)");
                    let timeout = broker.config.handshake_timeout();
                    Some(tokio::spawn(warren::mgmt::serve_tls_cluster(
                        http,
                        acceptor,
                        timeout,
                        broker.clone(),
                        cluster.clone(),
                        stopped,
                    )))
                }
                None => {
                    tracing::info!(address = %http.local_addr()?, "management API and /metrics listening");
                    Some(tokio::spawn(warren::mgmt::serve_cluster(
                        http,
                        broker.clone(),
                        cluster.clone(),
                        stopped,
                    )))
                }
            }
        }
        None => None,
    };
    if let Some(cluster) = &cluster {
        // Clients see the cluster's definitions from their first frame.
        cluster
            .wait_replayed(&broker, std::time::Duration::from_secs(30))
            .await;
        if let Some(path) = broker.config.load_definitions.clone() {
            cluster
                .wait_formed(std::time::Duration::from_secs(60))
                .await;
            warren::mgmt::definitions::load_file(&broker, &path).await?;
            tracing::info!(file = %path.display(), "definitions loaded through the cluster");
        }
    }
    let listeners = server::Listeners {
        amqp: listener,
        amqps,
    };
    server::run_listeners(listeners, broker, async {
        shutdown_signal().await;
        stop.cancel();
    })
    .await;
    if let Some(task) = management {
        let _ = task.await;
    }
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
