//! Rates as RabbitMQ's management API reports them: `message_stats` with a
//! count and a `<name>_details` object per counter, and `<length>_details` for
//! queue lengths. `rate` is per second over the last statistics interval;
//! with `msg_rates_age` / `lengths_age` (seconds) and `msg_rates_incr` /
//! `lengths_incr` the details also carry `samples` (newest first),
//! `avg_rate` and `avg` over that age.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::stats::{Details, History};

/// The rate-related query parameters of a GET.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct RatesQuery {
    lengths_age: Option<u64>,
    lengths_incr: Option<u64>,
    msg_rates_age: Option<u64>,
    msg_rates_incr: Option<u64>,
}

impl RatesQuery {
    /// The window asked for message rates, (age, increment) in seconds.
    pub fn msg_rates(&self) -> Option<(u64, u64)> {
        window(self.msg_rates_age, self.msg_rates_incr)
    }

    /// The window asked for lengths.
    pub fn lengths(&self) -> Option<(u64, u64)> {
        window(self.lengths_age, self.lengths_incr)
    }
}

fn window(age: Option<u64>, incr: Option<u64>) -> Option<(u64, u64)> {
    let age = age?;
    Some((age, incr.unwrap_or(age.max(1))))
}

/// One `*_details` object.
pub fn details_json(details: Details) -> Value {
    let mut out = json!({ "rate": round(details.rate) });
    if let Some(window) = details.window {
        let samples: Vec<Value> = window
            .samples
            .iter()
            .map(|&(sample, timestamp)| json!({"sample": sample, "timestamp": timestamp}))
            .collect();
        out["samples"] = Value::Array(samples);
        out["avg_rate"] = Value::from(round(window.avg_rate));
        out["avg"] = Value::from(round(window.avg));
    }
    out
}

/// `message_stats`: for each of `names`, its count now (`counts`) and its
/// details from `history` (where its series is at the same index).
pub fn message_stats(
    names: &[&str],
    counts: &[u64],
    history: &History,
    window: Option<(u64, u64)>,
) -> Value {
    let mut out = Map::new();
    for (i, (name, count)) in names.iter().zip(counts).enumerate() {
        out.insert((*name).to_owned(), Value::from(*count));
        out.insert(
            format!("{name}_details"),
            details_json(history.details(i, window)),
        );
    }
    Value::Object(out)
}

/// Adds `<name>_details` for lengths whose series start at `first` in
/// `history`, to `object`.
pub fn length_details(
    object: &mut Value,
    names: &[&str],
    history: &History,
    first: usize,
    window: Option<(u64, u64)>,
) {
    for (i, name) in names.iter().enumerate() {
        object[format!("{name}_details")] = details_json(history.details(first + i, window));
    }
}

/// Two decimals, as the API's rates are usually read.
fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_carry_samples_only_when_asked() {
        let history = History::default();
        history.push(10_000, vec![0]);
        history.push(15_000, vec![50]);
        let plain = message_stats(&["publish"], &[50], &history, None);
        assert_eq!(
            plain,
            json!({"publish": 50, "publish_details": {"rate": 10.0}})
        );
        let windowed = message_stats(&["publish"], &[50], &history, Some((60, 5)));
        assert_eq!(
            windowed["publish_details"]["samples"],
            json!([{"sample": 50, "timestamp": 15000}, {"sample": 0, "timestamp": 10000}])
        );
        assert_eq!(windowed["publish_details"]["avg_rate"], 10.0);
    }
}
