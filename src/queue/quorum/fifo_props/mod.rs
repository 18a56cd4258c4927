//! Property tests of the fifo against a reference model.
//!
//! The model keeps messages in plain sets (never delivered, returned, out to
//! a key, released) and re-derives what each command must do; it lets the
//! machine choose the consumer of a delivery but checks that the choice was
//! allowed (live, credit left, highest priority, the active one under single
//! active consumer) and that nothing was left undelivered. After every
//! command the machine's sets must equal the model's, so every accepted
//! message is in exactly one place, and a released one never comes back.
//! Then: the same commands give the same states and effects twice, and a
//! postcard snapshot taken midway continues exactly as the uninterrupted run.

use proptest::prelude::*;

mod model;

use super::fifo::*;
use model::Model;

/// The consumers the generator picks from: (node, channel, tag).
const KEYS: [(u64, u16, &str); 6] = [
    (1, 1, "a"),
    (1, 1, "b"),
    (1, 2, "c"),
    (2, 1, "d"),
    (2, 2, "e"),
    (3, 1, "f"),
];

fn key_of(who: usize) -> ConsumerKey {
    let (node, channel, tag) = KEYS[who % KEYS.len()];
    ConsumerKey::new(node, 1, channel, tag)
}

/// The basic.get key of `who`'s channel.
fn get_key_of(who: usize) -> ConsumerKey {
    let (node, channel, _) = KEYS[who % KEYS.len()];
    ConsumerKey::new(node, 1, channel, "get")
}

/// A generated step; ids are picked when it runs, from what the model knows.
#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        size: u32,
        ttl: Option<u64>,
        dt: u64,
    },
    Consume {
        who: usize,
        prefetch: u32,
        priority: i64,
    },
    Resume {
        who: usize,
        keep: u8,
    },
    Cancel {
        who: usize,
    },
    Settle {
        who: usize,
        pick: u8,
        get: bool,
    },
    Return {
        who: usize,
        pick: u8,
        get: bool,
        failed: bool,
    },
    Discard {
        who: usize,
        pick: u8,
        get: bool,
    },
    ChannelDown {
        who: usize,
    },
    NodeDown {
        node: u64,
    },
    Get {
        who: usize,
        settled: bool,
        dt: u64,
    },
    Tick {
        dt: u64,
    },
    Purge,
    Config(Config),
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::option::of(0u64..6),
        prop::option::of(20u64..80),
        any::<bool>(),
        prop::option::of(0u32..3),
        prop::option::of(5u64..60),
        any::<bool>(),
        prop::bool::weighted(0.25),
    )
        .prop_map(
            |(max_length, max_length_bytes, reject, limit, ttl, dlx, sac)| Config {
                max_length,
                max_length_bytes,
                overflow: if reject {
                    Overflow::RejectPublish
                } else {
                    Overflow::DropHead
                },
                delivery_limit: limit,
                message_ttl: ttl,
                dead_lettering: dlx,
                single_active_consumer: sac,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..KEYS.len();
    prop_oneof![
        8 => (1u32..20, prop::option::of(0u64..50), 0u64..10)
            .prop_map(|(size, ttl, dt)| Op::Enqueue { size, ttl, dt }),
        3 => (who.clone(), 0u32..4, -1i64..2)
            .prop_map(|(who, prefetch, priority)| Op::Consume { who, prefetch, priority }),
        1 => (who.clone(), any::<u8>()).prop_map(|(who, keep)| Op::Resume { who, keep }),
        1 => who.clone().prop_map(|who| Op::Cancel { who }),
        4 => (who.clone(), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(who, pick, get)| Op::Settle { who, pick, get }),
        3 => (who.clone(), any::<u8>(), prop::bool::weighted(0.2), prop::bool::weighted(0.8))
            .prop_map(|(who, pick, get, failed)| Op::Return { who, pick, get, failed }),
        1 => (who.clone(), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(who, pick, get)| Op::Discard { who, pick, get }),
        1 => who.clone().prop_map(|who| Op::ChannelDown { who }),
        1 => (1u64..4).prop_map(|node| Op::NodeDown { node }),
        2 => (who, any::<bool>(), 0u64..10)
            .prop_map(|(who, settled, dt)| Op::Get { who, settled, dt }),
        2 => (0u64..30).prop_map(|dt| Op::Tick { dt }),
        1 => Just(Op::Purge),
        1 => config().prop_map(Op::Config),
    ]
}

/// Runs the steps against a fresh machine and the model, checking each;
/// returns the commands run and what each produced.
fn run_checked(config: &Config, ops: &[Op]) -> (Vec<Command>, Vec<Applied>, Fifo) {
    let mut model = Model::new(config.clone());
    let mut fifo = Fifo::new(config.clone());
    let mut commands = Vec::new();
    let mut applied = Vec::new();
    for op in ops {
        let command = model.command(op);
        let a = fifo.apply(command.clone());
        model.check(&command, &a, &fifo);
        commands.push(command);
        applied.push(a);
    }
    (commands, applied, fifo)
}

fn replay(start: Fifo, commands: &[Command]) -> (Vec<Applied>, Fifo) {
    let mut fifo = start;
    let applied = commands.iter().map(|c| fifo.apply(c.clone())).collect();
    (applied, fifo)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_model(config in config(), ops in prop::collection::vec(op(), 1..120)) {
        run_checked(&config, &ops);
    }

    #[test]
    fn same_commands_same_state_and_effects(
        config in config(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let (commands, applied, fifo) = run_checked(&config, &ops);
        let (again, other) = replay(Fifo::new(config), &commands);
        prop_assert_eq!(again, applied);
        prop_assert_eq!(other, fifo);
    }

    #[test]
    fn snapshot_midway_continues_as_uninterrupted(
        config in config(),
        ops in prop::collection::vec(op(), 1..120),
        cut in any::<prop::sample::Index>(),
    ) {
        let (commands, applied, fifo) = run_checked(&config, &ops);
        let cut = cut.index(commands.len() + 1);
        let (_, half) = replay(Fifo::new(config), &commands[..cut]);
        let bytes = postcard::to_allocvec(&half).expect("serialise");
        let restored: Fifo = postcard::from_bytes(&bytes).expect("deserialise");
        prop_assert_eq!(&restored, &half);
        let (rest, end) = replay(restored, &commands[cut..]);
        prop_assert_eq!(&rest[..], &applied[cut..]);
        prop_assert_eq!(end, fifo);
    }
}
