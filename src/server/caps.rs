//! The fleet-wide frequency cap on a replica's `Rank` path
//! (`cluster::caps`): places held in Redis before the page is ranked, and
//! the ones it did not use given back after.

use super::{Live, State, metrics};
use crate::chuanliu::CapHolds;
use crate::engine::RankQuery;
use std::sync::Arc;

/// The places `query`'s page may fill with flow streams (ranked under
/// experiment `variant`), held in the fleet's counts; `None` in one
/// process (its own counts are the cap).
/// Asks Redis only for users the flow would show a brand to; when Redis
/// does not answer within `cap_hold_timeout`, the page has no flow stream
/// (ranking goes on), and whatever the late answer took stays counted
/// until its window ends: less shown, never more.
pub(super) async fn hold(
    state: &State,
    live: &Live,
    variant: usize,
    query: &RankQuery,
) -> Option<CapHolds> {
    let caps = state.caps.as_ref()?;
    let wanted = {
        let catalog = state.catalog.read();
        let (engine, _) = live.variant(variant);
        engine.flow_wanted(&catalog, &state.ranking.flow, query)
    };
    if wanted.is_empty() {
        return Some(CapHolds::none());
    }
    let params = &live.config.engine.chuanliu;
    let mut caps = caps.clone();
    let timeout = caps.timeout();
    let asked = caps.hold(
        &query.user_id,
        &wanted,
        params.max_per_page,
        params.frequency_cap,
        params.frequency_window_s,
    );
    let held = match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(held)) => held,
        failed => {
            if let Ok(Err(e)) = failed {
                tracing::debug!(error = %e, "cannot hold frequency-cap places in Redis");
            }
            metrics::record_cap_hold(None);
            return Some(CapHolds::none());
        }
    };
    metrics::record_cap_hold(Some(held.len()));
    Some(CapHolds::new(held.into_iter().map(|h| {
        let w = &wanted[h.index];
        (w.brand, w.name.clone(), h.window)
    })))
}

/// Gives back, off the request path, the places `holds` kept that the page
/// did not use. One that cannot be given back stays counted until its
/// window ends: the user is shown less, never more.
pub(super) fn release(state: &Arc<State>, user: String, holds: &CapHolds) {
    let Some(mut caps) = state.caps.clone() else {
        return;
    };
    let places: Vec<(String, String)> = holds
        .unused()
        .map(|h| (h.name.to_string(), h.window.clone()))
        .collect();
    if places.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let places: Vec<(&str, &str)> = places
            .iter()
            .map(|(b, w)| (b.as_str(), w.as_str()))
            .collect();
        match caps.release(&user, &places).await {
            Ok(n) => metrics::record_cap_returned(n),
            Err(e) => tracing::debug!(error = %e, "frequency-cap places not given back"),
        }
    });
}
