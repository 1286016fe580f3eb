//! Live config: a changed file (polled), SIGHUP or `AdminService.ReloadConfig`
//! reloads the config file; a valid one is swapped in atomically with its
//! model, an invalid one is refused and the old one stays in force.
//!
//! Requests in flight keep the engine they started with (an `Arc`), and the
//! exposure state lives beside the engine, so controller state carries over.

use super::Live;
use super::{State, metrics};
use crate::config::{Config, ConfigError};
use crate::model::{Model, ModelError};
use std::sync::Arc;
use std::time::Duration;

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reloaded {
    pub version: String,
    pub previous_version: String,
    /// False when the file and the model it names were what was already in
    /// force.
    pub changed: bool,
    /// Keys whose new values take effect only after a restart.
    pub restart_required: Vec<&'static str>,
    /// Every key whose value changed, with old and new values.
    pub changes: Vec<crate::config::Change>,
}

/// The last reload that changed something or was refused, for the console.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadNote {
    pub at: crate::domain::Millis,
    /// The reload applied, or why it was refused (file, key and reason).
    pub outcome: Result<Reloaded, String>,
}

/// How long a changed config file must stay the same before it is read as
/// whole.
const SETTLE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the server was started on the embedded config; there is no file to reload")]
    NoFile,
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("model: {0}")]
    Model(#[from] ModelError),
}

impl State {
    /// Reloads the config file (and the model it names). Serialized: two
    /// reloads never interleave.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reload_lock.lock();
        let outcome = self.reload_locked();
        let note = match &outcome {
            Ok(r) if !r.changed => None,
            Ok(r) => Some(Ok(r.clone())),
            Err(e) => Some(Err(e.to_string())),
        };
        if let Some(outcome) = note {
            *self.last_reload.lock() = Some(ReloadNote {
                at: super::wall_clock(),
                outcome,
            });
        }
        match &outcome {
            Ok(r) if !r.changed => metrics::record_reload("unchanged"),
            Ok(r) => {
                metrics::record_reload("ok");
                let changes: Vec<String> = r.changes.iter().map(|c| c.to_string()).collect();
                tracing::info!(
                    version = %r.version,
                    previous = %r.previous_version,
                    restart_required = ?r.restart_required,
                    changes = %changes.join("; "),
                    "config reloaded"
                );
            }
            Err(e) => {
                metrics::record_reload("failed");
                tracing::error!(error = %e, "config reload refused; the old config stays in force");
            }
        }
        outcome
    }

    fn reload_locked(&self) -> Result<Reloaded, ReloadError> {
        let path = self.config_path.as_deref().ok_or(ReloadError::NoFile)?;
        let next = Config::load_settled(path, SETTLE)?;
        let current = self.live();
        let previous_version = current.config.version.clone();
        // The model file is read again even when the config text is the
        // same: a new model is rolled out by replacing the file and reloading.
        let model = Model::from_source(&next.model)?;
        if next.version == previous_version && model.version() == current.engine.model().version() {
            return Ok(Reloaded {
                version: next.version,
                previous_version,
                changed: false,
                restart_required: Vec::new(),
                changes: Vec::new(),
            });
        }
        let version = next.version.clone();
        let changes = crate::config::changes(&current.config.text, &next.text);
        let restart_required = crate::config::restart_required(&changes);
        self.live.store(Arc::new(Live::new(next, Arc::new(model))));
        Ok(Reloaded {
            version,
            previous_version,
            changed: true,
            restart_required,
            changes,
        })
    }
}

/// The config file's content hash as [`Config`] computes it, or `None` when
/// it cannot be read.
fn file_version(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(crate::config::content_version(&text))
}

/// Reloads on SIGHUP and whenever the file's content changes (checked every
/// `every`), until the task is dropped. A broken file is reported once per
/// distinct content, not on every check.
pub(super) async fn watch(state: Arc<State>, every: Option<Duration>) {
    let Some(path) = state.config_path.clone() else {
        return;
    };
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = every.map(tokio::time::interval);
    let mut last_seen = Some(state.live().config.version.clone());
    loop {
        let poll = async {
            match tick.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        let sighup = async {
            match hangup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let sighup = std::future::pending::<()>();
        tokio::select! {
            () = poll => {
                let path = path.clone();
                let seen = tokio::task::spawn_blocking(move || file_version(&path))
                    .await
                    .ok()
                    .flatten();
                if seen.is_some() && seen != last_seen {
                    last_seen = seen;
                    let state = state.clone();
                    let _ = tokio::task::spawn_blocking(move || state.reload()).await;
                }
            }
            () = sighup => {
                tracing::info!("SIGHUP: reloading the config");
                let state = state.clone();
                let _ = tokio::task::spawn_blocking(move || state.reload()).await;
            }
        }
    }
}
