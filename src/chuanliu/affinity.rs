//! The affinity store: user -> brands the user bought through influencers.
//!
//! An entry is 32 bytes (brand, two source influencers, weight, three
//! second-resolution times, a counter): ids are interned to `u32` and times
//! kept in seconds so that tens of millions of entries fit in a few GB
//! (docs/chuanliu.md has the measured bytes per entry at 10M). Users are
//! spread over shards, each behind its own mutex: a `Rank` touches one user,
//! so contention is between requests for users in the same shard only.
//!
//! Weights decay with a half-life and are stored as of `updated`; the decayed
//! weight is computed when read. An entry expires `ttl` after its last
//! purchase; expired entries are dropped when their user is touched and by
//! [`Affinities::sweep`].

use super::{AffinityParams, Secs};
use compact_str::CompactString;
use foldhash::HashMap;
use parking_lot::Mutex;

/// No source influencer in this place.
const NONE: u32 = u32::MAX;
const SHARDS: usize = 64;

/// One user -> brand affinity.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Affinity {
    /// Interned brand id.
    pub brand: u32,
    /// The influencers whose sales created it, most recent first (interned
    /// streamer ids; `u32::MAX` for none).
    pub sources: [u32; 2],
    /// Weight as of `updated`.
    pub weight: f32,
    /// Last purchase through an influencer.
    pub updated: Secs,
    /// Last flow impression of the brand to this user (0: never).
    pub shown: Secs,
    /// Start of the frequency-cap window and the flow impressions in it.
    pub window_start: Secs,
    pub window_count: u16,
}

impl Affinity {
    /// The weight at `now`.
    pub fn weight_at(&self, now: Secs, params: &AffinityParams) -> f64 {
        let age = now.0.saturating_sub(self.updated.0) as f64;
        self.weight as f64 * (-age * std::f64::consts::LN_2 / params.half_life_s).exp()
    }

    fn expired(&self, now: Secs, params: &AffinityParams) -> bool {
        now.0.saturating_sub(self.updated.0) as f64 > params.ttl_s
    }

    pub fn sources(&self) -> impl Iterator<Item = u32> + '_ {
        self.sources.iter().copied().filter(|&s| s != NONE)
    }

    /// Whether it may trigger the flow at `now`: alive, strong enough, and
    /// under the frequency cap.
    pub fn can_trigger(&self, now: Secs, params: &AffinityParams, cap: u16, window_s: u32) -> bool {
        !self.expired(now, params)
            && self.capped_count(now, window_s) < cap
            && self.weight_at(now, params) >= params.min_weight
    }

    /// Flow impressions already counted against the cap at `now`.
    fn capped_count(&self, now: Secs, window_s: u32) -> u16 {
        if now.0.saturating_sub(self.window_start.0) >= window_s {
            0
        } else {
            self.window_count
        }
    }
}

/// A brand this user may be shown through the flow, and how strongly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trigger {
    pub brand: u32,
    pub weight: f64,
    pub sources: [u32; 2],
}

/// What a take changed, to undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    at: Secs,
    previous_shown: Secs,
    window_start: Secs,
}

/// Counts from a sweep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Swept {
    pub users: usize,
    pub entries: usize,
    pub expired: usize,
    /// Live entries per interned brand.
    pub per_brand: HashMap<u32, u64>,
}

type Shard = HashMap<CompactString, Vec<Affinity>>;

