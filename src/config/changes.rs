//! Which keys a reload changes: both texts laid over the shipped defaults
//! and flattened to key paths, so a key that went back to its default by
//! being deleted shows as a change too.

use super::DEFAULT_TOML;
use std::collections::BTreeMap;

/// Key path -> value as TOML text.
pub(super) fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(&path, t, out),
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}

/// `over` laid onto `base`, table by table.
pub(super) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn effective(text: &str) -> BTreeMap<String, String> {
    let mut table: toml::Table = toml::from_str(DEFAULT_TOML).unwrap_or_default();
    merge(&mut table, toml::from_str(text).unwrap_or_default());
    let mut out = BTreeMap::new();
    flatten("", &table, &mut out);
    out
}

/// A key whose value differs between two config texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        write!(
            f,
            "{}: {} -> {}",
            self.key,
            show(&self.old),
            show(&self.new)
        )
    }
}

/// The keys whose effective values differ, in key order. Both texts are
/// valid configs (they parsed before).
pub fn changes(old: &str, new: &str) -> Vec<Change> {
    let (old, new) = (effective(old), effective(new));
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| Change {
            key: k.clone(),
            old: old.get(k).cloned(),
            new: new.get(k).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_and_defaulted_keys_are_listed_with_old_and_new_values() {
        let old = "[quotas.targets]\nmid = 0.45\nsmall = 0.51\n";
        let new = "[quotas.targets]\nmid = 0.40\n[tiers]\nmid_min_followers = 200_000\n";
        let got: Vec<String> = changes(old, new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            got,
            [
                "quotas.targets.mid: 0.45 -> 0.4",
                "quotas.targets.small: 0.51 -> 0.46",
                "tiers.mid_min_followers: 100000 -> 200000",
            ]
        );
        assert!(changes(old, old).is_empty());
    }
}
