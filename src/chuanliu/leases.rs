//! A replica's side of the fleet's shared budgets: which budgets to lease
//! more of, impressions granted, and what is held at shutdown. The leasing
//! itself (Redis) is the server's; this is plain state.

use super::{Flow, FlowParams, LeaseRequest};
use crate::domain::Millis;
use compact_str::CompactString;

/// A daily budget of flow impressions: the flow's, or one brand's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BudgetKey {
    Flow,
    Brand(CompactString),
}

impl Flow {
    /// From now on every budget (the flow's and each brand's) is spent only
    /// from impressions leased from the fleet's counts: this process is one
    /// replica of several.
    pub fn share_budgets(&self) {
        self.budget.share();
        self.registry.share_budgets();
    }

    /// With shared budgets: the leases to ask the fleet's counts for now,
    /// `lease` impressions at a time, for the budgets running low.
    pub fn lease_requests(
        &self,
        now: Millis,
        params: &FlowParams,
        lease: u64,
    ) -> Vec<(BudgetKey, LeaseRequest)> {
        let mut out = Vec::new();
        if !params.enabled {
            return out; // nothing to spend: hold nothing of the fleet's
        }
        if let Some(r) =
            self.budget
                .lease_request(params.daily_impressions, &params.pacing, now, lease)
        {
            out.push((BudgetKey::Flow, r));
        }
        for (brand, entry) in self.registry.all() {
            if let Some(daily) = entry.daily_impressions()
                && let Some(r) = entry.pacer.lease_request(daily, &params.pacing, now, lease)
            {
                out.push((BudgetKey::Brand(self.brands.name(brand)), r));
            }
        }
        out
    }

    /// Adds impressions leased for budget day `day` to `key`'s budget.
    pub fn grant(&self, key: &BudgetKey, day: i64, n: u64) {
        match key {
            BudgetKey::Flow => self.budget.grant(day, n),
            BudgetKey::Brand(name) => {
                if let Some(brand) = self.brands.get(name) {
                    self.registry.entry(brand).pacer.grant(day, n);
                }
            }
        }
    }

    /// Gives up every leased impression not spent, to return to the
    /// fleet's counts: (budget, day, how many).
    pub fn release_leases(&self) -> Vec<(BudgetKey, i64, u64)> {
        let mut out = Vec::new();
        if let Some((day, n)) = self.budget.release() {
            out.push((BudgetKey::Flow, day, n));
        }
        for (brand, entry) in self.registry.all() {
            if let Some((day, n)) = entry.pacer.release() {
                out.push((BudgetKey::Brand(self.brands.name(brand)), day, n));
            }
        }
        out
    }
}
