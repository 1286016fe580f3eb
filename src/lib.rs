//! fairflow: traffic allocation for live-stream e-commerce.
//!
//! Feed services call `Rank` over gRPC; the service ranks live streams and
//! goods for one user. Analysts replay traffic logs through the very same
//! engine offline.
//!
//! # Layout
//! In one-way layers: a module names only modules of its own layer or
//! below (`tests/architecture.rs` keeps it so).
//!
//! - Vocabulary: [`domain`]: ids and their rule, tiers and their
//!   thresholds, scenes, reason codes, time and its plausible range, amounts,
//!   and [`domain::Event`], the one shape of a user event.
//! - Pure parts, synchronous, no I/O, no clock; each owns its params:
//!   - [`catalog`]: streamers, streams and goods in memory (and where they
//!     load from), sale classification;
//!   - [`model`]: the ndarray scoring model and where it loads from;
//!   - [`allocate`]: filling a page under fairness quotas, the exposure
//!     controller, concentration measures;
//!   - [`chuanliu`]: the distribution-to-self-broadcast flow (affinities,
//!     paced budget, attribution, rewards);
//!   - [`engine`]: the rank pipeline (resolve, score, gate, flow, allocate,
//!     explain) over the parts above; everything that ranks goes through
//!     it, under an [`engine::EngineParams`].
//! - [`config`]: the TOML file, validated section by section into those
//!   params (the engine's `EngineParams` among them); nothing below it
//!   names it.
//! - Durability and log formats, never named by what is below:
//!   - [`wal`]: the write-ahead log (checksummed records, group commit,
//!     torn-tail recovery, `events check`/`repair`);
//!   - [`events`]: durable, idempotent intake and the [`events::EventStore`]
//!     seam the flow is fed through;
//!   - [`snapshot`]: the flow's snapshots;
//!   - [`traffic`]: the traffic-log format (JSONL and Parquet), its reader,
//!     writer and the server's sink.
//! - [`cluster`]: the fleet's adapters, NATS JetStream (the second event
//!   store) and Redis (the flow's shared budgets).
//! - Edges, where tokio, tonic, files, clocks and seeds live:
//!   - [`server`]: the gRPC services, conversion, status mapping, codec,
//!     health, reflection, metrics;
//!   - [`replay`]: offline replay through the same engine, reports, charts,
//!     off-policy estimates;
//!   - [`sim`]: the synthetic ecosystem and `fairflow evaluate`;
//!   - [`train`]: fitting the scoring model on a traffic log;
//!   - [`load`]: a load generator for a running server (tokio, as a client);
//!   - the `fairflow` binary (`src/bin/fairflow/`): arguments and printing;
//!   - `fuzz`: the fuzz targets' properties;
//!   - [`proto`]: the generated wire types.
//!
//! `ARCHITECTURE.md` walks the same folders with the reasons behind them.

pub mod allocate;
pub mod catalog;
pub mod chuanliu;
pub mod cluster;
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
