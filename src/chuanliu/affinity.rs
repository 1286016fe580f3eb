//! The affinity store: user -> brands the user bought through influencers.
//!
//! An entry is 52 bytes (brand, two source influencers, weight, four
//! second-resolution times, a counter, the holdout arm and two outcomes for
//! it, see `holdout`, and the user's taste for the brand): ids are interned to `u32` and times
//! kept in seconds so that tens of millions of entries fit in a few GB
//! (docs/chuanliu.md has the measured bytes per entry at 10M). Users are
//! spread over shards, each behind its own mutex: a `Rank` touches one user,
//! so contention is between requests for users in the same shard only.
//!
//! Weights decay with a half-life and are stored as of `updated`; the decayed
//! weight is computed when read. An entry expires `ttl` after its last
//! purchase; expired entries are dropped when their user is touched and by
//! [`Affinities::sweep`].

mod layout;

pub use layout::Layout;

use super::Secs;
use compact_str::CompactString;
use foldhash::HashMap;
use layout::{decode_shard, encode_shard};
use parking_lot::Mutex;

/// How affinities decay, expire and trigger the flow.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinityParams {
    pub half_life_s: f64,
    pub ttl_s: f64,
    pub max_brands_per_user: usize,
    /// Decayed weight below which an affinity no longer triggers the flow.
    pub min_weight: f64,
}

/// An impression of the brand's own stream counts as the user seeing the
/// flow's impression when it comes within this long after the flow served
/// it (clients report impressions seconds after the page).
pub const SEEN_WITHIN_S: u32 = 3_600;

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
    /// Last time the user saw the brand's stream after a flow impression
    /// (an `Impression` event within [`SEEN_WITHIN_S`] of `shown`; 0:
    /// never): attribution counts from here, not from `shown`.
    pub seen: Secs,
    /// Start of the frequency-cap window and the flow impressions in it.
    pub window_start: Secs,
    pub window_count: u16,
    /// In the flow's holdout (decided when it was made): served ghosts only.
    pub holdout: bool,
    /// A unit of the holdout's experiment: made while the holdout was on.
    /// One made with it off (or before it existed) is treated but counted
    /// in neither arm, so switching the holdout on never compares older
    /// treated units with younger held-out ones.
    pub unit: bool,
    /// The unit's outcomes since it was made, yuan: the user's GMV in the
    /// brand's own live stream, and in every channel split among the user's
    /// live affinities.
    pub own_gmv: f32,
    pub all_gmv: f32,
    /// The brand's items (goods, own streams) per `Rank` request of this
    /// user since the affinity was made: a running mean over the last
    /// [`TASTE_WINDOW`] requests (`requests` of them so far). Retrieval
    /// proposes what the user likes, so this reads the user's taste for
    /// what the brand sells.
    pub taste: f32,
    pub requests: u16,
}

/// One affinity's outcome that a purchase moved, for the holdout's sums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moved {
    pub brand: u32,
    pub holdout: bool,
    /// The affinity is a unit of the experiment (see [`Affinity::unit`]).
    pub unit: bool,
    /// The brand's own live stream: (before, after).
    pub own: (f64, f64),
    /// Every channel, this affinity's share: (before, after).
    pub all: (f64, f64),
}

/// Requests the taste's running mean covers, at most: about ten days of a
/// heavy user's, so a taste that changes is followed.
pub const TASTE_WINDOW: u16 = 200;

