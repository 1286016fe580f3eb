//! The checks every section's validation uses: a failure names its key,
//! and a bounded value is checked against its range.

use std::fmt::Display;

/// A validation failure before the file name is attached.
pub(super) struct Invalid {
    pub(super) key: String,
    pub(super) reason: String,
}

pub(super) fn invalid(key: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Checks `min <= value <= max`, naming the key and the range otherwise.
pub(super) fn in_range<T: PartialOrd + Display + Copy>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, Invalid> {
    // Written so that NaN fails too.
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(invalid(key, format!("{value} is outside [{min}, {max}]")))
    }
}
