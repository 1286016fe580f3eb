//! The synthetic live-commerce ecosystem: a catalog ([`catalog`]), a world of
//! users and live schedules around it ([`world`]), the ground-truth response
//! model ([`response`], usable against any ranking), and the loop that turns
//! them into a traffic log ([`run`]). Everything is deterministic by seed.
//! docs/simulator.md documents the model and its calibration.

pub mod catalog;
pub mod params;
pub mod pool;
pub mod response;
pub mod run;
pub mod world;

pub use catalog::{CatalogSpec, generate};
pub use params::{Segment, SimParams};
pub use pool::ItemPool;
pub use response::{PageOutcome, UserState};
pub use run::{Evaluation, SimSummary, evaluate, gini, simulate, top_share};
pub use world::World;
