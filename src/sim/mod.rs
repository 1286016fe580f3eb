//! The synthetic live-commerce ecosystem. Today: the catalog generator that
//! produced the shipped demo catalog. Users, traffic and the ground-truth
//! response model build on it.

pub mod catalog;
pub mod pool;

pub use catalog::{CatalogSpec, generate};
pub use pool::ItemPool;
