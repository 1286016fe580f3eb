//! The synthetic live-commerce ecosystem: a catalog ([`catalog`]), a world of
//! users and live schedules around it ([`world`]), the ground-truth response
//! model ([`response`], usable against any ranking), and the loop that turns
//! them into a traffic log ([`run`]); interactive evaluation of the engine
//! ([`evaluate`]) and the hindsight optimum it is measured against
//! ([`hindsight`]); a head-heavy allocation input for the controller alone
//! ([`powerlaw`]). Everything is deterministic by seed.
//! docs/simulator.md documents the model and its calibration.

pub mod catalog;
pub mod evaluate;
pub mod frontier;
pub mod hindsight;
pub mod params;
pub mod pool;
pub mod powerlaw;
pub mod report;
pub mod response;
pub mod run;
pub mod world;

pub use catalog::{CatalogSpec, generate};
pub use evaluate::{
    EvalOptions, Evaluation, Oracle, OracleKnows, Served, evaluate, gini, top_share,
};
pub use params::{Segment, SimParams};
pub use pool::ItemPool;
pub use response::{PageOutcome, UserState};
pub use run::{SimSummary, simulate};
pub use world::{Simulation, World};