impl Affinity {
    /// One more request of the user, which proposed `items` of the brand's.
    fn observe(&mut self, items: usize) {
        self.requests = (self.requests + 1).min(TASTE_WINDOW);
        self.taste += (items as f32 - self.taste) / f32::from(self.requests);
    }

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
    /// The affinity is in the holdout: a ghost, not an impression.
    pub holdout: bool,
    /// [`Affinity::taste`] before this request.
    pub taste: f64,
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

/// A user's entries are a boxed slice, exactly as long as it holds: a `Vec`
/// would keep room for 4 after the first push (and 8 more bytes per user).
/// Purchases, which resize it, are rare next to the reads in `Rank`.
pub(super) type Shard = HashMap<CompactString, Box<[Affinity]>>;

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
    /// A new affinity is a unit of the holdout's experiment in `arm`
    /// (`Some(true)`: held out), or outside it with `None`; returns the
    /// arm when a unit was made.
    pub fn record(
        &self,
        user: &str,
        brand: u32,
        source: u32,
        now: Secs,
        params: &AffinityParams,
        arm: Option<bool>,
    ) -> Option<bool> {
        let mut shard = self.shard(user).lock();
        let slot = shard.entry(CompactString::from(user)).or_default();
        if let Some(a) = slot
            .iter_mut()
            .find(|a| a.brand == brand && !a.expired(now, params))
        {
            a.weight = (a.weight_at(now, params) + 1.0) as f32;
            a.updated = now;
            if a.sources[0] != source {
                a.sources = [source, a.sources[0]];
            }
            return None;
        }
        let mut entries = std::mem::take(slot).into_vec();
        entries.retain(|a| !a.expired(now, params));
        let fresh = Affinity {
            brand,
            sources: [source, NONE],
            weight: 1.0,
            updated: now,
            shown: Secs(0),
            seen: Secs(0),
            window_start: Secs(0),
            window_count: 0,
            holdout: arm == Some(true),
            unit: arm.is_some(),
            own_gmv: 0.0,
            all_gmv: 0.0,
            taste: 0.0,
            requests: 0,
        };
        let mut made = arm;
        if entries.len() < params.max_brands_per_user {
            entries.push(fresh);
        } else {
            let (weakest, w) = entries
                .iter()
                .enumerate()
                .map(|(i, a)| (i, a.weight_at(now, params)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at the bound, so not empty");
            if w < 1.0 {
                entries[weakest] = fresh;
            } else {
                made = None;
            }
        }
        *slot = entries.into_boxed_slice();
        made
    }

    /// A purchase by `user` of `price` yuan at `now`, in `own`'s own live stream
    /// when given: adds it to the outcomes of the user's live affinities
    /// and says what moved.
    pub fn credit(
        &self,
        user: &str,
        own: Option<u32>,
        price: f64,
        now: Secs,
        params: &AffinityParams,
    ) -> Vec<Moved> {
        let mut shard = self.shard(user).lock();
        let Some(entries) = shard.get_mut(user) else {
            return Vec::new();
        };
        let live = entries.iter().filter(|a| !a.expired(now, params)).count();
        let share = price / live.max(1) as f64;
        let add = |y: &mut f32, by: f64| {
            let before = *y as f64;
            *y = (before + by) as f32;
            (before, *y as f64)
        };
        entries
            .iter_mut()
            .filter(|a| !a.expired(now, params))
            .map(|a| {
                let own = if own == Some(a.brand) {
                    add(&mut a.own_gmv, price)
                } else {
                    (a.own_gmv as f64, a.own_gmv as f64)
                };
                Moved {
                    brand: a.brand,
                    holdout: a.holdout,
                    unit: a.unit,
                    own,
                    all: add(&mut a.all_gmv, share),
                }
            })
            .collect()
    }

    /// The brands `user` may be shown now: weight at least `min_weight`,
    /// under the frequency cap; strongest first. With `on_page` (how many
    /// of a brand's items this request proposed), every live affinity of
    /// the user takes the request into its taste; a trigger carries the
    /// taste from before it.
    pub fn triggers(
        &self,
        user: &str,
        now: Secs,
        params: &AffinityParams,
        cap: u16,
        window_s: u32,
        mut on_page: Option<&mut dyn FnMut(u32) -> usize>,
    ) -> Vec<Trigger> {
        let mut shard = self.shard(user).lock();
        let Some(entries) = shard.get_mut(user) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for a in entries.iter_mut().filter(|a| !a.expired(now, params)) {
            let taste = f64::from(a.taste);
            if let Some(on_page) = on_page.as_mut() {
                a.observe(on_page(a.brand));
            }
            if a.can_trigger(now, params, cap, window_s) {
                out.push(Trigger {
                    brand: a.brand,
                    weight: a.weight_at(now, params),
                    sources: a.sources,
                    holdout: a.holdout,
                    taste,
                });
            }
        }
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

    /// An impression of `brand`'s own stream to `user` at `now`: marks the
    /// flow's impression seen if it was served within [`SEEN_WITHIN_S`]
    /// before (a held-out affinity's ghosts are never seen), and attribution
    /// then runs from `now`. Whether it is the first sight of that flow
    /// impression: the stream seen again on a later page is not another.
    pub fn saw(&self, user: &str, brand: u32, now: Secs) -> bool {
        let mut shard = self.shard(user).lock();
        let Some(a) = shard
            .get_mut(user)
            .and_then(|e| e.iter_mut().find(|a| a.brand == brand))
        else {
            return false;
        };
        // A client's clock may run a little behind the server's.
        let after = now.0.saturating_add(60) >= a.shown.0;
        let fresh = now.0.saturating_sub(a.shown.0) <= SEEN_WITHIN_S;
        if a.holdout || a.shown.0 == 0 || !after || !fresh {
            return false;
        }
        let again = a.seen.0 >= a.shown.0;
        a.seen = Secs(a.seen.0.max(now.0));
        !again
    }

    /// For a purchase in `brand`'s own live stream at `now`: the affinity,
    /// whose influencers to credit, if the user saw the brand's stream
    /// after a flow impression within `window_s` before it. A held-out
    /// affinity's ghosts count from when they were served: nothing was
    /// there to be seen.
    pub fn attribute(&self, user: &str, brand: u32, now: Secs, window_s: u32) -> Option<Affinity> {
        let shard = self.shard(user).lock();
        shard
            .get(user)?
            .iter()
            .find(|a| a.brand == brand)
            .filter(|a| {
                let from = if a.holdout { a.shown } else { a.seen };
                from.0 != 0 && from <= now && now.0 - from.0 <= window_s
            })
            .copied()
    }

    /// Drops expired entries (and users left with none) and counts the rest.
    pub fn sweep(&self, now: Secs, params: &AffinityParams) -> Swept {
        let mut out = Swept::default();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, entries| {
                let before = entries.len();
                if entries.iter().any(|a| a.expired(now, params)) {
                    *entries = entries
                        .iter()
                        .filter(|a| !a.expired(now, params))
                        .copied()
                        .collect();
                }
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

    /// Every user's entries for a snapshot, one blob per shard (format in
    /// [`encode_shard`]); a shard is locked only while it is encoded.
    pub fn export(&self) -> Vec<Vec<u8>> {
        self.shards
            .iter()
            .map(|shard| encode_shard(&shard.lock()))
            .collect()
    }

    /// Loads blobs made by [`Affinities::export`] (or, in `Layout::V1`, by
    /// a build before the holdout). Each user goes to the shard this build
    /// assigns it, whatever the exporting one did.
    pub fn import(&self, blobs: &[Vec<u8>], layout: Layout) -> Result<(), String> {
        for blob in blobs {
            decode_shard(blob, layout, |user, entries| {
                self.shard(user).lock().insert(user.into(), entries);
            })?;
        }
        Ok(())
    }

    /// The affinities of one user (for tests and the admin view).
    pub fn of(&self, user: &str) -> Vec<Affinity> {
        self.shard(user)
            .lock()
            .get(user)
            .map(|e| e.to_vec())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
