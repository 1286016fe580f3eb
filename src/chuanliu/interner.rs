//! Dense ids for the brand and streamer names the flow's tables key on.

use compact_str::CompactString;
use foldhash::HashMap;
use parking_lot::RwLock;

/// Dense ids for strings that recur in millions of entries.
#[derive(Default)]
pub(super) struct Interner {
    names: RwLock<(HashMap<CompactString, u32>, Vec<CompactString>)>,
}

impl Interner {
    pub(super) fn id(&self, name: &str) -> u32 {
        if let Some(&id) = self.names.read().0.get(name) {
            return id;
        }
        let mut names = self.names.write();
        let (ids, list) = &mut *names;
        *ids.entry(CompactString::from(name)).or_insert_with(|| {
            list.push(CompactString::from(name));
            (list.len() - 1) as u32
        })
    }

    pub(super) fn get(&self, name: &str) -> Option<u32> {
        self.names.read().0.get(name).copied()
    }

    pub(super) fn name(&self, id: u32) -> CompactString {
        self.names.read().1[id as usize].clone()
    }

    pub(super) fn export(&self) -> Vec<CompactString> {
        self.names.read().1.clone()
    }

    pub(super) fn import(&self, list: Vec<CompactString>) {
        let ids = list
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        *self.names.write() = (ids, list);
    }
}
