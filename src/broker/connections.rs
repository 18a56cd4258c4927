//! The broker's registry of live connections and their channels, for the
//! management API (`/api/connections`, `/api/channels`, `/api/consumers`) and
//! for closing a connection from outside (320 CONNECTION_FORCED).
//!
//! A connection registers itself once its handshake is done and removes itself
//! when it ends; its channels are kept as weak references, so a closed channel
//! disappears with its last user without another hook.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use warren_codec::types::FieldTable;

use crate::channel::ChannelShared;
use crate::error::AmqpError;
use crate::names::ConnectionId;
use crate::stats::{CHANNEL_RATES, ChannelCounters, History};

/// RabbitMQ's reason when the management API closes a connection.
pub const CLOSED_VIA_MANAGEMENT: &str = "Closed via management plugin";

/// One live connection as the management API shows it.
#[derive(Debug)]
pub struct LiveConnection {
    /// The broker-wide connection id.
    pub id: ConnectionId,
    /// RabbitMQ's name for it: `peer -> local`.
    pub name: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The broker's address for it.
    pub local: Option<SocketAddr>,
    /// The authenticated user.
    pub user: String,
    /// The vhost it opened.
    pub vhost: String,
    /// The client's `client_properties` from start-ok.
    pub client_properties: FieldTable,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Negotiated frame_max.
    pub frame_max: u32,
    /// Negotiated heartbeat.
    pub heartbeat: Option<Duration>,
    /// When the handshake finished.
    pub connected_at: SystemTime,
    /// Whether it came over TLS (amqps).
    pub ssl: bool,
    channels: Mutex<BTreeMap<u16, Weak<ChannelShared>>>,
    close: CancellationToken,
    reason: Mutex<Option<String>>,
    /// The counts of its closed channels.
    pub retired: ChannelCounters,
    /// Samples of its channels' counts, summed.
    pub history: History,
}

impl LiveConnection {
    /// A registry entry; `close` is the token the connection's loop watches.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConnectionId,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        user: &str,
        vhost: &str,
        client_properties: FieldTable,
        tune: (u16, u32, Option<Duration>),
        close: CancellationToken,
        ssl: bool,
    ) -> Arc<Self> {
        let name = match local {
            Some(local) => format!("{peer} -> {local}"),
            None => peer.to_string(),
        };
        Arc::new(LiveConnection {
            id,
            name,
            peer,
            local,
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            client_properties,
            channel_max: tune.0,
            frame_max: tune.1,
            heartbeat: tune.2,
            connected_at: SystemTime::now(),
            ssl,
            channels: Mutex::new(BTreeMap::new()),
            close,
            reason: Mutex::new(None),
            retired: ChannelCounters::default(),
            history: History::default(),
        })
    }

    /// A channel closed: its counts stay in the connection's (once).
    pub fn retire(&self, channel: &ChannelShared) {
        if !channel.retired.swap(true, Ordering::AcqRel) {
            self.retired.absorb(&channel.counters.values());
        }
    }

    /// Its message counts: the closed channels' and the open ones'.
    pub fn totals(&self) -> [u64; CHANNEL_RATES.len()] {
        let mut totals = self.retired.values();
        for channel in self.channels() {
            if channel.retired.load(Ordering::Acquire) {
                continue;
            }
            for (total, value) in totals.iter_mut().zip(channel.counters.values()) {
                *total += value;
            }
        }
        totals
    }

    /// A channel was opened.
    pub fn add_channel(&self, shared: &Arc<ChannelShared>) {
        let mut channels = self.channels.lock();
        channels.retain(|_, c| c.strong_count() > 0);
        channels.insert(shared.id, Arc::downgrade(shared));
    }

    /// How many of its channels are still open.
    pub fn channel_count(&self) -> usize {
        self.channels
            .lock()
            .values()
            .filter(|c| c.strong_count() > 0)
            .count()
    }

    /// The channels still open, by number.
    pub fn channels(&self) -> Vec<Arc<ChannelShared>> {
        self.channels
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Asks the connection to close with 320 CONNECTION_FORCED and `reason`.
    pub fn force_close(&self, reason: &str) {
        *self.reason.lock() = Some(reason.to_owned());
        self.close.cancel();
    }

    /// The connection.close its loop sends when its token fires: the forced
    /// reason, else the broker is shutting down.
    pub fn closing_error(&self) -> AmqpError {
        match self.reason.lock().as_deref() {
            Some(reason) => AmqpError::connection_forced(reason),
            None => AmqpError::shutdown(),
        }
    }
}

/// What the connection and channel limits count.
impl super::Broker {
    /// Live connections to `vhost`.
    pub fn connections_in(&self, vhost: &str) -> usize {
        self.connections.iter().filter(|c| c.vhost == vhost).count()
    }

    /// Live connections of `user`.
    pub fn connections_of(&self, user: &str) -> usize {
        self.connections.iter().filter(|c| c.user == user).count()
    }

    /// Open channels of `user` over all their connections.
    pub fn channels_of(&self, user: &str) -> usize {
        self.connections
            .iter()
            .filter(|c| c.user == user)
            .map(|c| c.channel_count())
            .sum()
    }
}