pub struct Affinities {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Affinities {
    fn default() -> Self {
        Affinities {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

impl Affinities {
    fn shard(&self, user: &str) -> &Mutex<Shard> {
        // A fixed hash (not the maps' seeded one): the shard of a user must
        // not matter, but it is cheap to keep it stable for debugging.
        let h = crc32fast::hash(user.as_bytes()) as usize;
        &self.shards[h % SHARDS]
    }

    /// A purchase of `brand` through influencer `source` at `now`: creates
    /// or strengthens the affinity. With the user at `max_brands_per_user`,
    /// the weakest affinity goes, unless the new one would be the weakest.
    pub fn record(&self, user: &str, brand: u32, source: u32, now: Secs, params: &AffinityParams) {
        let mut shard = self.shard(user).lock();
        let entries = shard.entry(CompactString::from(user)).or_default();
        entries.retain(|a| !a.expired(now, params));
        if let Some(a) = entries.iter_mut().find(|a| a.brand == brand) {
            a.weight = (a.weight_at(now, params) + 1.0) as f32;
            a.updated = now;
            if a.sources[0] != source {
                a.sources = [source, a.sources[0]];
            }
            return;
        }
        let fresh = Affinity {
            brand,
            sources: [source, NONE],
            weight: 1.0,
            updated: now,
            shown: Secs(0),
            window_start: Secs(0),
            window_count: 0,
        };
        if entries.len() < params.max_brands_per_user {
            entries.push(fresh);
            return;
        }
        let (weakest, w) = entries
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.weight_at(now, params)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at the bound, so not empty");
        if w < 1.0 {
            entries[weakest] = fresh;
        }
    }

    /// The brands `user` may be shown now: weight at least `min_weight`,
    /// under the frequency cap; strongest first.
    pub fn triggers(
        &self,
        user: &str,
        now: Secs,
        params: &AffinityParams,
        cap: u16,
        window_s: u32,
    ) -> Vec<Trigger> {
        let shard = self.shard(user).lock();
        let Some(entries) = shard.get(user) else {
            return Vec::new();
        };
        let mut out: Vec<Trigger> = entries
            .iter()
            .filter(|a| a.can_trigger(now, params, cap, window_s))
            .map(|a| Trigger {
                brand: a.brand,
                weight: a.weight_at(now, params),
                sources: a.sources,
            })
            .collect();
        out.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.brand.cmp(&b.brand)));
        out
    }

    /// Counts one flow impression of `brand` to `user` against the cap, if
    /// the cap allows it; checked and counted under one lock, so concurrent
    /// requests for the same user cannot both take the last place.
    pub fn take(
        &self,
        user: &str,
        brand: u32,
        now: Secs,
        cap: u16,
        window_s: u32,
    ) -> Option<Taken> {
        let mut shard = self.shard(user).lock();
        let a = shard.get_mut(user)?.iter_mut().find(|a| a.brand == brand)?;
        let count = a.capped_count(now, window_s);
        if count >= cap {
            return None;
        }
        if count == 0 {
            a.window_start = now;
        }
        let taken = Taken {
            at: now,
            previous_shown: a.shown,
            window_start: a.window_start,
        };
        a.window_count = count + 1;
        a.shown = now;
        Some(taken)
    }

    /// Undoes a [`Affinities::take`] whose impression was not served: the
    /// count goes back down if its window is still the current one, and
    /// the last-shown time back if no later take moved it.
    pub fn give_back(&self, user: &str, brand: u32, taken: Taken) {
        let mut shard = self.shard(user).lock();
        if let Some(a) = shard
            .get_mut(user)
            .and_then(|e| e.iter_mut().find(|a| a.brand == brand))
        {
            if a.window_start == taken.window_start {
                a.window_count = a.window_count.saturating_sub(1);
            }
            if a.shown == taken.at {
                a.shown = taken.previous_shown;
            }
        }
    }

    /// For a purchase in `brand`'s own channel at `now`: the influencers to
    /// credit if the user was shown the brand through the flow within
    /// `window_s` before it.
    pub fn attribute(&self, user: &str, brand: u32, now: Secs, window_s: u32) -> Option<Affinity> {
        let shard = self.shard(user).lock();
        shard
            .get(user)?
            .iter()
            .find(|a| a.brand == brand)
            .filter(|a| a.shown.0 != 0 && a.shown <= now && now.0 - a.shown.0 <= window_s)
            .copied()
    }

    /// Drops expired entries (and users left with none) and counts the rest.
    pub fn sweep(&self, now: Secs, params: &AffinityParams) -> Swept {
        let mut out = Swept::default();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, entries| {
                let before = entries.len();
                entries.retain(|a| !a.expired(now, params));
                out.expired += before - entries.len();
                for a in entries.iter() {
                    *out.per_brand.entry(a.brand).or_default() += 1;
                }
                out.entries += entries.len();
                !entries.is_empty()
            });
            out.users += shard.len();
        }
        out
    }

