//! What each command must do to the model, and the machine's answer and
//! state checked against it.

use std::collections::BTreeMap;

use super::{Cons, Model, Msg};
use crate::queue::dead_letter::Reason;
use crate::queue::quorum::fifo::*;

impl Model {
    /// What the command must do before assignment; returns the expected reply.
    fn before(&mut self, command: &Command) -> Reply {
        match command.clone() {
            Command::Enqueue {
                id,
                size,
                expires_at,
                ts,
            } => {
                self.now = self.now.max(ts);
                self.expire();
                let c = &self.config;
                let refused = c.overflow == Overflow::RejectPublish
                    && (c
                        .max_length
                        .is_some_and(|m| self.ready().count() as u64 + 1 > m)
                        || c.max_length_bytes
                            .is_some_and(|m| self.ready_bytes() + u64::from(size) > m));
                if refused {
                    return Reply::Rejected;
                }
                let ttl = self.config.message_ttl.map(|t| self.now + t);
                let expires_at = match (expires_at, ttl) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let msg = Msg {
                    size,
                    expires_at,
                    count: 0,
                    acquired: false,
                };
                self.msgs.insert(id.0, msg);
                self.fresh.insert(id.0);
                Reply::Accepted
            }
            Command::Checkout {
                key,
                prefetch,
                priority,
                resume,
            } => {
                self.seq += 1;
                let seq = self.seq;
                let c = self.consumers.entry(key.clone()).or_insert(Cons {
                    prefetch,
                    priority,
                    up: true,
                    once: false,
                    seq,
                });
                (c.prefetch, c.priority, c.up, c.once) = (prefetch, priority, true, false);
                if let Some(held) = resume {
                    for id in self.out_of(&key) {
                        if !held.contains(&MsgId(id)) {
                            self.out.remove(&id);
                            self.returned.insert(id);
                        }
                    }
                }
                if self.config.single_active_consumer {
                    match &self.active {
                        Some(a) if *a == key => {}
                        Some(_) => self
                            .activations
                            .push(Effect::ActiveChanged { key, active: false }),
                        None => {
                            self.active = Some(key.clone());
                            self.activations
                                .push(Effect::ActiveChanged { key, active: true });
                        }
                    }
                }
                Reply::Ok
            }
            Command::Cancel { key } => {
                if let Some(c) = self.consumers.get_mut(&key).filter(|c| !c.once) {
                    c.up = false;
                    self.forget_if_done(&key);
                    if self.active.as_ref() == Some(&key) {
                        self.active = None;
                        self.activate_next();
                    }
                }
                Reply::Ok
            }
            Command::Settle { key, ids }
            | Command::Return { key, ids, .. }
            | Command::Discard { key, ids } => {
                for id in ids {
                    if self.out.get(&id.0) != Some(&key) {
                        continue;
                    }
                    match command {
                        Command::Settle { .. } => {
                            self.out.remove(&id.0);
                            self.msgs.remove(&id.0);
                            self.release.insert(id.0);
                        }
                        Command::Return { failed: true, .. } => self.return_failed(id.0),
                        Command::Return { failed: false, .. } => {
                            self.out.remove(&id.0);
                            self.returned.insert(id.0);
                        }
                        _ => {
                            self.out.remove(&id.0);
                            self.let_go(id.0, Reason::Rejected);
                        }
                    }
                }
                self.forget_if_done(&key);
                Reply::Ok
            }
            Command::ChannelDown {
                node,
                connection,
                channel,
            } => {
                self.remove_where(|k| {
                    k.node == node && k.connection == connection && k.channel == channel
                });
                Reply::Ok
            }
            Command::NodeDown { node } => {
                self.remove_where(|k| k.node == node);
                Reply::Ok
            }
            Command::Dequeue {
                key,
                settlement,
                ts,
            } => {
                self.now = self.now.max(ts);
                if self.config.single_active_consumer {
                    return Reply::Unsupported;
                }
                if self.consumers.get(&key).is_some_and(|c| !c.once) {
                    return Reply::Empty;
                }
                self.expire();
                let Some(id) = self.take_head() else {
                    return Reply::Empty;
                };
                let msg = self.msgs[&id].clone();
                let header = MsgHeader {
                    id: MsgId(id),
                    size: msg.size,
                    expires_at: msg.expires_at,
                    delivery_count: msg.count,
                    acquired: msg.acquired,
                };
                if settlement == Settlement::Settled {
                    self.msgs.remove(&id);
                    self.release.insert(id);
                } else {
                    self.seq += 1;
                    let seq = self.seq;
                    self.consumers.entry(key.clone()).or_insert(Cons {
                        prefetch: 1,
                        priority: 0,
                        up: true,
                        once: true,
                        seq,
                    });
                    self.msgs.get_mut(&id).expect("known").acquired = true;
                    self.out.insert(id, key);
                }
                Reply::Dequeued {
                    header,
                    ready: self.ready().count() as u64,
                }
            }
            Command::Tick { ts } => {
                self.now = self.now.max(ts);
                Reply::Ok
            }
            Command::Purge => {
                let ids: Vec<u64> = self.ready().collect();
                self.fresh.clear();
                self.returned.clear();
                for id in &ids {
                    self.msgs.remove(id);
                    self.release.insert(*id);
                }
                Reply::Purged(ids.len() as u64)
            }
            Command::UpdateConfig(config) => {
                let sac_changed =
                    config.single_active_consumer != self.config.single_active_consumer;
                self.config = config;
                if sac_changed {
                    self.active = None;
                    if self.config.single_active_consumer {
                        self.activate_next();
                    }
                }
                Reply::Ok
            }
        }
    }

