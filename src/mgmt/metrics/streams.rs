//! Stream metrics (Warren's `warren_stream_*`): size on disk and segments,
//! offsets, and how far each consumer is behind the committed end (its lag,
//! in messages). Per stream and per consumer on `/metrics/per-object`; on
//! `/metrics` the total size and segments and the largest lag.

use super::{Page, escape};
use crate::broker::Broker;

/// One stream consumer: its labels and lag.
struct Lagging {
    labels: String,
    lag: u64,
}

/// One stream: its labels and figures.
struct Streamed {
    labels: String,
    first_offset: u64,
    committed_offset: u64,
    size_bytes: u64,
    segments: u64,
    consumers: Vec<Lagging>,
}

fn streams(broker: &Broker) -> Vec<Streamed> {
    let mut out = Vec::new();
    for vhost in broker.vhosts() {
        for queue in vhost.queues() {
            let Some(stream) = queue.stream() else {
                continue;
            };
            let s = stream.stats();
            let labels = format!(
                "vhost=\"{}\",queue=\"{}\"",
                escape(&vhost.name),
                escape(&queue.name)
            );
            let consumers = stream
                .consumers()
                .iter()
                .map(|c| Lagging {
                    labels: format!(
                        "{{{labels},consumer_tag=\"{}\",name=\"{}\"}}",
                        escape(&c.consumer().tag),
                        escape(c.name().unwrap_or_default())
                    ),
                    lag: s.committed_offset.saturating_sub(c.offset()),
                })
                .collect();
            out.push(Streamed {
                labels: format!("{{{labels}}}"),
                first_offset: s.first_offset.unwrap_or(s.committed_offset),
                committed_offset: s.committed_offset,
                size_bytes: s.size_bytes,
                segments: s.segments,
                consumers,
            });
        }
    }
    out
}

/// The stream families.
pub(super) fn render(page: &mut Page, broker: &Broker, per_object: bool) {
    let all = streams(broker);
    type Read = fn(&Streamed) -> u64;
    let families: [(&str, &str, Read, bool); 4] = [
        (
            "warren_stream_size_bytes",
            "Bytes of a stream's segment files on disk",
            |s| s.size_bytes,
            true,
        ),
        (
            "warren_stream_segments",
            "Segment files of a stream",
            |s| s.segments,
            true,
        ),
        (
            "warren_stream_first_offset",
            "The first offset still in a stream",
            |s| s.first_offset,
            false,
        ),
        (
            "warren_stream_committed_offset",
            "The offset the next committed message of a stream gets",
            |s| s.committed_offset,
            false,
        ),
    ];
    for (name, help, read, summed) in families {
        let samples: Vec<(String, f64)> = if per_object {
            all.iter()
                .map(|s| (s.labels.clone(), read(s) as f64))
                .collect()
        } else if summed {
            vec![(String::new(), all.iter().map(read).sum::<u64>() as f64)]
        } else {
            continue;
        };
        page.family(name, "gauge", help, &samples);
    }
    let lags = all.iter().flat_map(|s| &s.consumers);
    let samples: Vec<(String, f64)> = if per_object {
        lags.map(|c| (c.labels.clone(), c.lag as f64)).collect()
    } else {
        vec![(String::new(), lags.map(|c| c.lag).max().unwrap_or(0) as f64)]
    };
    page.family(
        "warren_stream_consumer_lag",
        "gauge",
        "Messages committed to a stream that its consumer has not reached yet (aggregated: the largest)",
        &samples,
    );
}
