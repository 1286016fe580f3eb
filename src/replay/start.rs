//! Where a replay's state starts: empty, or a server's snapshot (the file
//! `fairflow serve` writes into its events directory), so a log taken after
//! the snapshot replays on the flow the server had then: affinities,
//! enrolled brands, the day's budget spent, influencers' rewards.
//!
//! Only the flow is in a snapshot; the exposure controller starts empty (a
//! server's starts empty on every restart too).

use crate::chuanliu::{Flow, FlowSnapshot};
use crate::snapshot::{self, SnapshotError};
use std::path::{Path, PathBuf};

/// A checked start state, copied into every shard.
#[derive(Debug, Clone)]
pub struct StartState {
    /// The snapshot file read.
    pub path: PathBuf,
    /// The last event-log record the snapshot covers.
    pub seq: u64,
    flow: FlowSnapshot,
}

impl StartState {
    /// Reads a snapshot file, or the newest one in a server's events
    /// directory, and checks that it restores.
    pub fn read(path: &Path) -> Result<StartState, SnapshotError> {
        let damaged = |reason: String| SnapshotError::Damaged {
            path: path.to_path_buf(),
            reason,
        };
        let (file, snapshot) = if path.is_dir() {
            let file = snapshot::newest_file(path)?
                .ok_or_else(|| damaged("the directory holds no snapshot-*.bin file".into()))?;
            let snapshot = snapshot::read(&file)?;
            (file, snapshot)
        } else {
            (path.to_path_buf(), snapshot::read(path)?)
        };
        Flow::restore(snapshot.flow.clone())
            .map_err(|e| damaged(format!("affinities do not decode: {e}")))?;
        Ok(StartState {
            path: file,
            seq: snapshot.seq,
            flow: snapshot.flow,
        })
    }

    /// A fresh copy of the flow, for one shard.
    pub fn flow(&self) -> Flow {
        Flow::restore(self.flow.clone()).expect("restored once when read")
    }
}
