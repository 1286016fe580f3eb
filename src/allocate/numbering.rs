//! Numbering a page's streamers densely, for the per-streamer cap.
//!
//! By a word where the caller interned one (the catalog record's address),
//! else by the id's bytes. Words go through a [`WordTable`], which a caller
//! can keep from page to page (the exposure state's roster does): starting
//! a page clears nothing.

use foldhash::HashMap;

/// Words met on one page and their numbers: open addressing over a table
/// at most half full, each entry stamped with the page it was written
/// for, so that starting a page is a counter step rather than a clear.
/// Also the engine's duplicate check: numbered by candidate index, a
/// repeated word answers with the index it was first met at; and, started
/// once and kept, the exposure state's cache from words to its entries.
#[derive(Debug, Default, Clone)]
pub struct WordTable {
    slots: Vec<WordSlot>,
    /// `64 - log2(slots.len())`: a word's home is the top bits of its hash.
    shift: u32,
    page: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct WordSlot {
    page: u32,
    number: u32,
    word: usize,
}

impl WordTable {
    /// A table started for one page of at most `n` words.
    pub fn for_page(n: usize) -> WordTable {
        let mut table = WordTable::default();
        table.start(n);
        table
    }

    /// Starts a page of at most `n` words: every earlier entry reads as
    /// empty.
    pub fn start(&mut self, n: usize) {
        let len = (2 * n).next_power_of_two().max(16);
        // Entries are all cleared when the stamps run out, once in 2^32 pages.
        if self.slots.len() < len || self.page == u32::MAX {
            self.slots = vec![WordSlot::default(); len.max(self.slots.len())];
            self.shift = 64 - self.slots.len().trailing_zeros();
            self.page = 0;
        }
        self.page += 1;
    }

    /// `word`'s number on this page; `fresh` when it had none, which it
    /// then has. Only on a started page, and at most `n` (of
    /// [`WordTable::start`]) words a page, so a free entry is always found.
    pub fn number(&mut self, word: usize, fresh: u32) -> u32 {
        let (page, at) = (self.page, self.find(word));
        let slot = &mut self.slots[at];
        if slot.page != page {
            *slot = WordSlot {
                page,
                word,
                number: fresh,
            };
        }
        slot.number
    }

    /// `word`'s number on this page, if it has one (any table).
    pub fn get(&self, word: usize) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let slot = &self.slots[self.find(word)];
        (slot.page == self.page).then_some(slot.number)
    }

    /// Gives `word` the number `number` on this page, whether it had one or
    /// not; within the same bound as [`WordTable::number`].
    pub fn set(&mut self, word: usize, number: u32) {
        let page = self.page;
        let at = self.find(word);
        self.slots[at] = WordSlot { page, word, number };
    }

    /// Where `word` is on this page, or the free entry it would take.
    fn find(&self, word: usize) -> usize {
        // Fibonacci hashing: addresses differ in their middle bits, which the
        // multiply carries to the top.
        let mask = self.slots.len() - 1;
        let mut at = ((word as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        loop {
            let slot = &self.slots[at];
            if slot.page != self.page || slot.word == word {
                return at;
            }
            at = (at + 1) & mask;
        }
    }
}

/// Numbers streamers densely, in the order they are first met: by a word
/// where the caller interned one, else by the id's bytes; a streamer
/// without an id is its own.
pub(super) struct Numbering<'a> {
    words: WordTable,
    /// Whether `words` was started: most pages number by one key alone, so
    /// each table is set up on first use.
    words_started: bool,
    ids: HashMap<&'a str, u32>,
    next: u32,
    /// The most streamers this page numbers.
    room: usize,
}

impl<'a> Numbering<'a> {
    pub(super) fn new(room: usize) -> Numbering<'a> {
        Numbering {
            words: WordTable::default(),
            words_started: false,
            ids: HashMap::default(),
            next: 0,
            room,
        }
    }

    /// At most `room` (of [`Numbering::new`]) calls a page.
    pub(super) fn number(&mut self, word: Option<usize>, id: Option<&'a str>) -> u32 {
        let fresh = self.next;
        let number = match (word, id) {
            (Some(word), _) => {
                if !self.words_started {
                    self.words.start(self.room);
                    self.words_started = true;
                }
                self.words.number(word, fresh)
            }
            (None, Some(id)) => {
                if self.ids.capacity() == 0 {
                    self.ids.reserve(self.room);
                }
                *self.ids.entry(id).or_insert(fresh)
            }
            (None, None) => fresh,
        };
        if number == fresh {
            self.next += 1;
        }
        number
    }

    pub(super) fn finish(self, of: Vec<u32>) -> super::Streamers {
        super::Streamers {
            of,
            count: self.next as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// One table kept over many pages numbers each page's words as a
        /// fresh map would: first met, first numbered; nothing carried over
        /// from earlier pages, whatever their sizes.
        #[test]
        fn a_kept_table_numbers_each_page_afresh(
            pages in proptest::collection::vec(
                proptest::collection::vec(0usize..40, 0..60), 1..8),
        ) {
            let mut table = WordTable::default();
            for page in &pages {
                table.start(page.len());
                let mut next = 0;
                let got: Vec<u32> = page
                    .iter()
                    .map(|&w| {
                        let number = table.number(0x7f00_0000_0000 + w * 152, next);
                        if number == next {
                            next += 1;
                        }
                        number
                    })
                    .collect();
                let mut seen: Vec<usize> = Vec::new();
                let want: Vec<u32> = page
                    .iter()
                    .map(|w| match seen.iter().position(|s| s == w) {
                        Some(n) => n as u32,
                        None => {
                            seen.push(*w);
                            seen.len() as u32 - 1
                        }
                    })
                    .collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(next as usize, seen.len());
            }
        }
    }

    /// `set` overwrites, `get` reads this page's entries only.
    #[test]
    fn set_and_get_see_this_page_alone() {
        let mut table = WordTable::default();
        assert_eq!(table.get(3), None, "never started");
        table.start(4);
        table.set(3, 7);
        table.set(19, 8);
        table.set(3, 9);
        assert_eq!(
            (table.get(3), table.get(19), table.get(4)),
            (Some(9), Some(8), None)
        );
        assert_eq!(table.number(19, 0), 8);
        table.start(4);
        assert_eq!(table.get(3), None, "a new page");
    }

    /// When the page stamps run out the entries are cleared, so an entry of
    /// a page long gone does not read as met when its stamp comes round.
    #[test]
    fn stamps_running_out_clear_the_table() {
        let mut table = WordTable::default();
        table.start(4);
        assert_eq!(table.number(8, 0), 0);
        assert_eq!(table.number(8, 1), 0, "met on this page");
        table.page = u32::MAX;
        table.start(4);
        assert_eq!(table.page, 1, "the first page's stamp again");
        assert_eq!(table.number(8, 5), 5, "not met on this page");
    }
}
