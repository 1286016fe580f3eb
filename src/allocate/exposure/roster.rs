//! The streamers the exposure state has met, found by id or, where the
//! caller interned one, by a word (the catalog record's address).
//!
//! The read meets every candidate's streamer on every page. Hashing each
//! id into the map was a third of a controlled page's cost; a word is
//! looked up with one multiply into a table the roster keeps, and the entry
//! it names is checked against the id, so a word that has come to mean
//! another streamer (a record freed and its address reused) is only a miss.
//! Streamers met as candidates but never served get an entry too, with no
//! tier, so that a word always names an entry: a word that named nothing
//! could not be checked, and would be hashed again on every page.

use super::super::numbering::WordTable;
use crate::domain::Tier;
use compact_str::CompactString;
use foldhash::HashMap;

/// One streamer's recent exposure, stored scaled to the window's origin:
/// at page `p` it is `scaled * window.factor(p)`, so reading it costs a
/// multiply, not an `exp` per candidate.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub(super) id: CompactString,
    pub(super) scaled: f64,
    /// The tier of the last slot it was served in; `None`: never served
    /// (met as a candidate only), so no tier counts it.
    pub(super) tier: Option<Tier>,
    /// The streamer's number on the page of read `read`, the last
    /// `ExposureState::control` that met it: the read's probe numbers the
    /// page's streamers for the per-streamer cap, so their ids are not
    /// hashed a second time.
    pub(super) number: u32,
    pub(super) read: u64,
}

impl Tracked {
    fn met(id: &str) -> Tracked {
        Tracked {
            id: id.into(),
            scaled: 0.0,
            tier: None,
            number: 0,
            read: 0,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct Roster {
    entries: Vec<Tracked>,
    by_id: HashMap<CompactString, u32>,
    /// Words to entries: a cache, one long page of a [`WordTable`], started
    /// afresh when it fills or the entries move.
    by_word: WordTable,
    /// Words set since `by_word` was started, and how many it has room for.
    words: usize,
    room: usize,
}

/// The fewest words a started cache has room for.
const MIN_WORDS: usize = 1024;

impl Roster {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Tracked> {
        self.entries.iter()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Tracked> {
        self.entries.iter_mut()
    }

    /// The streamer `id`, through `word` when the caller interned one; an
    /// entry is made for one not met before.
    pub(super) fn meet(&mut self, word: Option<usize>, id: &str) -> &mut Tracked {
        let Some(word) = word else {
            return self.entry(id);
        };
        let at = match self.by_word.get(word) {
            Some(at) if same_id(self.entries[at as usize].id.as_bytes(), id.as_bytes()) => at,
            _ => {
                let at = self.at(id);
                self.remember(word, at);
                at
            }
        };
        &mut self.entries[at as usize]
    }

    /// The streamer `id`; an entry is made for one not met before.
    pub(super) fn entry(&mut self, id: &str) -> &mut Tracked {
        let at = self.at(id);
        &mut self.entries[at as usize]
    }

    fn at(&mut self, id: &str) -> u32 {
        if let Some(&at) = self.by_id.get(id) {
            return at;
        }
        let at = self.entries.len() as u32;
        let tracked = Tracked::met(id);
        self.by_id.insert(tracked.id.clone(), at);
        self.entries.push(tracked);
        at
    }

    /// Keeps the entries `keep` says to; the rest are forgotten.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Tracked) -> bool) {
        // Where each entry moves to (`u32::MAX`: forgotten).
        let mut moved = Vec::with_capacity(self.entries.len());
        let mut kept = 0;
        for t in &self.entries {
            if keep(t) {
                moved.push(kept);
                kept += 1;
            } else {
                moved.push(u32::MAX);
            }
        }
        let mut at = 0;
        self.entries.retain(|_| {
            at += 1;
            moved[at - 1] != u32::MAX
        });
        self.by_id.retain(|_, at| {
            *at = moved[*at as usize];
            *at != u32::MAX
        });
        // The kept entries moved: every word is looked up afresh.
        self.restart(self.room);
    }

    fn remember(&mut self, word: usize, at: u32) {
        if self.words >= self.room {
            // Full of words, some of them stale (records the catalog has
            // since dropped): start again. A live word names an entry, one
            // record each, so room for half as many again as there are
            // entries leaves room for the stale ones.
            self.restart(self.entries.len() + self.entries.len() / 2);
        }
        self.by_word.set(word, at);
        self.words += 1;
    }

    /// Forgets every word (each names an entry, so entries only move
    /// after this), with room for `room` from now on.
    fn restart(&mut self, room: usize) {
        self.room = room.max(MIN_WORDS);
        self.by_word.start(self.room);
        self.words = 0;
    }
}

/// Whether two ids are equal: as two overlapping words, which together
/// cover every byte, from 4 to 16 bytes (most ids), where a call to
/// `memcmp` cost more than the rest of the lookup.
fn same_id(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let u32_at = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    let u64_at = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    match n {
        4..8 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_compared_whole() {
        for (a, b) in [
            ("", ""),
            ("s1", "s1"),
            ("s00012", "s00012"),
            ("streamer", "streamer"),
            ("streamer-0001", "streamer-0001"),
            ("streamer-0000001", "streamer-0000001"),
            ("streamer-00000001", "streamer-00000001"),
        ] {
            assert!(same_id(a.as_bytes(), b.as_bytes()), "{a}");
        }
        for (a, b) in [
            ("s1", "s2"),
            ("s1", "s12"),
            ("s00012", "s00013"),
            ("s00012", "t00012"),
            ("s0a012", "s00012"),
            ("streamer", "streamex"),
            ("xtreamer-0001", "streamer-0001"),
            ("streamer-0001", "streamer-0002"),
            ("streamer-000x001", "streamer-0000001"),
            ("streamer-00000001", "streamer-00000002"),
        ] {
            assert!(!same_id(a.as_bytes(), b.as_bytes()), "{a} {b}");
        }
    }

    /// A word that has come to mean another streamer, or one whose entry
    /// moved when others were forgotten, finds the streamer its id names.
    #[test]
    fn a_word_is_checked_against_the_id() {
        let mut r = Roster::default();
        for id in ["a", "b", "c"] {
            r.entry(id).scaled = 1.0;
        }
        assert_eq!(r.meet(Some(7), "b").id, "b");
        assert_eq!(r.meet(Some(7), "c").id, "c");
        assert_eq!(r.meet(Some(7), "d").tier, None, "met now");
        assert_eq!(r.len(), 4);
        r.retain(|t| t.id != "a");
        assert_eq!(r.meet(Some(7), "c").id, "c");
        assert_eq!(r.meet(Some(9), "b").id, "b");
        assert_eq!(r.entry("d").id, "d");
        assert_eq!(r.len(), 3);
        assert_eq!(r.by_id.len(), 3);
    }

    /// More words than the cache has room for: it starts again and every
    /// streamer is still found, through a word or its id.
    #[test]
    fn a_full_cache_starts_again() {
        let mut r = Roster::default();
        let ids: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
        for word in 0..5 * MIN_WORDS {
            let id = &ids[word % ids.len()];
            assert_eq!(r.meet(Some(word), id).id, id.as_str());
        }
        assert!(r.words <= r.room);
        assert_eq!(r.len(), ids.len());
    }
}
