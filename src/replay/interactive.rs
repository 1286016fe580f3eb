//! Interactive replay: the simulated users behind a simulated log answer
//! the replayed rankings, so clicks, purchases and GMV under a config are
//! measured, not only exposure and expected value.
//!
//! The log's header carries what its world was built from
//! ([`Simulation`]); the world is rebuilt and each replayed page goes to
//! [`World::respond`], the same ground truth that wrote the log. The pages
//! the log says were served are answered too, by a second set of user
//! states, so "what happened" is measured the same way as "what would have
//! happened". Both sets start from the same per-user seeds (common random
//! numbers): where two policies show a user the same page, the user answers
//! the same, and the difference between them is not drowned in noise.
//!
//! The purchases simulated users make on replayed pages reach the chuanliu
//! flow when replay time reaches them (in place of the log's purchases,
//! which answered other pages).

use crate::catalog::{Catalog, RecordError};
use crate::domain::Event;
use crate::domain::{ItemKind, Millis};
use crate::engine::RankQuery;
use crate::sim::{PageOutcome, Simulation, UserState, World};
use crate::traffic::{Header, Record};
use foldhash::HashMap;
use std::collections::BTreeMap;

/// A simulated log's world, rebuilt to answer pages.
pub struct Responder {
    /// The catalog as at the start of the simulation: what the log's
    /// requests refer to.
    catalog: Catalog,
    world: World,
    users: HashMap<String, u32>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InteractiveError {
    #[error(
        "interactive replay needs a simulated log: the log's header names no `simulation` \
         (logs written by `fairflow simulate` carry one; a server's own log has no simulated users)"
    )]
    NotSimulated,
    #[error("the log's header does not describe a simulation: {0}")]
    Simulation(String),
    #[error("rebuilding the simulated catalog: {0}")]
    Catalog(#[from] RecordError),
}

impl Responder {
    /// Rebuilds the world the log's header names.
    pub fn from_header(header: Option<&Header>) -> Result<Responder, InteractiveError> {
        let simulation = header
            .and_then(|h| h.simulation.as_deref())
            .ok_or(InteractiveError::NotSimulated)?;
        let simulation = <Simulation as serde::Deserialize>::deserialize(simulation)
            .map_err(|e| InteractiveError::Simulation(e.to_string()))?;
        Ok(Responder::new(&simulation)?)
    }

    pub fn new(simulation: &Simulation) -> Result<Responder, RecordError> {
        let (catalog, world) = simulation.build()?;
        let users = world
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i as u32))
            .collect();
        Ok(Responder {
            catalog,
            world,
            users,
        })
    }

    /// The simulated catalog, as at the start: the one to rank against, so
    /// the engine and the users see the same goods, prices and streams.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Simulated users.
    pub fn users(&self) -> usize {
        self.users.len()
    }
}

/// One shard's simulated users: their states for the replayed and the
/// logged pages, and the replayed pages' purchases not yet due.
pub(super) struct ShardUsers<'a> {
    responder: &'a Responder,
    replayed: HashMap<u32, UserState>,
    logged: HashMap<u32, UserState>,
    /// By (time, arrival): equal times keep the order they were made in.
    pending: BTreeMap<(Millis, u64), Event>,
    arrivals: u64,
    scratch: Vec<Record>,
}

/// Which pages a response is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arm {
    Replayed,
    Logged,
}

