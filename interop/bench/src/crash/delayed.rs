//! Delayed mode: persistent messages pipelined with confirms into a durable
//! `x-delayed-message` exchange bound to a durable queue, each with its own
//! delay (0.2 to 1.5 s, seeded), the broker SIGKILLed at a seeded point
//! mid-stream (some messages already due and in the queue, most waiting),
//! restarted on the same data directory; once every delay has passed the
//! queue is read back. Every confirmed message must arrive. A message routed
//! into the queue in the flush that the kill cut may also still wait in the
//! exchange and arrive twice: duplicates are counted and reported, not
//! failures (README: delayed messages are delivered at least once).

use std::time::{Duration, Instant};

use lapin::types::{AMQPValue, FieldTable};

use crate::amqp::{self, Fate, Rng, sample, within};
use crate::publish::{PlannedKill, land_kill};
use crate::round::{Round, Verdict, say};

/// The delay of message `seq` in a round seeded `seed`, in milliseconds.
fn delay_of(seed: u64, seq: u64) -> i64 {
    let mut rng = Rng::new(seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    i64::try_from(rng.range(200, 1500)).unwrap_or(1500)
}

/// Runs one delayed-mode round.
pub async fn run(r: &Round) -> anyhow::Result<Verdict> {
    let mut rng = Rng::new(r.seed);
    let n = r.messages;
    let kill_at = rng.range((n / 10).max(1), (n * 9 / 10).max(1));
    let delay = Duration::from_micros(match rng.range(0, 1) {
        0 => 0,
        _ => rng.range(1, 3000),
    });
    let exchange = format!("{}.delayed", r.queue);
    let mut v = Verdict::default();
    let mut broker = r.start_broker().await?;
    let conn = amqp::connect(&broker.uri()).await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString("direct".into()),
    );
    amqp::declare_exchange_to_queue(
        &ch,
        &exchange,
        "x-delayed-message",
        args,
        &r.queue,
        &r.queue,
    )
    .await?;
    let switch = broker.kill_switch();
    let seed = r.seed;
    let p = amqp::publish_to(
        &ch,
        &exchange,
        &r.queue,
        |seq| {
            Some(amqp::header(
                "x-delay",
                AMQPValue::LongLongInt(delay_of(seed, seq)),
            ))
        },
        n,
        r.window,
        |_, confirmed| {
            if confirmed >= kill_at {
                switch.fire(delay);
            }
        },
    )
    .await;
    let killed = Instant::now();
    let plan = PlannedKill {
        kill_at,
        delay,
        what: "confirmed",
    };
    land_kill(&mut broker, &switch, &p, plan, &mut v).await?;
    drop(ch);
    drop(conn);
    broker.restart().await?;
    say(format!(
        "restarted: pid {}; waiting for every delay to pass",
        broker.pid().unwrap_or(0)
    ));
    // Every delay is at most 1.5 s from its publish, which came before the kill.
    let all_due = killed + Duration::from_millis(2000);
    tokio::time::sleep_until(all_due.into()).await;
    let rec = amqp::recover(&broker.uri(), &r.queue).await;
    broker.stop().await;

    let (count, foreign) = amqp::tally(p.fate.len(), &rec.deliveries);
    let lost = p.seqs(Fate::Confirmed, &count, |c| c == 0);
    let duplicates = count.iter().filter(|c| **c > 1).count();
    let unsent_back = p.seqs(Fate::NotSent, &count, |c| c > 0);
    say(format!(
        "after the restart: read back {}; confirmed: {} back, {} lost; unconfirmed back: {}; \
         delivered twice: {duplicates}",
        rec.deliveries.len(),
        p.count(Fate::Confirmed) - lost.len() as u64,
        lost.len(),
        p.seqs(Fate::Unconfirmed, &count, |c| c > 0).len()
    ));
    rec.check_read_back(foreign, &mut v);
    if !lost.is_empty() {
        v.fail(format!(
            "{} of {} confirmed delayed messages lost: {}",
            lost.len(),
            p.count(Fate::Confirmed),
            sample(&lost)
        ));
    }
    if !unsent_back.is_empty() {
        v.fail(format!(
            "messages that were never sent came back: {}",
            sample(&unsent_back)
        ));
    }
    Ok(v)
}
