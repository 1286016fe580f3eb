//! Running as one of several replicas (docs/scale-out.md): the adapters to
//! the distributed services the fleet shares. [`stream`] is the event
//! store every replica reads (NATS JetStream); [`budget`] counts the flow's
//! budgets and [`caps`] its per-user frequency caps for the whole fleet
//! (Redis, through [`store`]). Everything here is I/O at
//! the edge; the flow and the engine do not know which store feeds them.

pub mod budget;
pub mod caps;
pub mod store;
pub mod stream;

pub use budget::Budgets;
pub use caps::Caps;
pub use store::{Connection, StoreError};
pub use stream::{Stream, StreamError};

use crate::config::ClusterConfig;

/// This replica's name: the configured one, else host name and process id.
pub fn replica_id(config: &ClusterConfig) -> String {
    if !config.replica_id.is_empty() {
        return config.replica_id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "replica".into());
    format!("{host}-{}", std::process::id())
}
