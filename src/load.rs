//! A closed-loop load generator for a running server: `concurrency` workers,
//! each on its own HTTP/2 connection, send `Rank` requests back to back for a
//! fixed duration (or count) and record client-side latency.
//!
//! Requests are built from the embedded demo catalog with a seeded RNG, so
//! two runs send the same traffic. Targets are whatever address the user
//! gives; use loopback when measuring on one machine.

use crate::catalog::Catalog;
use crate::domain::ItemKind;
use crate::proto::v1 as pb;
use crate::sim::ItemPool;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// What to send and for how long.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: String,
    pub concurrency: usize,
    pub duration: Duration,
    /// Stop after this many requests in total, if reached before `duration`.
    pub max_requests: Option<u64>,
    pub candidates: usize,
    pub slots: u32,
    pub seed: u64,
    /// Requests come from this many users (`user-0` ...), 100,000 when
    /// `None`. With [`buyer_purchases`] ingested first, every one of them
    /// has an affinity the flow can act on.
    pub users: Option<u64>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub ok: u64,
    pub errors: u64,
    /// Errors that were `RESOURCE_EXHAUSTED` (load shed by the server).
    pub shed: u64,
    pub elapsed: Duration,
    /// Client-side latency percentiles, microseconds: p50, p90, p99, p99.9, max.
    pub latency_us: [u64; 5],
    /// The same for answers that were errors: how fast refusals come back.
    pub error_latency_us: [u64; 5],
    /// Slots the chuanliu flow filled (reason `CHUANLIU`) in the answers.
    pub flow_slots: u64,
}

impl LoadReport {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [p50, p90, p99, p999, max] = self.latency_us;
        write!(
            f,
            "{} ok, {} errors ({} shed) in {:.2}s: {:.0} req/s; latency us p50 {p50} p90 {p90} p99 {p99} p99.9 {p999} max {max}; {} flow slots",
            self.ok,
            self.errors,
            self.shed,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.flow_slots
        )?;
        if self.errors > 0 {
            let [p50, p90, p99, p999, max] = self.error_latency_us;
            write!(
                f,
                "; errors us p50 {p50} p90 {p90} p99 {p99} p99.9 {p999} max {max}"
            )?;
        }
        Ok(())
    }
}

/// A pool of distinct requests: half live streams, half goods, with upstream
/// estimates on a third of the candidates (as a feed service would send).
pub fn request_pool(catalog: &Catalog, spec: &LoadSpec, size: usize) -> Vec<pb::RankRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let items = ItemPool::from_catalog(catalog);
    let scenes = [
        pb::Scene::Recommend,
        pb::Scene::Mall,
        pb::Scene::Search,
        pb::Scene::Follow,
    ];
    (0..size)
        .map(|i| {
            let mut candidates: Vec<pb::Candidate> = items
                .sample(&mut rng, spec.candidates)
                .into_iter()
                .map(|(id, kind)| pb::Candidate {
                    item_id: id.to_string(),
                    kind: match kind {
                        ItemKind::LiveStream => pb::ItemKind::LiveStream,
                        ItemKind::Goods => pb::ItemKind::Goods,
                    } as i32,
                    ..Default::default()
                })
                .collect();
            for c in candidates.iter_mut() {
                if rng.random_bool(1.0 / 3.0) {
                    c.pctr = Some(rng.random_range(0.01..0.2));
                    c.pcvr = Some(rng.random_range(0.005..0.08));
                }
            }
            pb::RankRequest {
                request_id: format!("load-{i}"),
                user_id: format!(
                    "user-{}",
                    rng.random_range(0..spec.users.unwrap_or(100_000))
                ),
                scene: *scenes.choose(&mut rng).expect("non-empty") as i32,
                slots: spec.slots,
                candidates,
                request_time_ms: None,
            }
        })
        .collect()
}