    /// Every user's entries, for a snapshot (shard by shard: the store
    /// keeps serving while it is copied).
    pub fn export(&self) -> Vec<(CompactString, Vec<Affinity>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            out.extend(shard.iter().map(|(u, e)| (u.clone(), e.clone())));
        }
        out
    }

    /// Loads entries exported by [`Affinities::export`].
    pub fn import(&self, users: Vec<(CompactString, Vec<Affinity>)>) {
        for (user, entries) in users {
            self.shard(&user).lock().insert(user, entries);
        }
    }

    /// The affinities of one user (for tests and the admin view).
    pub fn of(&self, user: &str) -> Vec<Affinity> {
        self.shard(user)
            .lock()
            .get(user)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> AffinityParams {
        AffinityParams {
            half_life_s: 3600.0,
            ttl_s: 10.0 * 3600.0,
            max_brands_per_user: 2,
            min_weight: 0.3,
        }
    }

    #[test]
    fn weight_decays_by_half_life_and_purchases_add_up() {
        let store = Affinities::default();
        let p = params();
        store.record("u", 1, 7, Secs(1000), &p);
        let t = store.triggers("u", Secs(1000 + 3600), &p, 9, 100);
        assert!((t[0].weight - 0.5).abs() < 1e-6, "{t:?}");
        store.record("u", 1, 8, Secs(1000 + 3600), &p);
        let a = store.of("u")[0];
        assert!((a.weight - 1.5).abs() < 1e-6);
        assert_eq!(a.sources().collect::<Vec<_>>(), vec![8, 7]);
        // Below min_weight: no longer a trigger, still stored.
        assert!(
            store
                .triggers("u", Secs(1000 + 3600 * 4), &p, 9, 100)
                .is_empty()
        );
        assert_eq!(store.of("u").len(), 1);
    }

    #[test]
    fn entries_expire_after_ttl() {
        let store = Affinities::default();
        let p = AffinityParams {
            min_weight: 0.0,
            ..params()
        };
        store.record("u", 1, 7, Secs(1000), &p);
        store.record("v", 1, 7, Secs(1000 + 9 * 3600), &p);
        let later = Secs(1000 + 10 * 3600 + 1);
        assert!(store.triggers("u", later, &p, 9, 100).is_empty());
        assert_eq!(store.triggers("v", later, &p, 9, 100).len(), 1);
        let swept = store.sweep(later, &p);
        assert_eq!((swept.users, swept.entries, swept.expired), (1, 1, 1));
        assert!(store.of("u").is_empty());
    }

    #[test]
    fn bounded_brands_per_user_keep_the_strongest() {
        let store = Affinities::default();
        let p = params();
        store.record("u", 1, 7, Secs(0), &p);
        store.record("u", 1, 7, Secs(0), &p); // weight 2
        store.record("u", 2, 7, Secs(0), &p); // weight 1
        store.record("u", 3, 7, Secs(3600), &p); // brand 2 has decayed to 0.5: replaced
        let mut brands: Vec<u32> = store.of("u").iter().map(|a| a.brand).collect();
        brands.sort();
        assert_eq!(brands, vec![1, 3]);
        // Both stronger than a new purchase: the new one is the weakest, dropped.
        store.record("u", 3, 7, Secs(3600), &p);
        store.record("u", 4, 7, Secs(3600), &p);
        let mut brands: Vec<u32> = store.of("u").iter().map(|a| a.brand).collect();
        brands.sort();
        assert_eq!(brands, vec![1, 3]);
    }

    #[test]
    fn the_cap_counts_within_its_window_and_give_back_undoes_a_take() {
        let store = Affinities::default();
        let p = params();
        store.record("u", 1, 7, Secs(0), &p);
        store.take("u", 1, Secs(10), 2, 100).unwrap();
        let b = store.take("u", 1, Secs(20), 2, 100).unwrap();
        assert!(
            store.take("u", 1, Secs(30), 2, 100).is_none(),
            "cap of 2 reached"
        );
        assert!(store.triggers("u", Secs(30), &p, 2, 100).is_empty());
        store.give_back("u", 1, b);
        assert_eq!(store.of("u")[0].shown, Secs(10));
        assert_eq!(store.of("u")[0].window_count, 1);
        assert!(
            store.take("u", 1, Secs(30), 2, 100).is_some(),
            "place given back"
        );
        // A new window starts 100 s after the window's first impression.
        assert!(store.take("u", 1, Secs(109), 2, 100).is_none());
        assert!(store.take("u", 1, Secs(110), 2, 100).is_some());
        assert!(
            store.take("u", 2, Secs(0), 2, 100).is_none(),
            "no affinity, no take"
        );
    }

    #[test]
    fn attribution_needs_a_flow_impression_within_the_window() {
        let store = Affinities::default();
        let p = params();
        store.record("u", 1, 7, Secs(0), &p);
        assert!(
            store.attribute("u", 1, Secs(5), 60).is_none(),
            "never shown"
        );
        store.take("u", 1, Secs(10), 9, 100).unwrap();
        assert!(store.attribute("u", 1, Secs(70), 60).is_some());
        assert!(
            store.attribute("u", 1, Secs(71), 60).is_none(),
            "window passed"
        );
        assert!(
            store.attribute("u", 1, Secs(9), 60).is_none(),
            "before the impression"
        );
        assert!(
            store.attribute("u", 2, Secs(20), 60).is_none(),
            "other brand"
        );
    }

    #[test]
    fn an_entry_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Affinity>(), 32);
    }
}
