//! The reference model of the fifo's property tests: messages in plain
//! sets, each command's outcome derived again, the machine's answer checked.

use std::collections::{BTreeMap, BTreeSet};

use super::{Op, get_key_of, key_of};
use crate::queue::dead_letter::Reason;
use crate::queue::quorum::fifo::*;

mod expect;

/// A message as the model knows it.
#[derive(Debug, Clone)]
struct Msg {
    size: u32,
    expires_at: Option<u64>,
    count: u32,
    acquired: bool,
}

/// A consumer as the model knows it.
#[derive(Debug, Clone)]
struct Cons {
    prefetch: u32,
    priority: i64,
    up: bool,
    once: bool,
    seq: u64,
}

/// The reference model.
#[derive(Default)]
pub(super) struct Model {
    config: Config,
    now: u64,
    next_id: u64,
    seq: u64,
    msgs: BTreeMap<u64, Msg>,
    fresh: BTreeSet<u64>,
    returned: BTreeSet<u64>,
    out: BTreeMap<u64, ConsumerKey>,
    released: BTreeSet<u64>,
    consumers: BTreeMap<ConsumerKey, Cons>,
    active: Option<ConsumerKey>,
    /// This command's expected releases, dead letters, activations.
    release: BTreeSet<u64>,
    dead: Vec<(u64, Reason)>,
    activations: Vec<Effect>,
}

impl Model {
    /// A model of an empty queue with these arguments.
    pub(super) fn new(config: Config) -> Self {
        Model {
            config,
            ..Model::default()
        }
    }

    fn head(&self) -> Option<u64> {
        self.returned.first().or(self.fresh.first()).copied()
    }

    fn take_head(&mut self) -> Option<u64> {
        self.returned.pop_first().or_else(|| self.fresh.pop_first())
    }

