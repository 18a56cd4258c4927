//! Codec benchmarks: the publish decode path, the deliver encode path, and decoding a
//! large body frame (a slice of the read buffer, never copied).
//!
//! `cargo bench -p warren-codec` (add `-- --warm-up-time 1 --measurement-time 2` for a
//! quick run).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use tokio_util::codec::Decoder;
use warren_codec::protocol::{AMQPClass, BasicProperties, basic};
use warren_codec::{ContentHeader, Frame, FrameDecoder, FrameEncoder};

const FRAME_MAX: u32 = 131_072;

fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
}

/// basic.publish + content header + one body frame, as a client writes them.
fn publish_wire(body: &[u8]) -> BytesMut {
    let mut enc = FrameEncoder::new();
    let mut out = BytesMut::new();
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.direct".into(),
        routing_key: "orders.created".into(),
        mandatory: false,
        immediate: false,
    }));
    enc.method(1, &publish, &mut out).expect("publish encodes");
    let header =
        ContentHeader::from_properties(body.len() as u64, &properties()).expect("header encodes");
    enc.content(1, &header, body, FRAME_MAX, &mut out);
    out
}

fn decode_publish(c: &mut Criterion) {
    let wire = publish_wire(&[0x42; 16]);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish+header+16B body", |b| {
        let mut decoder = FrameDecoder::new(FRAME_MAX);
        b.iter_batched(
            || wire.clone(),
            |mut buf| {
                let method = decoder.decode(&mut buf).expect("ok").expect("method");
                let header = decoder.decode(&mut buf).expect("ok").expect("header");
                let body = decoder.decode(&mut buf).expect("ok").expect("body");
                (method, header, body, buf)
            },
            BatchSize::SmallInput,
        );
    });

    // One body frame of frame_max: the payload is split off the read buffer, so the
    // cost does not grow with its size.
    let mut body_frame = BytesMut::new();
    let payload = vec![0x5A; (FRAME_MAX - 8) as usize];
    let header = ContentHeader::from_properties(payload.len() as u64, &BasicProperties::default())
        .expect("header encodes");
    FrameEncoder::new().content(1, &header, &payload, FRAME_MAX, &mut body_frame);
    let header_len = 8 + header.payload_len();
    let body_frame = body_frame.split_off(header_len);
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("128KiB body frame", |b| {
        let mut decoder = FrameDecoder::new(FRAME_MAX);
        b.iter_batched(
            || body_frame.clone(),
            |mut buf| {
                let frame = decoder.decode(&mut buf).expect("ok").expect("body");
                debug_assert!(matches!(&frame, Frame::Body(1, b) if b.len() == payload.len()));
                (frame, buf)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn encode_deliver(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for size in [16usize, 1024] {
        let body = vec![0x42; size];
        // The broker keeps the publisher's raw properties and writes them back as they came.
        let header =
            ContentHeader::from_properties(size as u64, &properties()).expect("header encodes");
        let mut enc = FrameEncoder::new();
        let mut out = BytesMut::with_capacity(4096);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("deliver+content {size}B"), |b| {
            b.iter(|| {
                out.clear();
                enc.deliver(
                    1,
                    black_box("amq.ctag-7TzMh3m2pAAr0u5bqVtJ8A"),
                    black_box(42),
                    false,
                    black_box("amq.direct"),
                    black_box("orders.created"),
                    &mut out,
                );
                enc.content(1, black_box(&header), black_box(&body), FRAME_MAX, &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

/// `criterion_group!` writes an undocumented `pub fn`; keeping it private keeps
/// `missing_docs` quiet.
mod group {
    use super::{decode_publish, encode_deliver};
    criterion::criterion_group!(benches, decode_publish, encode_deliver);
}

criterion_main!(group::benches);
