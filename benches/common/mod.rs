//! What the event benches ingest: batches of distinct purchases through
//! influencers, spread over users, goods, brands and sellers.

use fairflow::domain::{Channel, Event, EventKind, Millis};
use std::sync::atomic::{AtomicU64, Ordering};

pub const BATCH: usize = 100;

/// The next `BATCH` purchases, their ids `<prefix>-<n>` numbered by `next`.
pub fn batch(next: &AtomicU64, prefix: &str) -> Vec<Event> {
    (0..BATCH)
        .map(|_| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            Event {
                event_id: format!("{prefix}-{i:012}"),
                time: Millis(1_795_132_800_000 + i as i64),
                user_id: format!("u{}", i % 10_000),
                kind: EventKind::Purchase {
                    item_id: format!("g{:06}", i % 30_000),
                    brand_id: format!("b{:03}", i % 300),
                    seller_streamer_id: format!("s{:05}", i % 3_000),
                    channel: Channel::Influencer,
                    price: 10.0 + (i % 500) as f64,
                    venue: None,
                },
            }
        })
        .collect()
}
