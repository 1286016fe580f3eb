//! A config file is applied only when it is whole: not empty, not cut
//! mid-line, and (on reload) the same on two reads a moment apart, so a
//! file caught while an editor saves it in place is never applied.

use super::{Config, ConfigError};
use std::path::Path;
use std::time::Duration;

/// A config file's text, refused when it cannot be a whole config: empty
/// (no keys: an all-defaults config says so with at least one key), or not
/// ending in a newline (cut short mid-line, as a save in progress is).
pub(super) fn read_whole(path: &Path) -> Result<String, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let refuse = |reason: &str| ConfigError::Invalid {
        file: file.clone(),
        key: "(file)".into(),
        reason: reason.into(),
    };
    if toml::from_str::<toml::Table>(&text).is_ok_and(|t| t.is_empty()) {
        return Err(refuse(
            "no keys: an empty or cut-short file is not applied (set at least one key to run on the defaults)",
        ));
    }
    if !text.ends_with('\n') {
        return Err(refuse(
            "does not end with a newline: it looks cut short (a save in progress?) and is not applied",
        ));
    }
    Ok(text)
}

impl Config {
    /// [`Config::load`] for a file that may be being written: it is read
    /// again after `settle` and taken only when both reads agree (a few
    /// tries), so an editor saving in place is never caught half-way.
    /// A file replaced by an atomic rename agrees at once.
    pub fn load_settled(path: &Path, settle: Duration) -> Result<Config, ConfigError> {
        let mut text = read_whole(path)?;
        for _ in 0..5 {
            std::thread::sleep(settle);
            let again = read_whole(path)?;
            if again == text {
                return Config::from_toml(&text, &path.display().to_string(), path.parent());
            }
            text = again;
        }
        Err(ConfigError::Invalid {
            file: path.display().to_string(),
            key: "(file)".into(),
            reason: "still changing after several reads: not applied until it is written whole"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_TOML;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fairflow.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn refusal(text: &str) -> String {
        let (_dir, path) = write(text);
        Config::load(Some(&path)).unwrap_err().to_string()
    }

    #[test]
    fn empty_and_comment_only_files_are_refused() {
        for text in ["", "\n", "# only a comment\n"] {
            assert!(refusal(text).contains("no keys"), "{text:?}");
        }
    }

    #[test]
    fn a_file_cut_mid_line_is_refused() {
        let err = refusal("[chuanliu.budget]\ndaily_impressions = 12");
        assert!(err.contains("does not end with a newline"), "{err}");
        assert!(err.contains("fairflow.toml"), "{err}");
    }

    #[test]
    fn prefixes_of_the_default_config_are_refused_unless_cut_at_a_line_end() {
        // Every cut point of the shipped file, a few hundred bytes apart.
        for cut in (1..DEFAULT_TOML.len()).step_by(97) {
            if !DEFAULT_TOML.is_char_boundary(cut) || DEFAULT_TOML[..cut].ends_with('\n') {
                continue;
            }
            let prefix = &DEFAULT_TOML[..cut];
            let (_dir, path) = write(prefix);
            assert!(
                Config::load(Some(&path)).is_err(),
                "prefix of {cut} bytes applied"
            );
        }
    }

    #[test]
    fn a_file_being_written_is_not_applied_until_it_settles() {
        let (_dir, path) = write("[tiers]\nmid_min_followers = 200_000\n");
        let config = Config::load_settled(&path, Duration::from_millis(5)).unwrap();
        assert!(config.text.contains("200_000"));
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..400 {
                    let text = format!("[tiers]\nmid_min_followers = {}\n", 100_000 + i);
                    std::fs::write(&path, text).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        // Refused as still changing, or as caught empty or cut short
        // between a truncation and a write.
        let err = Config::load_settled(&path, Duration::from_millis(20)).unwrap_err();
        let err = err.to_string();
        assert!(
            ["still changing", "no keys", "newline"]
                .iter()
                .any(|r| err.contains(r)),
            "{err}"
        );
        writer.join().unwrap();
    }
}
