//! Publish mode: persistent messages pipelined with confirms into a durable
//! queue, the broker SIGKILLed at a seeded point mid-stream, restarted on the
//! same data directory, the queue read back. Every confirmed message must be
//! there exactly once and in publish order; unconfirmed ones may or may not be.

use std::time::Duration;

use crate::amqp::{self, Fate, Published, Recovered, Rng, sample, within};
use crate::broker::{Broker, KillSwitch, describe_status};
use crate::round::{Round, Verdict, say};
use std::process::ExitStatus;

/// Where a kill planned mid-publish landed: `delay` after message
/// `kill_at` was `what` (sent, confirmed).
pub struct PlannedKill<'a> {
    /// The message count the kill waited for.
    pub kill_at: u64,
    /// How long after it.
    pub delay: Duration,
    /// What the count counted.
    pub what: &'a str,
}

/// A kill planned mid-publish, drawn from a round's generator: once
/// `kill_at` messages are sent (or confirmed, half the rounds: a broker
/// that confirms late is then still killed with confirms to keep), at once
/// or (half the kills) up to 3 ms later.
pub struct KillPlan {
    /// The message count the kill waits for, between N/10 and 9N/10.
    pub kill_at: u64,
    /// Whether it counts confirmed messages rather than sent ones.
    pub on_confirms: bool,
    /// How long after the count is reached the kill lands.
    pub delay: Duration,
}

impl KillPlan {
    /// Draws the plan for a publish of `n` messages.
    pub fn draw(rng: &mut Rng, n: u64) -> KillPlan {
        let kill_at = rng.range((n / 10).max(1), (n * 9 / 10).max(1));
        let on_confirms = rng.range(0, 1) == 1;
        let delay = Duration::from_micros(match rng.range(0, 1) {
            0 => 0,
            _ => rng.range(1, 3000),
        });
        KillPlan {
            kill_at,
            on_confirms,
            delay,
        }
    }

    /// The publisher's progress callback that fires `switch` per the plan.
    pub fn trigger<'a>(&'a self, switch: &'a KillSwitch) -> impl FnMut(u64, u64) + 'a {
        move |sent, confirmed| {
            if (if self.on_confirms { confirmed } else { sent }) >= self.kill_at {
                switch.fire(self.delay);
            }
        }
    }

    /// Where the kill was planned, for [`land_kill`].
    pub fn planned(&self) -> PlannedKill<'static> {
        PlannedKill {
            kill_at: self.kill_at,
            delay: self.delay,
            what: if self.on_confirms {
                "confirmed"
            } else {
                "sent"
            },
        }
    }
}

/// The kill was planned mid-publish: a round whose publishing ended before
/// it fails; the broker is killed now if it was not yet, its exit awaited,
/// and where the kill landed is said.
pub async fn land_kill(
    broker: &mut Broker,
    switch: &KillSwitch,
    p: &Published,
    plan: PlannedKill<'_>,
    v: &mut Verdict,
) -> anyhow::Result<ExitStatus> {
    let n = p.fate.len();
    if !switch.fired() {
        v.fail(format!(
            "publishing ended after {} of {n} messages, before the planned kill: {}",
            p.sent,
            p.error.as_deref().unwrap_or("no error")
        ));
    }
    switch.fire(Duration::ZERO);
    let status = broker.wait_exit(Duration::from_secs(10)).await?;
    say(format!(
        "kill -9 {} µs after {} messages were {} ({}): {} confirmed, {} unconfirmed, \
         {} nacked, {} never sent",
        plan.delay.as_micros(),
        plan.kill_at,
        plan.what,
        describe_status(status),
        p.count(Fate::Confirmed),
        p.count(Fate::Unconfirmed),
        p.count(Fate::Nacked),
        p.count(Fate::NotSent)
    ));
    if let Some(e) = &p.error {
        say(format!("the publisher saw: {e}"));
    }
    Ok(status)
}