    /// Applies `command` to the model and checks the machine's answer to it.
    pub(in crate::queue::quorum::fifo_props) fn check(
        &mut self,
        command: &Command,
        applied: &Applied,
        fifo: &Fifo,
    ) {
        self.release.clear();
        self.dead.clear();
        self.activations.clear();
        let reply = self.before(command);
        assert_eq!(applied.reply, reply, "reply to {command:?}");
        let mut dead = Vec::new();
        let mut activations = Vec::new();
        let mut releases = Vec::new();
        for effect in &applied.effects {
            match effect {
                Effect::Deliver {
                    key,
                    id,
                    delivery_count,
                    redelivered,
                } => {
                    self.expire();
                    assert_eq!(self.head(), Some(id.0), "delivery not from the head");
                    assert!(self.allowed().contains(key), "{key:?} may not get {id} now");
                    self.take_head();
                    let msg = self.msgs.get_mut(&id.0).expect("delivered message known");
                    assert_eq!((*delivery_count, *redelivered), (msg.count, msg.acquired));
                    msg.acquired = true;
                    self.out.insert(id.0, key.clone());
                }
                Effect::DeadLetter { id, reason } => dead.push((id.0, *reason)),
                Effect::ActiveChanged { .. } => activations.push(effect.clone()),
                Effect::Release { ids } => releases.push(ids.clone()),
            }
        }
        self.expire();
        if self.head().is_some() {
            assert!(
                self.allowed().is_empty(),
                "a consumer with credit left idle"
            );
        }
        self.drop_head();
        assert_eq!(
            activations, self.activations,
            "activations after {command:?}"
        );
        let mut expected_dead = self.dead.clone();
        expected_dead.sort_by_key(|(id, _)| *id);
        dead.sort_by_key(|(id, _)| *id);
        assert_eq!(dead, expected_dead, "dead letters after {command:?}");
        let expected: Vec<Vec<MsgId>> = if self.release.is_empty() {
            Vec::new()
        } else {
            vec![self.release.iter().map(|id| MsgId(*id)).collect()]
        };
        assert_eq!(releases, expected, "releases after {command:?}");
        if !releases.is_empty() {
            assert!(matches!(
                applied.effects.last(),
                Some(Effect::Release { .. })
            ));
        }
        for id in std::mem::take(&mut self.release) {
            assert!(self.released.insert(id), "{id} released twice");
        }
        self.compare(fifo);
    }

    /// The machine's sets and counts equal the model's.
    fn compare(&self, fifo: &Fifo) {
        let ready: Vec<u64> = fifo.ready_headers().map(|h| h.id.0).collect();
        assert_eq!(
            ready,
            self.ready().collect::<Vec<_>>(),
            "ready, in delivery order"
        );
        let mut out = BTreeMap::new();
        for (key, consumer) in fifo.consumers() {
            for id in consumer.checked_out.keys() {
                assert!(out.insert(id.0, key.clone()).is_none(), "{id} out twice");
            }
        }
        assert_eq!(out, self.out, "checked out");
        for id in ready.iter().chain(out.keys()) {
            assert!(!self.released.contains(id), "{id} back after its release");
        }
        assert_eq!(fifo.messages_ready(), ready.len() as u64);
        assert_eq!(fifo.ready_bytes(), self.ready_bytes());
        assert_eq!(fifo.messages_unacked(), self.out.len() as u64);
        let live = self.consumers.values().filter(|c| c.up && !c.once).count();
        assert_eq!(fifo.consumer_count(), live);
        assert_eq!(
            fifo.consumers().count(),
            self.consumers.len(),
            "consumers kept"
        );
        if fifo.config().single_active_consumer {
            assert_eq!(fifo.active_consumer(), self.active.as_ref());
        }
    }
}
