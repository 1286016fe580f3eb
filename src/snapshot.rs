//! Snapshots of the flow state, so a restart loads one file and replays only
//! the log after it, and the log can be truncated.
//!
//! A snapshot is `snapshot-<seq, 20 digits>.bin` in the event log's
//! directory: the 8-byte magic `FFSNAP05`, the payload's length (u64 LE) and
//! CRC-32 (u32 LE), then the payload in postcard (a documented, compact serde
//! format). `seq` is the last log record it includes. It is written to a
//! temporary file, synced, renamed into place and the directory synced, so a
//! crash leaves either the old snapshot or the new one, never half of one;
//! older snapshots are deleted after. Older versions are still read:
//! `FFSNAP04` (budgets without the demand their pacing learns, see
//! [`v4`]), `FFSNAP03` (nor affinities with the user's taste,
//! [`Layout::V3`]),
//! `FFSNAP02` (nor the seen time, [`Layout::V2`]) and `FFSNAP01`, from
//! before the flow's holdout (see [`v1`]).

use crate::chuanliu::{FlowSnapshot, Layout, Secs};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FFSNAP05";
const MAGIC_V4: &[u8; 8] = b"FFSNAP04";
const MAGIC_V3: &[u8; 8] = b"FFSNAP03";
const MAGIC_V2: &[u8; 8] = b"FFSNAP02";
const MAGIC_V1: &[u8; 8] = b"FFSNAP01";

