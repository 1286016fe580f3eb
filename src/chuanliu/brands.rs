//! Brands in the flow: whether each is enrolled or paused, its own daily
//! budget if it has one, and what the flow did for it.

use super::holdout::HoldoutState;
use super::pacer::{Pacer, PacerState};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A brand's standing in the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enrollment {
    /// Never set: in the flow only under `chuanliu.enroll_all_brands`.
    #[default]
    Unset,
    Enrolled,
    Paused,
}

impl Enrollment {
    pub fn active(self, enroll_all: bool) -> bool {
        match self {
            Enrollment::Unset => enroll_all,
            Enrollment::Enrolled => true,
            Enrollment::Paused => false,
        }
    }
}

/// What an operator set for a brand (kept in the event log, so it survives
/// restarts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandSetting {
    pub brand_id: String,
    pub enrollment: Enrollment,
    /// The brand's own daily impression cap, paced like the global budget;
    /// `None`: only the global budget applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_impressions: Option<u64>,
}

/// Flow figures for one brand (or for all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowCounts {
    pub impressions: u64,
    pub conversions: u64,
    /// Attributed GMV in fen (0.01 yuan): an integer, so it adds up exactly.
    pub gmv_fen: u64,
}

impl FlowCounts {
    pub fn gmv(&self) -> f64 {
        self.gmv_fen as f64 / 100.0
    }
}

/// Yuan to whole fen.
pub fn fen(price: f64) -> u64 {
    (price * 100.0).round().max(0.0) as u64
}

#[derive(Default)]
pub struct Counters {
    impressions: AtomicU64,
    conversions: AtomicU64,
    gmv_fen: AtomicU64,
}

impl Counters {
    pub fn impression(&self) {
        self.impressions.fetch_add(1, Relaxed);
    }

    pub fn conversion(&self, price: f64) {
        self.conversions.fetch_add(1, Relaxed);
        self.gmv_fen.fetch_add(fen(price), Relaxed);
    }

    pub fn get(&self) -> FlowCounts {
        FlowCounts {
            impressions: self.impressions.load(Relaxed),
            conversions: self.conversions.load(Relaxed),
            gmv_fen: self.gmv_fen.load(Relaxed),
        }
    }

    pub fn set(&self, c: FlowCounts) {
        self.impressions.store(c.impressions, Relaxed);
        self.conversions.store(c.conversions, Relaxed);
        self.gmv_fen.store(c.gmv_fen, Relaxed);
    }
}

#[derive(Default)]
pub struct Brand {
    pub setting: Mutex<(Enrollment, Option<u64>)>,
    pub pacer: Pacer,
    pub counts: Counters,
    pub holdout: Mutex<HoldoutState>,
}

impl Brand {
    pub fn enrollment(&self) -> Enrollment {
        self.setting.lock().0
    }

    pub fn daily_impressions(&self) -> Option<u64> {
        self.setting.lock().1
    }
}

/// One brand in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandSnapshot {
    pub brand: u32,
    pub enrollment: Enrollment,
    pub daily_impressions: Option<u64>,
    pub pacer: PacerState,
    pub counts: FlowCounts,
}

/// Brands by interned id. Entries are made on first use and kept: there are
/// thousands of brands, not millions.
#[derive(Default)]
pub struct Brands {
    map: RwLock<foldhash::HashMap<u32, Arc<Brand>>>,
    /// Brands' own budgets are leased from the fleet's counts.
    shared: std::sync::atomic::AtomicBool,
}

impl Brands {
    pub fn get(&self, brand: u32) -> Option<Arc<Brand>> {
        self.map.read().get(&brand).cloned()
    }

    pub fn entry(&self, brand: u32) -> Arc<Brand> {
        if let Some(b) = self.get(brand) {
            return b;
        }
        let shared = self.shared.load(Relaxed);
        self.map
            .write()
            .entry(brand)
            .or_insert_with(|| {
                Arc::new(Brand {
                    pacer: if shared {
                        Pacer::shared()
                    } else {
                        Pacer::default()
                    },
                    ..Brand::default()
                })
            })
            .clone()
    }

    /// Every brand's budget, from now on, is leased from the fleet's count.
    pub fn share_budgets(&self) {
        self.shared.store(true, Relaxed);
        for (_, b) in self.all() {
            b.pacer.share();
        }
    }

    /// The holdout's state of every brand, for a snapshot.
    pub fn export_holdout(&self) -> Vec<(u32, HoldoutState)> {
        self.all()
            .into_iter()
            .map(|(brand, b)| (brand, *b.holdout.lock()))
            .collect()
    }

    pub fn import_holdout(&self, states: Vec<(u32, HoldoutState)>) {
        for (brand, state) in states {
            *self.entry(brand).holdout.lock() = state;
        }
    }

    pub fn all(&self) -> Vec<(u32, Arc<Brand>)> {
        let mut out: Vec<_> = self
            .map
            .read()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        out.sort_by_key(|(k, _)| *k);
        out
    }

    pub fn export(&self) -> Vec<BrandSnapshot> {
        self.all()
            .into_iter()
            .map(|(brand, b)| {
                let (enrollment, daily_impressions) = *b.setting.lock();
                BrandSnapshot {
                    brand,
                    enrollment,
                    daily_impressions,
                    pacer: b.pacer.state(),
                    counts: b.counts.get(),
                }
            })
            .collect()
    }

    pub fn import(&self, brands: Vec<BrandSnapshot>) {
        for s in brands {
            let b = self.entry(s.brand);
            *b.setting.lock() = (s.enrollment, s.daily_impressions);
            b.pacer.restore(s.pacer);
            b.counts.set(s.counts);
        }
    }
}