impl<'a> ShardUsers<'a> {
    pub(super) fn new(responder: &'a Responder) -> ShardUsers<'a> {
        ShardUsers {
            responder,
            replayed: HashMap::default(),
            logged: HashMap::default(),
            pending: BTreeMap::new(),
            arrivals: 0,
            scratch: Vec::new(),
        }
    }

    /// The user's answer to `page` (slot order); `None` for a user the
    /// world does not know. Purchases on replayed pages, and impressions
    /// of brands' own streams there (resolved against `catalog`, as the
    /// intake would), are kept until due.
    pub(super) fn respond(
        &mut self,
        arm: Arm,
        query: &RankQuery,
        page: &[(&str, ItemKind)],
        catalog: &Catalog,
    ) -> Option<PageOutcome> {
        let user = *self.responder.users.get(&query.user_id)?;
        let world = &self.responder.world;
        let states = match arm {
            Arm::Replayed => &mut self.replayed,
            Arm::Logged => &mut self.logged,
        };
        let state = states
            .entry(user)
            .or_insert_with(|| UserState::new(world.params.seed, user));
        self.scratch.clear();
        let outcome = world.respond(
            user,
            state,
            &query.request_id,
            query.now,
            page,
            &mut self.scratch,
        );
        if arm == Arm::Replayed {
            for record in &self.scratch {
                let event = match record {
                    Record::Purchase(p) => Event::from(p),
                    Record::Impression(i) => match Event::flow_impression(i, catalog) {
                        Some(e) => e,
                        None => continue,
                    },
                    _ => continue,
                };
                self.pending.insert((event.time, self.arrivals), event);
                self.arrivals += 1;
            }
        }
        Some(outcome)
    }

    /// Purchases due by `now` (all of them with `None`), in time order.
    pub(super) fn due(&mut self, now: Option<Millis>) -> Vec<Event> {
        // Most steps find nothing due: answer those without touching the map.
        let first = self.pending.first_key_value().map(|((t, _), _)| *t);
        if first.is_none_or(|t| now.is_some_and(|now| t > now)) {
            return Vec::new();
        }
        let later = match now {
            Some(now) => self.pending.split_off(&(Millis(now.0 + 1), 0)),
            None => BTreeMap::new(),
        };
        std::mem::replace(&mut self.pending, later)
            .into_values()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{CatalogSpec, SimParams};

    fn responder() -> Responder {
        let simulation = Simulation {
            catalog: CatalogSpec {
                streamers: 40,
                goods_per_brand: 5,
                ..CatalogSpec::default()
            },
            params: SimParams::new(1, 10),
        };
        Responder::new(&simulation).unwrap()
    }

    fn click(id: &str, t: i64) -> Event {
        Event {
            event_id: id.into(),
            time: Millis(t),
            user_id: "u".into(),
            kind: crate::domain::EventKind::Click {
                item_id: "g".into(),
                request_id: None,
            },
        }
    }

    #[test]
    fn purchases_come_due_in_time_order_and_only_once() {
        let responder = responder();
        let mut users = ShardUsers::new(&responder);
        for (i, (id, t)) in [("c", 30), ("a", 10), ("b", 20), ("b2", 20)]
            .iter()
            .enumerate()
        {
            users.pending.insert((Millis(*t), i as u64), click(id, *t));
        }
        let ids = |events: Vec<Event>| events.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
        assert!(users.due(Some(Millis(9))).is_empty());
        assert_eq!(ids(users.due(Some(Millis(20)))), ["a", "b", "b2"]);
        assert!(users.due(Some(Millis(20))).is_empty());
        assert_eq!(ids(users.due(None)), ["c"]);
        assert!(users.due(None).is_empty());
    }

    #[test]
    fn known_users_answer_and_unknown_ones_do_not() {
        let responder = responder();
        let mut users = ShardUsers::new(&responder);
        let user = responder.world.users[0].id.clone();
        let query = |user_id: &str| RankQuery {
            request_id: "r1".into(),
            user_id: user_id.into(),
            scene: crate::domain::Scene::Recommend,
            slots: 1,
            candidates: Vec::new(),
            now: Millis(responder.world.start.0 + 3_600_000),
        };
        let goods = responder.world.goods[0].id.clone();
        let page = [(goods.as_str(), ItemKind::Goods)];
        let answered = users
            .respond(Arm::Replayed, &query(&user), &page, &Catalog::new())
            .unwrap();
        assert_eq!(answered.impressions, 1);
        assert_eq!(
            users.respond(Arm::Logged, &query("stranger"), &page, &Catalog::new()),
            None
        );
    }
}
