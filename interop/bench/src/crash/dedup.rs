//! Dedup mode (deduplication across a crash): a durable exchange of type
//! `x-message-deduplication` (`x-cache-size` 100000) bound to a durable
//! queue; N persistent messages, message `seq` with the header
//! `x-deduplication-header: "id-<seq>"`, pipelined with confirms; the broker
//! SIGKILLed at a seeded point mid-stream, restarted on the same data
//! directory; then all N ids are published again (same headers) with
//! confirms, and the queue is read back.
//!
//! The README's contract (Deduplication): a durable exchange's ids are kept
//! in the store, written with the message's group commit, so the id of a
//! confirmed persistent message survives a crash with the message; no
//! `x-cache-persistence` is needed (it is accepted and only checked). So:
//! every id whose first publish was confirmed must be in the queue exactly
//! once (the republish was swallowed); an id never sent before the kill
//! exactly once (its republish was confirmed and must not be swallowed); an
//! id sent but not confirmed at most once: twice is counted, not a failure
//! (its first publish was not confirmed). An unconfirmed id missing though its
//! republish was confirmed (the cache kept an id whose message was lost) is
//! counted and reported, not a failure: the README promises nothing for
//! unconfirmed publishes.

use lapin::types::{AMQPValue, FieldTable};

use crate::amqp::{self, Fate, Rng, sample, within};
use crate::publish::{KillPlan, land_kill};
use crate::round::{Round, Verdict, say};

/// `x-cache-size` of the exchange: larger than any round, so nothing is evicted.
const CACHE_SIZE: i64 = 100_000;

/// The headers of message `seq`: its deduplication id.
fn id_of(seq: u64) -> Option<FieldTable> {
    Some(amqp::header(
        "x-deduplication-header",
        AMQPValue::LongString(format!("id-{seq}").into()),
    ))
}

/// Runs one dedup-mode round.
pub async fn run(r: &Round) -> anyhow::Result<Verdict> {
    let n = r.messages;
    if n as i64 > CACHE_SIZE {
        anyhow::bail!("dedup mode takes at most {CACHE_SIZE} messages (the cache size)");
    }
    let plan = KillPlan::draw(&mut Rng::new(r.seed), n);
    let exchange = format!("{}.dedup", r.queue);
    let mut v = Verdict::default();
    let mut broker = r.start_broker().await?;
    let conn = amqp::connect(&broker.uri()).await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    let mut args = FieldTable::default();
    args.insert("x-cache-size".into(), AMQPValue::LongLongInt(CACHE_SIZE));
    amqp::declare_exchange_to_queue(
        &ch,
        &exchange,
        "x-message-deduplication",
        args,
        &r.queue,
        "",
    )
    .await?;
    let switch = broker.kill_switch();
    let p = amqp::publish_to(
        &ch,
        &exchange,
        "",
        id_of,
        n,
        r.window,
        plan.trigger(&switch),
    )
    .await;
    land_kill(&mut broker, &switch, &p, plan.planned(), &mut v).await?;
    drop(ch);
    drop(conn);
    broker.restart().await?;
    say(format!(
        "restarted: pid {}; publishing all {n} ids again",
        broker.pid().unwrap_or(0)
    ));

    // Every id again, with confirms: every one must be confirmed (a duplicate
    // is acked too).
    let again = match amqp::connect(&broker.uri()).await {
        Ok(conn) => {
            let again = match within("channel.open", conn.create_channel()).await {
                Ok(ch) => {
                    Some(amqp::publish_to(&ch, &exchange, "", id_of, n, r.window, |_, _| {}).await)
                }
                Err(e) => {
                    v.fail(format!("republishing: {e:#}"));
                    None
                }
            };
            amqp::close(conn).await;
            again
        }
        Err(e) => {
            v.fail(format!("republishing: {e:#}"));
            None
        }
    };
    let republished = again.as_ref().map_or(0, |a| a.count(Fate::Confirmed));
    say(format!(
        "republished: {republished} of {n} confirmed in {:.2} s",
        again.as_ref().map_or(0.0, |a| a.elapsed.as_secs_f64())
    ));
    if let Some(a) = &again
        && republished != n
    {
        v.fail(format!(
            "only {republished} of {n} republishes were confirmed: {}",
            a.error.as_deref().unwrap_or("no error")
        ));
    }
    let rec = amqp::recover(&broker.uri(), &r.queue).await;
    broker.stop().await;

    let (count, foreign) = amqp::tally(p.fate.len(), &rec.deliveries);
    // The checks that rest on the republish only count republishes confirmed.
    let again_ok = |s: u64| {
        again
            .as_ref()
            .is_some_and(|a| a.fate[s as usize] == Fate::Confirmed)
    };
    let confirmed_lost = p.seqs(Fate::Confirmed, &count, |c| c == 0);
    let confirmed_twice = p.seqs(Fate::Confirmed, &count, |c| c > 1);
    let unsent_missing: Vec<u64> = p
        .seqs(Fate::NotSent, &count, |c| c == 0)
        .into_iter()
        .filter(|s| again_ok(*s))
        .collect();
    let unsent_twice = p.seqs(Fate::NotSent, &count, |c| c > 1);
    let unconfirmed_twice = p.seqs(Fate::Unconfirmed, &count, |c| c > 1);
    let unconfirmed_missing: Vec<u64> = p
        .seqs(Fate::Unconfirmed, &count, |c| c == 0)
        .into_iter()
        .filter(|s| again_ok(*s))
        .collect();
    say(format!(
        "read back {} (queue depth {}): confirmed ids: {} once, {} missing, {} twice or more; \
         never-sent ids: {} once; unconfirmed ids: {} once, {} twice (counted, not failures), \
         {} missing though republished",
        rec.deliveries.len(),
        rec.depth.map_or("?".to_string(), |d| d.to_string()),
        p.seqs(Fate::Confirmed, &count, |c| c == 1).len(),
        confirmed_lost.len(),
        confirmed_twice.len(),
        p.seqs(Fate::NotSent, &count, |c| c == 1).len(),
        p.seqs(Fate::Unconfirmed, &count, |c| c == 1).len(),
        unconfirmed_twice.len(),
        unconfirmed_missing.len()
    ));
    if !unconfirmed_missing.is_empty() {
        // The publisher's retry of an unconfirmed publish was confirmed and
        // swallowed: the id outlived its message, so the retry's confirm lies.
        v.fail(format!(
            "{} unconfirmed ids are gone though their republish was confirmed (the cache kept an id whose message was lost): {}",
            unconfirmed_missing.len(),
            sample(&unconfirmed_missing)
        ));
    }
    rec.check_read_back(foreign, &mut v);
    if !confirmed_lost.is_empty() {
        v.fail(format!(
            "{} of {} confirmed ids are not in the queue (message lost, its id kept): {}",
            confirmed_lost.len(),
            p.count(Fate::Confirmed),
            sample(&confirmed_lost)
        ));
    }
    if !confirmed_twice.is_empty() {
        v.fail(format!(
            "{} confirmed ids are in the queue twice (the cache forgot them in the crash): {}",
            confirmed_twice.len(),
            sample(&confirmed_twice)
        ));
    }
    if !unsent_missing.is_empty() {
        v.fail(format!(
            "{} ids never sent before the kill were swallowed on their first (confirmed) \
             publish: {}",
            unsent_missing.len(),
            sample(&unsent_missing)
        ));
    }
    if !unsent_twice.is_empty() {
        v.fail(format!(
            "ids published once are in the queue twice: {}",
            sample(&unsent_twice)
        ));
    }
    rec.check_depth(&mut v);
    Ok(v)
}