    fn ready(&self) -> impl Iterator<Item = u64> + '_ {
        self.returned.iter().chain(self.fresh.iter()).copied()
    }

    fn ready_bytes(&self) -> u64 {
        self.ready().map(|id| u64::from(self.msgs[&id].size)).sum()
    }

    fn out_of(&self, key: &ConsumerKey) -> Vec<u64> {
        self.out
            .iter()
            .filter(|(_, k)| *k == key)
            .map(|(id, _)| *id)
            .collect()
    }

    fn let_go(&mut self, id: u64, reason: Reason) {
        self.msgs.remove(&id);
        assert!(
            self.release.insert(id),
            "released twice in one command: {id}"
        );
        if self.config.dead_lettering {
            self.dead.push((id, reason));
        }
    }

    fn expire(&mut self) {
        while let Some(id) = self.head() {
            if self.msgs[&id].expires_at.is_none_or(|at| self.now < at) {
                return;
            }
            self.take_head();
            self.let_go(id, Reason::Expired);
        }
    }

    fn drop_head(&mut self) {
        if self.config.overflow != Overflow::DropHead {
            return;
        }
        while self
            .config
            .max_length
            .is_some_and(|m| self.ready().count() as u64 > m)
            || self
                .config
                .max_length_bytes
                .is_some_and(|m| self.ready_bytes() > m)
        {
            let Some(id) = self.take_head() else { return };
            self.let_go(id, Reason::Maxlen);
        }
    }

    fn return_failed(&mut self, id: u64) {
        self.out.remove(&id);
        let msg = self.msgs.get_mut(&id).expect("out message known");
        msg.count += 1;
        if self.config.delivery_limit.is_some_and(|l| msg.count > l) {
            self.let_go(id, Reason::DeliveryLimit);
        } else {
            self.returned.insert(id);
        }
    }

    fn forget_if_done(&mut self, key: &ConsumerKey) {
        let done = self
            .consumers
            .get(key)
            .is_some_and(|c| (c.once || !c.up) && self.out_of(key).is_empty());
        if done {
            self.consumers.remove(key);
        }
    }

    fn activate_next(&mut self) {
        let next = self
            .consumers
            .iter()
            .filter(|(_, c)| c.up && !c.once)
            .min_by_key(|(_, c)| c.seq)
            .map(|(k, _)| k.clone());
        if let Some(key) = next {
            self.active = Some(key.clone());
            self.activations
                .push(Effect::ActiveChanged { key, active: true });
        }
    }

    fn remove_where(&mut self, gone: impl Fn(&ConsumerKey) -> bool) {
        let keys: Vec<ConsumerKey> = self.consumers.keys().filter(|k| gone(k)).cloned().collect();
        for key in &keys {
            for id in self.out_of(key) {
                self.return_failed(id);
            }
            self.consumers.remove(key);
        }
        if self.active.as_ref().is_some_and(|a| keys.contains(a)) {
            self.active = None;
            self.activate_next();
        }
    }

    fn eligible(&self, key: &ConsumerKey) -> bool {
        self.consumers.get(key).is_some_and(|c| {
            c.up && !c.once && (c.prefetch == 0 || (self.out_of(key).len() as u32) < c.prefetch)
        })
    }

    /// Who may get the next message: under single active consumer the active
    /// one, else the highest priority among those with credit.
    fn allowed(&self) -> Vec<ConsumerKey> {
        if self.config.single_active_consumer {
            return self
                .active
                .iter()
                .filter(|k| self.eligible(k))
                .cloned()
                .collect();
        }
        let eligible: Vec<(&ConsumerKey, i64)> = self
            .consumers
            .iter()
            .filter(|(k, _)| self.eligible(k))
            .map(|(k, c)| (k, c.priority))
            .collect();
        let top = eligible.iter().map(|(_, p)| *p).max();
        eligible
            .into_iter()
            .filter(|(_, p)| Some(*p) == top)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Turns a generated step into a command, picking ids from what is out.
    pub(super) fn command(&mut self, op: &Op) -> Command {
        let picked = |model: &Model, key: &ConsumerKey, pick: u8| -> Vec<MsgId> {
            let mut ids: Vec<MsgId> = model
                .out_of(key)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| pick & (1 << (i % 7)) != 0)
                .map(|(_, id)| MsgId(id))
                .collect();
            if pick & 0x80 != 0 {
                // Ids this key does not have: ignored by the machine.
                ids.push(MsgId(model.next_id + 5));
                ids.extend(model.out.keys().next().map(|id| MsgId(*id)));
            }
            ids
        };
        let key_for = |who: usize, get: bool| if get { get_key_of(who) } else { key_of(who) };
        match op {
            Op::Enqueue { size, ttl, dt } => {
                self.next_id += 1 + dt % 3;
                Command::Enqueue {
                    id: MsgId(self.next_id),
                    size: *size,
                    expires_at: ttl.map(|t| self.now + t),
                    ts: self.now + dt,
                }
            }
            Op::Consume {
                who,
                prefetch,
                priority,
            } => Command::Checkout {
                key: key_of(*who),
                prefetch: *prefetch,
                priority: *priority,
                resume: None,
            },
            Op::Resume { who, keep } => {
                let key = key_of(*who);
                let held = picked(self, &key, *keep & 0x7f);
                let (prefetch, priority) = self
                    .consumers
                    .get(&key)
                    .map_or((0, 0), |c| (c.prefetch, c.priority));
                Command::Checkout {
                    key,
                    prefetch,
                    priority,
                    resume: Some(held),
                }
            }
            Op::Cancel { who } => Command::Cancel { key: key_of(*who) },
            Op::Settle { who, pick, get } => {
                let key = key_for(*who, *get);
                Command::Settle {
                    ids: picked(self, &key, *pick),
                    key,
                }
            }
            Op::Return {
                who,
                pick,
                get,
                failed,
            } => {
                let key = key_for(*who, *get);
                Command::Return {
                    ids: picked(self, &key, *pick),
                    key,
                    failed: *failed,
                }
            }
            Op::Discard { who, pick, get } => {
                let key = key_for(*who, *get);
                Command::Discard {
                    ids: picked(self, &key, *pick),
                    key,
                }
            }
            Op::ChannelDown { who } => {
                let key = key_of(*who);
                Command::ChannelDown {
                    node: key.node,
                    connection: key.connection,
                    channel: key.channel,
                }
            }
            Op::NodeDown { node } => Command::NodeDown { node: *node },
            Op::Get { who, settled, dt } => Command::Dequeue {
                key: get_key_of(*who),
                settlement: if *settled {
                    Settlement::Settled
                } else {
                    Settlement::Unsettled
                },
                ts: self.now + dt,
            },
            Op::Tick { dt } => Command::Tick { ts: self.now + dt },
            Op::Purge => Command::Purge,
            Op::Config(config) => Command::UpdateConfig(config.clone()),
        }
    }
}