/// For each of `users` users (`user-0` ...), one purchase through an
/// influencer of a brand whose own live stream is on air, brands taken in
/// turn: after these, the flow can act on every request of those users
/// (and a fleet replica holds cap places for each) where the brands take
/// part (enrolled, or `chuanliu.enroll_all_brands`). `now_ms` is the
/// purchases' time.
pub fn buyer_purchases(catalog: &Catalog, users: u64, now_ms: i64) -> Vec<pb::Event> {
    let influencer = catalog
        .streamers()
        .filter(|s| s.kind == crate::domain::StreamerKind::Influencer)
        .map(|s| s.id.as_str())
        .min();
    let mut brands: Vec<(&str, &str)> = catalog
        .goods_iter()
        .filter(|g| catalog.live_self_stream(&g.brand_id).is_some())
        .map(|g| (g.brand_id.as_str(), g.id.as_str()))
        .collect();
    brands.sort_unstable();
    brands.dedup_by_key(|(brand, _)| *brand);
    let Some(influencer) = influencer.filter(|_| !brands.is_empty()) else {
        return Vec::new();
    };
    (0..users)
        .map(|u| {
            let (brand, item) = brands[u as usize % brands.len()];
            pb::Event {
                event_id: format!("load-buyer-{u}-{now_ms}"),
                time_ms: now_ms,
                user_id: format!("user-{u}"),
                kind: Some(pb::event::Kind::Purchase(pb::Purchase {
                    item_id: item.into(),
                    brand_id: brand.into(),
                    seller_streamer_id: influencer.into(),
                    channel: pb::SaleChannel::Distribution as i32,
                    price: 10.0,
                    venue: pb::SaleVenue::LiveStream as i32,
                })),
            }
        })
        .collect()
}

/// Sends the [`buyer_purchases`] of `users` users, made now, to the
/// server's `EventService`, 500 at a time; how many it took (accepted, or
/// had already).
#[expect(
    clippy::disallowed_methods,
    reason = "the purchases are made now, for a server ranking now"
)]
pub async fn ingest_buyers(
    addr: &str,
    catalog: &Catalog,
    users: u64,
) -> Result<u64, tonic::Status> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let events = buyer_purchases(catalog, users, now);
    let mut client =
        pb::event_service_client::EventServiceClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut taken = 0;
    for batch in events.chunks(500) {
        let reply = client
            .ingest(pb::IngestRequest {
                events: batch.to_vec(),
            })
            .await?
            .into_inner();
        taken += u64::from(reply.accepted + reply.duplicates);
    }
    Ok(taken)
}

/// Writes each request of `pool` encoded, one file each
/// (`req-0000.bin` ...), into `dir` (made if missing); returns how many.
pub fn write_payloads(dir: &std::path::Path, pool: &[pb::RankRequest]) -> std::io::Result<usize> {
    use prost::Message;
    std::fs::create_dir_all(dir)?;
    for (i, request) in pool.iter().enumerate() {
        std::fs::write(dir.join(format!("req-{i:04}.bin")), request.encode_to_vec())?;
    }
    Ok(pool.len())
}

/// Hostile requests: `candidates` empty candidates each, the most a message
/// of a given size can carry (2 bytes apiece), as a flood would send them.
pub fn flood_pool(spec: &LoadSpec, candidates: usize) -> Vec<pb::RankRequest> {
    vec![
        pb::RankRequest {
            request_id: "flood".into(),
            user_id: "flood".into(),
            scene: pb::Scene::Recommend as i32,
            slots: spec.slots,
            candidates: vec![pb::Candidate::default(); candidates],
            request_time_ms: None,
        };
        4
    ]
}

/// p50, p90, p99, p99.9 and max.
fn percentiles(mut samples: Vec<u64>) -> [u64; 5] {
    samples.sort_unstable();
    [
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
        samples.last().copied().unwrap_or(0),
    ]
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

/// Runs the load and reports. Connection failures count as errors.
#[expect(
    clippy::disallowed_methods,
    reason = "a load generator measures wall-clock latency"
)]
pub async fn run(
    spec: LoadSpec,
    pool: Vec<pb::RankRequest>,
) -> Result<LoadReport, tonic::transport::Error> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    let pool = Arc::new(pool);
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + spec.duration;
    let mut workers = Vec::with_capacity(spec.concurrency);
    for w in 0..spec.concurrency {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", spec.addr))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let mut client = pb::rank_service_client::RankServiceClient::new(channel);
        let (pool, sent, max) = (pool.clone(), sent.clone(), spec.max_requests);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut error_latencies = Vec::new();
            let mut shed = 0u64;
            let mut flow = 0u64;
            let mut i = w;
            while Instant::now() < deadline {
                if max.is_some_and(|m| sent.fetch_add(1, Ordering::Relaxed) >= m) {
                    break;
                }
                let req = pool[i % pool.len()].clone();
                i += spec_stride(pool.len());
                let t = Instant::now();
                match client.rank(req).await {
                    Ok(page) => {
                        latencies.push(t.elapsed().as_micros() as u64);
                        let chuanliu = pb::ReasonCode::Chuanliu as i32;
                        flow += page
                            .get_ref()
                            .slots
                            .iter()
                            .filter(|s| s.reasons.contains(&chuanliu))
                            .count() as u64;
                    }
                    Err(status) => {
                        error_latencies.push(t.elapsed().as_micros() as u64);
                        shed += u64::from(status.code() == tonic::Code::ResourceExhausted);
                    }
                }
            }
            (latencies, error_latencies, shed, flow)
        }));
    }
    let (mut all, mut failed, mut shed, mut flow_slots) = (Vec::new(), Vec::new(), 0, 0);
    for w in workers {
        let (lat, err, s, f) = w.await.expect("load worker panicked");
        all.extend(lat);
        failed.extend(err);
        shed += s;
        flow_slots += f;
    }
    let elapsed = start.elapsed();
    Ok(LoadReport {
        ok: all.len() as u64,
        errors: failed.len() as u64,
        shed,
        elapsed,
        latency_us: percentiles(all),
        error_latency_us: percentiles(failed),
        flow_slots,
    })
}

