//! Whose counts bound a user's flow impressions of a brand.
//!
//! One process counts them itself (the affinity's window count). Replicas
//! of a fleet cannot: a user's requests land on any of them. There the
//! server takes the cap's places fleet-wide before ranking (one atomic
//! step in the shared store for the brands [`Flow::wanted`] names), passes
//! them in as [`CapScope::Fleet`], and gives back the ones the page did not
//! use. The engine stays free of I/O: it only reads which places it holds
//! and marks the ones it served.

use super::{Flow, FlowParams};
use crate::domain::{Millis, Scene};
use compact_str::CompactString;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whose counts the frequency cap is checked against for one request.
#[derive(Clone, Copy, Default)]
pub enum CapScope<'a> {
    /// This process's own: one process, a replay shard, the simulator.
    #[default]
    Process,
    /// Places held for this request in the fleet's counts: only these
    /// brands may be shown, whatever this replica counted itself.
    Fleet(&'a CapHolds),
}

/// A brand the flow would show a user on this page, before the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub brand: u32,
    pub name: CompactString,
}

/// One place under a brand's cap, held in the fleet's counts.
#[derive(Debug)]
pub struct CapHold {
    pub brand: u32,
    pub name: CompactString,
    /// Which window of the fleet's count the place was taken in, so giving
    /// it back after that window ended does not free a place in the next.
    pub window: String,
    used: AtomicBool,
}

/// The places held for one request.
#[derive(Debug, Default)]
pub struct CapHolds {
    holds: Vec<CapHold>,
}

impl CapHolds {
    /// Holds, as (brand, name, window) of the places taken.
    pub fn new(holds: impl IntoIterator<Item = (u32, CompactString, String)>) -> CapHolds {
        CapHolds {
            holds: holds
                .into_iter()
                .map(|(brand, name, window)| CapHold {
                    brand,
                    name,
                    window,
                    used: AtomicBool::new(false),
                })
                .collect(),
        }
    }

    /// No place held: the flow shows nothing (the fleet's counts are away).
    pub fn none() -> CapHolds {
        CapHolds::default()
    }

    pub fn len(&self) -> usize {
        self.holds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// The unused hold of `brand`, if any.
    fn free(&self, brand: u32) -> Option<&CapHold> {
        self.holds
            .iter()
            .find(|h| h.brand == brand && !h.used.load(Ordering::Relaxed))
    }

    /// The holds the page did not use: to give back.
    pub fn unused(&self) -> impl Iterator<Item = &CapHold> {
        self.holds
            .iter()
            .filter(|h| !h.used.load(Ordering::Relaxed))
    }
}

impl CapScope<'_> {
    /// The cap this process's own count is checked against: under a fleet
    /// scope the held place is the cap, and the process's count (a part of
    /// the fleet's, in a window of its own) must not refuse what it allows.
    pub(super) fn process_cap(&self, params: &FlowParams) -> u16 {
        match self {
            CapScope::Process => params.frequency_cap,
            CapScope::Fleet(_) => u16::MAX,
        }
    }

    pub(super) fn allows(&self, brand: u32) -> bool {
        match self {
            CapScope::Process => true,
            CapScope::Fleet(holds) => holds.free(brand).is_some(),
        }
    }

    /// The flow impression of `brand` was served: its place is used.
    pub(super) fn mark_served(&self, brand: u32) {
        if let CapScope::Fleet(holds) = self
            && let Some(h) = holds.free(brand)
        {
            h.used.store(true, Ordering::Relaxed);
        }
    }
}

impl Flow {
    /// The brands whose streams [`Flow::reserve`] would try for this page
    /// under a fleet-wide cap, strongest affinity first: the places to hold
    /// before ranking. `target` as for `reserve`.
    pub fn wanted<'f>(
        &'f self,
        params: &'f FlowParams,
        scene: Scene,
        user: &'f str,
        now: Millis,
        target: impl FnMut(&str) -> Option<(&'f str, Option<usize>)>,
    ) -> Vec<Wanted> {
        self.offers_under(params, scene, user, now, u16::MAX, target, None)
            .map(|c| Wanted {
                brand: c.trigger.brand,
                name: c.name,
            })
            .collect()
    }
}