/// Runs one publish-mode round.
pub async fn run(r: &Round) -> anyhow::Result<Verdict> {
    let n = r.messages;
    let plan = KillPlan::draw(&mut Rng::new(r.seed), n);
    let mut v = Verdict::default();
    let mut broker = r.start_broker().await?;
    let conn = amqp::connect(&broker.uri()).await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    amqp::declare_durable(&ch, &r.queue).await?;
    let switch = broker.kill_switch();
    let p = amqp::publish(&ch, &r.queue, n, r.window, plan.trigger(&switch)).await;
    land_kill(&mut broker, &switch, &p, plan.planned(), &mut v).await?;
    drop(ch);
    drop(conn);
    if p.count(Fate::Confirmed) == n {
        say(
            "note: every message was confirmed before the kill landed (the broker outran it); \
             the round still checks that they all survived",
        );
    }
    broker.restart().await?;
    say(format!(
        "restarted: pid {} on the same port and data directory",
        broker.pid().unwrap_or(0)
    ));
    let rec = amqp::recover(&broker.uri(), &r.queue).await;
    broker.stop().await;
    check(&p, &rec, &mut v);
    Ok(v)
}

/// The checks on what came back.
fn check(p: &Published, rec: &Recovered, v: &mut Verdict) {
    let n = p.fate.len();
    let mut count = vec![0u32; n];
    let mut foreign = 0u64;
    // Order: the confirmed messages, at their first appearance, must come
    // back in increasing sequence order.
    let mut last_confirmed: Option<u64> = None;
    let mut inversions = Vec::new();
    for d in &rec.deliveries {
        let Some(seq) = d.seq.filter(|s| (*s as usize) < n) else {
            foreign += 1;
            continue;
        };
        count[seq as usize] += 1;
        if count[seq as usize] == 1 && p.fate[seq as usize] == Fate::Confirmed {
            if let Some(last) = last_confirmed
                && seq < last
            {
                inversions.push(format!("#{seq} after #{last}"));
            }
            last_confirmed = Some(last_confirmed.map_or(seq, |l| l.max(seq)));
        }
    }
    let lost = p.seqs(Fate::Confirmed, &count, |c| c == 0);
    let dup_confirmed = p.seqs(Fate::Confirmed, &count, |c| c > 1);
    let unconfirmed_back = p.seqs(Fate::Unconfirmed, &count, |c| c > 0).len();
    let dup_unconfirmed = p.seqs(Fate::Unconfirmed, &count, |c| c > 1).len();
    let nacked_back = p.seqs(Fate::Nacked, &count, |c| c > 0).len();
    let unsent_back = p.seqs(Fate::NotSent, &count, |c| c > 0);
    let redelivered = rec.deliveries.iter().filter(|d| d.redelivered).count();

    match rec.depth {
        Some(depth) => say(format!(
            "after the restart: queue depth {depth}, read back {} ({redelivered} flagged \
             redelivered)",
            rec.deliveries.len()
        )),
        None => say("after the restart: no queue depth"),
    }
    say(format!(
        "confirmed: {} back, {} lost; unconfirmed: {unconfirmed_back} of {} back; nacked: \
         {nacked_back} of {} back; duplicates of unconfirmed messages: {dup_unconfirmed}",
        p.count(Fate::Confirmed) - lost.len() as u64,
        lost.len(),
        p.count(Fate::Unconfirmed),
        p.count(Fate::Nacked)
    ));
    rec.check_read_back(foreign, v);
    if !lost.is_empty() {
        v.fail(format!(
            "{} of {} confirmed messages lost: {}",
            lost.len(),
            p.count(Fate::Confirmed),
            sample(&lost)
        ));
    }
    if !dup_confirmed.is_empty() {
        v.fail(format!(
            "confirmed messages delivered more than once: {}",
            sample(&dup_confirmed)
        ));
    }
    if !inversions.is_empty() {
        v.fail(format!(
            "confirmed messages out of publish order ({} times): {}",
            inversions.len(),
            inversions
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !unsent_back.is_empty() {
        v.fail(format!(
            "messages that were never sent came back: {}",
            sample(&unsent_back)
        ));
    }
    rec.check_depth(v);
}