/// Workers walk the pool with a stride coprime to its size so they do not
/// send the same request in lockstep.
fn spec_stride(len: usize) -> usize {
    if len.is_multiple_of(7) { 1 } else { 7 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_samples() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&s, 0.5), 51);
        assert_eq!(percentile(&s, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    /// A spec for building request pools: nothing is sent.
    fn pool_spec(candidates: usize, slots: u32, seed: u64, users: Option<u64>) -> LoadSpec {
        LoadSpec {
            addr: String::new(),
            concurrency: 1,
            duration: Duration::ZERO,
            max_requests: None,
            candidates,
            slots,
            seed,
            users,
        }
    }

    #[test]
    fn request_pool_is_deterministic_and_well_formed() {
        let catalog = Catalog::embedded_demo(128).unwrap();
        let spec = pool_spec(200, 20, 3, None);
        let a = request_pool(&catalog, &spec, 4);
        assert_eq!(a, request_pool(&catalog, &spec, 4));
        for r in &a {
            assert_eq!(r.candidates.len(), 200);
            let mut ids: Vec<_> = r.candidates.iter().map(|c| (&c.item_id, c.kind)).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 200, "candidate ids are unique");
        }
    }

    #[test]
    fn written_payloads_decode_to_the_pool_in_order() {
        use prost::Message;
        let catalog = Catalog::embedded_demo(128).unwrap();
        let spec = pool_spec(30, 10, 5, None);
        let pool = request_pool(&catalog, &spec, 3);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("made/here");
        assert_eq!(write_payloads(&out, &pool).unwrap(), 3);
        for (i, request) in pool.iter().enumerate() {
            let bytes = std::fs::read(out.join(format!("req-{i:04}.bin"))).unwrap();
            assert_eq!(&pb::RankRequest::decode(bytes.as_slice()).unwrap(), request);
        }
        assert!(!out.join("req-0003.bin").exists());
    }

    #[test]
    fn buyers_are_the_users_requests_come_from_and_their_brands_are_on_air() {
        let catalog = Catalog::embedded_demo(128).unwrap();
        let events = buyer_purchases(&catalog, 50, 1_000);
        assert_eq!(events.len(), 50);
        let spec = pool_spec(10, 5, 3, Some(50));
        let buyers: std::collections::HashSet<&str> =
            events.iter().map(|e| e.user_id.as_str()).collect();
        for r in request_pool(&catalog, &spec, 100) {
            assert!(buyers.contains(r.user_id.as_str()), "{}", r.user_id);
        }
        let mut brands = std::collections::HashSet::new();
        for e in &events {
            let Some(pb::event::Kind::Purchase(p)) = &e.kind else {
                panic!("a purchase")
            };
            assert!(catalog.live_self_stream(&p.brand_id).is_some());
            assert_eq!(
                catalog
                    .sale_channel(
                        &p.brand_id,
                        &p.seller_streamer_id,
                        crate::domain::Channel::Influencer
                    )
                    .0,
                crate::domain::Channel::Influencer
            );
            brands.insert(p.brand_id.clone());
        }
        assert!(brands.len() > 1, "brands in turn");
    }
}