/// The payload of `FFSNAP02` to `FFSNAP04` snapshots: budgets paced
/// without learned demand. Read into today's [`Snapshot`] with nothing
/// learned, so the pacing starts from the configured profile.
mod v4 {
    use crate::chuanliu::{Enrollment, FlowCounts, HoldoutState, Reward, Secs};
    use crate::domain::Millis;
    use compact_str::CompactString;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Snapshot {
        pub seq: u64,
        pub flow: Flow,
        pub event_ids: Vec<(CompactString, Secs)>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Flow {
        pub brands: Vec<CompactString>,
        pub streamers: Vec<CompactString>,
        pub users: Vec<serde_bytes::ByteBuf>,
        pub registry: Vec<BrandSnapshot>,
        pub budget: PacerState,
        pub rewards: Vec<(CompactString, Reward)>,
        pub totals: FlowCounts,
        pub holdout: Vec<(u32, HoldoutState)>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct BrandSnapshot {
        pub brand: u32,
        pub enrollment: Enrollment,
        pub daily_impressions: Option<u64>,
        pub pacer: PacerState,
        pub counts: FlowCounts,
    }

    #[derive(Default, Serialize, Deserialize)]
    pub struct PacerState {
        pub day: i64,
        pub spent: u64,
        pub hour: i64,
        pub spent_in_hour: u64,
        pub latest: Millis,
    }

    impl From<PacerState> for crate::chuanliu::PacerState {
        fn from(p: PacerState) -> Self {
            crate::chuanliu::PacerState {
                day: p.day,
                spent: p.spent,
                hour: p.hour,
                spent_in_hour: p.spent_in_hour,
                latest: p.latest,
                demand: Default::default(),
            }
        }
    }

    pub fn registry(brands: Vec<BrandSnapshot>) -> Vec<crate::chuanliu::BrandSnapshot> {
        brands
            .into_iter()
            .map(|b| crate::chuanliu::BrandSnapshot {
                brand: b.brand,
                enrollment: b.enrollment,
                daily_impressions: b.daily_impressions,
                pacer: b.pacer.into(),
                counts: b.counts,
            })
            .collect()
    }
}

impl v4::Snapshot {
    fn upgrade(self, layout: Layout) -> Snapshot {
        let f = self.flow;
        Snapshot {
            seq: self.seq,
            flow: FlowSnapshot {
                brands: f.brands,
                streamers: f.streamers,
                users: f.users,
                registry: v4::registry(f.registry),
                budget: f.budget.into(),
                rewards: f.rewards,
                totals: f.totals,
                holdout: f.holdout,
                layout,
            },
            event_ids: self.event_ids,
        }
    }
}

/// The payload of an `FFSNAP01` snapshot: the flow without its holdout,
/// affinities in [`Layout::V1`]. Read into today's [`Snapshot`] with every
/// affinity treated (outside the holdout's arms) and the holdout empty, so
/// an upgrade starts from it instead of refusing a log whose start is gone.
mod v1 {
    use super::v4::{BrandSnapshot, PacerState};
    use crate::chuanliu::{FlowCounts, Reward, Secs};
    use compact_str::CompactString;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Snapshot {
        pub seq: u64,
        pub flow: Flow,
        pub event_ids: Vec<(CompactString, Secs)>,
    }

    #[derive(Deserialize)]
    pub struct Flow {
        pub brands: Vec<CompactString>,
        pub streamers: Vec<CompactString>,
        pub users: Vec<serde_bytes::ByteBuf>,
        pub registry: Vec<BrandSnapshot>,
        pub budget: PacerState,
        pub rewards: Vec<(CompactString, Reward)>,
        pub totals: FlowCounts,
    }
}

impl From<v1::Snapshot> for Snapshot {
    fn from(old: v1::Snapshot) -> Snapshot {
        let f = old.flow;
        v4::Snapshot {
            seq: old.seq,
            flow: v4::Flow {
                brands: f.brands,
                streamers: f.streamers,
                users: f.users,
                registry: f.registry,
                budget: f.budget,
                rewards: f.rewards,
                totals: f.totals,
                holdout: Vec::new(),
            },
            event_ids: old.event_ids,
        }
        .upgrade(Layout::V1)
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last log record applied to this state.
    pub seq: u64,
    pub flow: FlowSnapshot,
    /// Event ids remembered for deduplication, with their events' times.
    pub event_ids: Vec<(CompactString, Secs)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a usable snapshot: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    crate::wal::numbered_files(dir, "snapshot-", ".bin").map_err(io_err(dir))
}

/// Writes `snapshot` into `dir` and deletes the older ones; returns the
/// file and its size.
pub fn write(dir: &Path, snapshot: &Snapshot) -> Result<(PathBuf, u64), SnapshotError> {
    let payload = postcard::to_stdvec(snapshot).map_err(|e| SnapshotError::Damaged {
        path: dir.to_path_buf(),
        reason: format!("cannot encode: {e}"),
    })?;
    let path = dir.join(format!("snapshot-{:020}.bin", snapshot.seq));
    let tmp = dir.join(format!("snapshot-{:020}.tmp", snapshot.seq));
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut header = Vec::with_capacity(20);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    file.write_all(&header).map_err(io_err(&tmp))?;
    file.write_all(&payload).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    for (seq, old) in snapshots(dir)? {
        if seq < snapshot.seq {
            std::fs::remove_file(&old).map_err(io_err(&old))?;
        }
    }
    Ok((path, (header.len() + payload.len()) as u64))
}

/// Reads one snapshot file.
pub fn read(path: &Path) -> Result<Snapshot, SnapshotError> {
    let damaged = |reason: String| SnapshotError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    let magic = bytes.get(..8).unwrap_or_default();
    let known = [MAGIC, MAGIC_V4, MAGIC_V3, MAGIC_V2, MAGIC_V1];
    if bytes.len() < 20 || !known.iter().any(|m| &m[..] == magic) {
        return Err(damaged("no snapshot header".into()));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let payload = &bytes[20..];
    if payload.len() != len {
        return Err(damaged(format!(
            "payload is {} bytes, header says {len}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != crc {
        return Err(damaged("checksum mismatch".into()));
    }
    let decoded = match magic {
        m if m == MAGIC => postcard::from_bytes::<Snapshot>(payload),
        m if m == MAGIC_V1 => postcard::from_bytes::<v1::Snapshot>(payload).map(Snapshot::from),
        m => postcard::from_bytes::<v4::Snapshot>(payload).map(|old| {
            // The payload's shape is the same from v2 to v4; only the
            // entries' layout inside the affinity blobs differs.
            old.upgrade(match m {
                m if m == MAGIC_V2 => Layout::V2,
                m if m == MAGIC_V3 => Layout::V3,
                _ => Layout::V4,
            })
        }),
    };
    decoded.map_err(|e| damaged(format!("cannot decode: {e}")))
}

/// The newest snapshot in `dir`, if any. A damaged newest snapshot is an
/// error, not a reason to fall back: the log before it may be gone.
pub fn latest(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    newest_file(dir)?.map(|path| read(&path)).transpose()
}

/// The newest snapshot file in `dir`, if any.
pub fn newest_file(dir: &Path) -> Result<Option<PathBuf>, SnapshotError> {
    Ok(snapshots(dir)?.pop().map(|(_, path)| path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Snapshot {
        Snapshot {
            seq,
            event_ids: vec![("e1".into(), Secs(5))],
            ..Snapshot::default()
        }
    }

    /// Writes `payload` as snapshot `seq` of an older version.
    fn write_as(dir: &Path, seq: u64, magic: &[u8; 8], payload: &impl Serialize) {
        let payload = postcard::to_stdvec(payload).unwrap();
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        std::fs::write(dir.join(format!("snapshot-{seq:020}.bin")), bytes).unwrap();
    }

    #[test]
    fn the_demand_a_budget_learned_is_kept() {
        let mut demand = crate::chuanliu::Demand::default();
        demand.note(9);
        demand.end_day(3.0);
        let mut snapshot = sample(6);
        snapshot.flow.budget.spent = 40;
        snapshot.flow.budget.demand = demand;
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &snapshot).unwrap();
        let read = latest(dir.path()).unwrap().unwrap();
        assert_eq!(read.flow.budget.demand.learned()[9], 1.0);
        assert_eq!(read, snapshot);
    }

    #[test]
    fn a_snapshot_from_before_learned_demand_keeps_its_budgets_and_learns_afresh() {
        let mut old = v4::Snapshot {
            seq: 5,
            flow: v4::Flow {
                brands: vec!["b".into()],
                streamers: Vec::new(),
                users: Vec::new(),
                registry: vec![v4::BrandSnapshot {
                    brand: 0,
                    enrollment: crate::chuanliu::Enrollment::Enrolled,
                    daily_impressions: Some(70),
                    pacer: v4::PacerState {
                        spent: 7,
                        ..v4::PacerState::default()
                    },
                    counts: Default::default(),
                }],
                budget: v4::PacerState::default(),
                rewards: Vec::new(),
                totals: Default::default(),
                holdout: Vec::new(),
            },
            event_ids: vec![("e1".into(), Secs(5))],
        };
        old.flow.budget.spent = 40;
        old.flow.budget.day = 3;
        let dir = tempfile::tempdir().unwrap();
        write_as(dir.path(), 5, MAGIC_V4, &old);
        let read = latest(dir.path()).unwrap().unwrap();
        assert_eq!((read.seq, read.flow.layout), (5, Layout::V4));
        assert_eq!((read.flow.budget.day, read.flow.budget.spent), (3, 40));
        assert_eq!(read.flow.budget.demand, Default::default());
        let brand = &read.flow.registry[0];
        assert_eq!((brand.daily_impressions, brand.pacer.spent), (Some(70), 7));
        assert_eq!(read.event_ids, old.event_ids);
    }

    #[test]
    fn the_newest_snapshot_is_read_back_and_older_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest(dir.path()).unwrap(), None);
        write(dir.path(), &sample(3)).unwrap();
        write(dir.path(), &sample(9)).unwrap();
        assert_eq!(latest(dir.path()).unwrap(), Some(sample(9)));
        assert_eq!(snapshots(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_snapshot_from_before_seen_impressions_reads_its_affinities_in_their_layout() {
        // One user "u", one held-out entry in the 39-byte layout.
        let mut blob = vec![1, 0, b'u', 1, 0];
        for word in [0u32, 0, u32::MAX, 1f32.to_bits(), 100, 150, 150] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.extend_from_slice(&1u16.to_le_bytes());
        blob.push(1);
        blob.extend_from_slice(&[0; 8]);
        let old = v4::Snapshot {
            seq: 4,
            flow: v4::Flow {
                brands: vec!["b".into()],
                streamers: vec!["s".into()],
                users: vec![serde_bytes::ByteBuf::from(blob)],
                registry: Vec::new(),
                budget: v4::PacerState::default(),
                rewards: Vec::new(),
                totals: Default::default(),
                holdout: Vec::new(),
            },
            event_ids: Vec::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        write_as(dir.path(), 4, MAGIC_V2, &old);

        let read = latest(dir.path()).unwrap().unwrap();
        assert_eq!(read.flow.layout, Layout::V2);
        let flow = crate::chuanliu::Flow::restore(read.flow).unwrap();
        let a = flow.affinities_of("u")[0].1;
        assert_eq!((a.shown, a.seen, a.holdout), (Secs(150), Secs(0), true));
    }

    #[test]
    fn a_snapshot_from_before_the_holdout_is_read_with_every_affinity_treated() {
        use crate::chuanliu::{Flow, FlowCounts};
        use v4::PacerState;
        // The v1 payload's shape, as that build wrote it.
        #[derive(Serialize)]
        struct OldFlow {
            brands: Vec<CompactString>,
            streamers: Vec<CompactString>,
            users: Vec<serde_bytes::ByteBuf>,
            registry: Vec<v4::BrandSnapshot>,
            budget: PacerState,
            rewards: Vec<(CompactString, crate::chuanliu::Reward)>,
            totals: FlowCounts,
        }
        // User "u", one 30-byte entry: brand 0, source 0, weight 1, bought at 100 s.
        let mut blob = vec![1, 0, b'u', 1, 0];
        for word in [0u32, 0, u32::MAX, 1f32.to_bits(), 100, 0, 0] {
            blob.extend_from_slice(&word.to_le_bytes());
        }
        blob.extend_from_slice(&0u16.to_le_bytes());
        let totals = FlowCounts {
            impressions: 5,
            conversions: 1,
            gmv_fen: 990,
        };
        let old = (
            12u64,
            OldFlow {
                brands: vec!["b".into()],
                streamers: vec!["s".into()],
                users: vec![serde_bytes::ByteBuf::from(blob)],
                registry: Vec::new(),
                budget: PacerState::default(),
                rewards: Vec::new(),
                totals,
            },
            vec![(CompactString::from("e1"), Secs(5))],
        );
        let dir = tempfile::tempdir().unwrap();
        write_as(dir.path(), 12, MAGIC_V1, &old);

        let read = latest(dir.path()).unwrap().unwrap();
        assert_eq!((read.seq, read.flow.layout), (12, Layout::V1));
        let flow = Flow::restore(read.flow).unwrap();
        assert_eq!(flow.counts(), totals);
        let affinities = flow.affinities_of("u");
        assert_eq!(affinities.len(), 1);
        let (brand, a, sources) = &affinities[0];
        assert_eq!(
            (brand.as_str(), sources.clone()),
            ("b", vec!["s".to_string()])
        );
        assert!(!a.holdout && a.updated == Secs(100));
        // Written again, it is a snapshot of today's version that reads
        // back the same.
        let again = Snapshot {
            seq: 13,
            flow: flow.snapshot(),
            event_ids: read.event_ids,
        };
        write(dir.path(), &again).unwrap();
        assert_eq!(latest(dir.path()).unwrap(), Some(again));
    }

    #[test]
    fn a_damaged_snapshot_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = write(dir.path(), &sample(4)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = latest(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains("snapshot-"),
            "{err}"
        );
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(
            latest(dir.path())
                .unwrap_err()
                .to_string()
                .contains("header says")
        );
    }
}
