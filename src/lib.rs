//! fairflow: traffic allocation for live-stream e-commerce.
//!
//! Feed services call `Rank` over gRPC; the service ranks live streams and
//! goods for one user. Analysts replay traffic logs through the very same
//! engine offline.
//!
//! # Layout
//! - [`domain`]: the shared vocabulary (tiers, scenes, reason codes, time).
//! - [`config`]: the TOML config, parsed and validated into [`config::Config`].
//! - [`catalog`]: streamers, streams and goods in memory, with JSONL files.
//! - [`model`]: the ndarray scoring model (pCTR and pCVR heads).
//! - [`allocate`]: filling a page under fairness quotas (tier floors with
//!   FA*IR or proportional tables, per-streamer caps); pure.
//! - [`engine`]: the rank pipeline, pure and synchronous: resolve, score,
//!   gate, allocate, explain. Everything that ranks goes through it.
//! - [`events`]: user events (purchases, impressions, clicks) and their
//!   durable, idempotent intake.
//! - [`sim`]: the synthetic ecosystem: catalog, users, traffic and the
//!   ground-truth response model (the demo catalog comes from it).
//! - [`traffic`]: the traffic-log format (JSONL) and its reader and writer.
//! - [`train`]: fitting the scoring model on a traffic log.
//! - [`server`]: the gRPC layer (tonic): wire <-> domain conversion, status
//!   mapping, health, reflection. The only module that knows about tokio.
//! - [`proto`]: the generated wire types.
//! - [`load`]: a load generator for a running server (`fairflow load`).
//! - [`wal`]: the write-ahead log (checksummed records, group commit, torn
//!   tail recovery) that makes acknowledged events durable.
//!
//! `ARCHITECTURE.md` walks the same folders with the reasons behind them.

pub mod allocate;
pub mod catalog;
pub mod chuanliu;
pub mod config;
pub mod domain;
pub mod engine;
pub mod events;
#[doc(hidden)]
pub mod fuzz;
pub mod load;
pub mod model;
pub mod proto;
pub mod replay;
pub mod server;
pub mod sim;
pub mod snapshot;
pub mod traffic;
pub mod train;
pub mod wal;
