//! Admission of connections against the vhost's and the user's
//! `max-connections`, and of channels against the user's `max-channels`.
//! The check at connection.open and the registration of the connection
//! (after open-ok is written) are apart in time, so a connection counts as
//! admitted from its check until it is registered; a channel is checked and
//! registered in one step under the same lock. Without that, connections or
//! channels opening at the same moment could all pass the last free slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::Broker;
use super::connections::LiveConnection;
use crate::auth::limits::{MAX_CHANNELS, MAX_CONNECTIONS, allows_one_more};
use crate::channel::ChannelShared;
use crate::error::AmqpError;

/// Connections that passed the limit check and are not yet registered.
#[derive(Debug, Default)]
pub struct Admissions {
    pending: Mutex<Vec<Pending>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Pending {
    token: u64,
    user: String,
    vhost: String,
}

/// A connection counted in until [`Broker::register`] takes it (or it is
/// dropped, when the handshake fails after the check).
#[derive(Debug)]
pub struct Admission {
    admissions: Arc<Admissions>,
    token: u64,
    settled: bool,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.settled {
            self.admissions
                .pending
                .lock()
                .retain(|p| p.token != self.token);
        }
    }
}

impl Broker {
    /// The vhost's, then the user's `max-connections` (RabbitMQ's reader
    /// order and texts: 530 NOT_ALLOWED; a limit of 0 allows none), counting
    /// live connections and those admitted but not yet registered.
    pub fn admit(&self, user: &str, vhost: &str) -> Result<Admission, AmqpError> {
        let mut pending = self.admissions.pending.lock();
        let limit = self.auth.vhost_limit(vhost, MAX_CONNECTIONS);
        let in_vhost =
            self.connections_in(vhost) + pending.iter().filter(|p| p.vhost == vhost).count();
        if !allows_one_more(limit, in_vhost) {
            return Err(AmqpError::not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{user}': connection limit ({}) is reached",
                limit.unwrap_or_default()
            )));
        }
        let limit = self.auth.user_limit(user, MAX_CONNECTIONS);
        let of_user = self.connections_of(user) + pending.iter().filter(|p| p.user == user).count();
        if !allows_one_more(limit, of_user) {
            return Err(AmqpError::not_allowed(format!(
                "connection refused for user '{user}': user connection limit ({}) is reached",
                limit.unwrap_or_default()
            )));
        }
        let token = self.admissions.next.fetch_add(1, Ordering::Relaxed);
        pending.push(Pending {
            token,
            user: user.to_owned(),
            vhost: vhost.to_owned(),
        });
        Ok(Admission {
            admissions: self.admissions.clone(),
            token,
            settled: false,
        })
    }

    /// The user's `max-channels` over all their connections (a hard 530
    /// naming no method, as RabbitMQ's reader sends it), then the channel
    /// is registered on its connection, both under the admission lock when
    /// the user has a limit.
    pub fn admit_channel(
        &self,
        user: &str,
        live: &LiveConnection,
        channel: &Arc<ChannelShared>,
    ) -> Result<(), AmqpError> {
        let Some(limit) = self.auth.user_limit(user, MAX_CHANNELS) else {
            live.add_channel(channel);
            return Ok(());
        };
        let _admitting = self.admissions.pending.lock();
        if !allows_one_more(Some(limit), self.channels_of(user)) {
            return Err(AmqpError::not_allowed(format!(
                "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
            )));
        }
        live.add_channel(channel);
        Ok(())
    }

    /// Registers an admitted connection as live, in one step with leaving
    /// the admitted ones, so it is never counted twice or not at all.
    pub fn register(&self, live: Arc<LiveConnection>, mut admission: Admission) {
        let mut pending = self.admissions.pending.lock();
        self.connections.insert(live.id, live);
        pending.retain(|p| p.token != admission.token);
        admission.settled = true;
    }
}
