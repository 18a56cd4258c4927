//! Retry mode's verdict: what the consumer recorded of every message, checked
//! against what the broker promised (none lost, none back after a known ack,
//! retries flagged and counted across the restart, none early).

use super::{After, Msg, Seen, State};
use crate::amqp::{self, sample};
use crate::round::{Verdict, say};

/// The checks on the whole run.
pub(super) fn check(
    msgs: &[Msg],
    seen: &Seen,
    early_before: usize,
    after: &After,
    rec: &amqp::Recovered,
    v: &mut Verdict,
) {
    let seqs = |pred: &dyn Fn(&Msg) -> bool| -> Vec<u64> {
        (0..msgs.len())
            .filter(|s| pred(&msgs[*s]))
            .map(|s| s as u64)
            .collect()
    };
    let lost = seqs(&|m| !matches!(m.state, State::AckSent | State::AckSynced));
    // Rejected before the kill (the reject known processed) and back after it.
    let retried = seqs(&|m| m.rejected_before_kill && m.after > 0);
    let unflagged = seqs(&|m| m.rejected_before_kill && matches!(m.first_after, Some((false, _))));
    let uncounted = seqs(&|m| {
        m.rejected_before_kill
            && matches!(&m.first_after, Some((_, c)) if !matches!(c, Ok(Some(n)) if *n >= 1))
    });
    let bad_type: Vec<String> = msgs
        .iter()
        .filter_map(|m| match &m.first_after {
            Some((_, Err(t))) if m.rejected_before_kill => Some(t.clone()),
            _ => None,
        })
        .take(3)
        .collect();
    let back_after = seqs(&|m| m.after > 0).len();
    let flagged_after = seqs(&|m| matches!(m.first_after, Some((true, _)))).len();
    let counted_after =
        seqs(&|m| matches!(&m.first_after, Some((_, Ok(Some(c)))) if *c >= 1)).len();
    say(format!(
        "after the restart: {back_after} messages delivered ({flagged_after} flagged \
         redelivered, {counted_after} with x-delivery-count >= 1); of the {} rejected before \
         the kill (known processed) and back: {} flagged redelivered, {} with x-delivery-count \
         >= 1; every message acked after {} ms",
        retried.len(),
        retried.len() - unflagged.len(),
        retried.len() - uncounted.len(),
        after.took.as_millis()
    ));
    say(format!(
        "in all: {} deliveries, {} rejects, {} acks; duplicates (allowed, not failures): {} \
         deliveries after the restart of messages whose ack was known processed before the \
         kill, {} of messages whose ack may not have reached the broker; left in the queue at \
         the end: {}",
        seen.deliveries,
        seen.rejects,
        seen.acks,
        seen.after_synced_ack_across,
        seen.after_sent_ack,
        rec.deliveries.len()
    ));
    if let Some(e) = &after.error {
        v.fail(format!("consuming after the restart: {e}"));
    }
    if let Some(e) = &rec.error {
        v.fail(format!("reading the queue at the end: {e}"));
    }
    if !lost.is_empty() {
        v.fail(format!(
            "{} of {} confirmed messages never acked (lost): {}",
            lost.len(),
            msgs.len(),
            sample(&lost)
        ));
    }
    if !seen.after_synced_ack.is_empty() {
        v.fail(format!(
            "delivered again after their ack was known processed (the broker up in between): {}",
            sample(&seen.after_synced_ack)
        ));
    }
    if !unflagged.is_empty() {
        v.fail(format!(
            "rejected before the kill, back after it without redelivered=true: {}",
            sample(&unflagged)
        ));
    }
    if !uncounted.is_empty() {
        v.fail(format!(
            "rejected before the kill, back after it without x-delivery-count >= 1 (the retry \
             state was lost){}: {}",
            if bad_type.is_empty() {
                String::new()
            } else {
                format!(" (header types: {})", bad_type.join(", "))
            },
            sample(&uncounted)
        ));
    }
    if !seen.early.is_empty() {
        let shown: Vec<String> = seen
            .early
            .iter()
            .take(5)
            .map(|(s, ms)| format!("#{s} {ms} ms early"))
            .collect();
        v.fail(format!(
            "{} retries came before their due time ({} before the kill, {} after): {}",
            seen.early.len(),
            early_before,
            seen.early.len() - early_before,
            shown.join(", ")
        ));
    }
    if seen.foreign > 0 {
        v.fail(format!(
            "{} deliveries with bodies that are not ours",
            seen.foreign
        ));
    }
}
