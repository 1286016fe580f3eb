//! Memory per affinity at scale, and the cost of the periodic passes over
//! all of them (sweep, snapshot copy and encoding).
//!
//! `cargo bench --bench affinity_footprint` fills a flow with 10M user-brand
//! affinities (2 brands per user on average, 5M users, 20k brands, 50k
//! influencers, ids shaped like the platform's) through `Flow::apply`, the
//! path purchases take, and counts the bytes the allocator holds before and
//! after. `FOOTPRINT_ENTRIES=1000000` runs a smaller fill.

use fairflow::chuanliu::Flow;
use fairflow::config::Config;
use fairflow::domain::{Channel, Millis};
use fairflow::domain::{Event, EventKind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// The system allocator, counting the bytes it has handed out and not
/// had back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A small, fixed pseudo-random sequence (splitmix64): the fill must not
/// depend on a crate's generator changing.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A bench measures wall time; nothing here is engine code.
#[expect(clippy::disallowed_methods, reason = "a benchmark times itself")]
fn clock() -> Instant {
    Instant::now()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let entries: u64 = std::env::var("FOOTPRINT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let config = Config::embedded_default().unwrap();
    let params = &config.engine.chuanliu;
    let start = Millis(1_795_132_800_000);

    let before = LIVE.load(Relaxed);
    let flow = Flow::new();
    let t = clock();
    let mut event = Event {
        event_id: String::new(),
        time: start,
        user_id: String::new(),
        kind: EventKind::Purchase {
            item_id: "g".into(),
            brand_id: String::new(),
            seller_streamer_id: String::new(),
            channel: Channel::Influencer,
            price: 50.0,
            venue: None,
        },
    };
    // Each user gets two distinct brands: entry i is user i/2's brand i%2.
    for i in 0..entries {
        let user = i / 2;
        let r = mix(i);
        // 19-digit numeric ids, as the platform's user ids are.
        event.user_id = format!("{}", 1_000_000_000_000_000_000u64 + user);
        if let EventKind::Purchase {
            brand_id,
            seller_streamer_id,
            ..
        } = &mut event.kind
        {
            *brand_id = format!("brand-{:05}", (r % 10_000) * 2 + (i % 2));
            *seller_streamer_id = format!("s{:08}", (r >> 20) % 50_000);
        }
        event.time = Millis(start.0 + (i as i64 % 86_400) * 1000);
        flow.apply(&event, params);
    }
    let fill = t.elapsed();
    let held = LIVE.load(Relaxed) - before;

    let now = Millis(start.0 + 86_400_000);
    let t = clock();
    let totals = flow.sweep(now, params);
    let sweep = t.elapsed();
    assert_eq!(totals.active_affinities, entries);

    let t = clock();
    let snapshot = flow.snapshot();
    let copy = t.elapsed();
    let t = clock();
    let bytes = postcard::to_stdvec(&snapshot).unwrap();
    let encode = t.elapsed();

    println!("affinities:            {entries} ({} users)", totals.users);
    println!(
        "memory held:           {:.1} MiB, {:.1} bytes per affinity",
        held as f64 / (1 << 20) as f64,
        held as f64 / entries as f64
    );
    println!(
        "fill through apply:    {:.2} s ({:.0} purchases/s)",
        fill.as_secs_f64(),
        entries as f64 / fill.as_secs_f64()
    );
    println!("sweep (all entries):   {:.0} ms", sweep.as_secs_f64() * 1e3);
    println!("snapshot copy:         {:.0} ms", copy.as_secs_f64() * 1e3);
    println!(
        "snapshot encode:       {:.0} ms, {:.1} MiB ({:.1} bytes per affinity)",
        encode.as_secs_f64() * 1e3,
        bytes.len() as f64 / (1 << 20) as f64,
        bytes.len() as f64 / entries as f64
    );
}
