//! The one place errors become gRPC statuses. Each match lists every variant
//! with no catch-all arm, so a new error kind must choose its code here.

use super::ReloadError;
use crate::catalog::RecordError;
use crate::domain::FieldError;
use crate::engine::RankError;
use crate::events::EventLogError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `INVALID_ARGUMENT` whose message reads `field: reason` and whose details
/// carry a `google.rpc.BadRequest` with the same field, for clients that
/// want to point at it programmatically.
pub fn invalid_argument(e: &FieldError) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        e.to_string(),
        ErrorDetails::with_bad_request_violation(e.field.clone(), e.reason.clone()),
    )
}

impl From<RankError> for Status {
    fn from(e: RankError) -> Status {
        match e {
            RankError::InvalidArgument(field) => invalid_argument(&field),
        }
    }
}

/// A refused catalog record, with its batch path (e.g. `streamers[3].price`).
pub fn record_error(batch: &str, e: RecordError) -> Status {
    let RecordError { index, error } = e;
    invalid_argument(&FieldError::new(
        format!("{batch}[{index}].{}", error.field),
        error.reason,
    ))
}

/// A field error inside a batch record, prefixed the same way.
pub fn in_batch(batch: &str, index: usize, e: FieldError) -> Status {
    record_error(batch, RecordError { index, error: e })
}

/// Why the server could not answer a request that was itself fine.
#[derive(Debug, thiserror::Error)]
pub enum Unanswered {
    /// The blocking task doing the work panicked or was cancelled.
    #[error("{what} task failed: {error}")]
    TaskFailed {
        what: &'static str,
        error: tokio::task::JoinError,
    },
    /// What was sent could not be made durable; nothing of it is
    /// acknowledged, so the caller may retry.
    #[error("{what} not stored, retry: {error}")]
    NotStored {
        what: &'static str,
        error: EventLogError,
    },
    /// A service the fleet shares did not answer.
    #[error("{what} did not answer, retry: {error}")]
    FleetUnreachable { what: &'static str, error: String },
    /// More `Rank` requests in flight than the limit.
    #[error("server at its limit of {limit} Rank requests in flight; retry with backoff")]
    Overloaded { limit: usize },
    /// The request's deadline passed before it was ranked.
    #[error("not ranked within {ms} ms")]
    Deadline { ms: u128 },
    /// The config file was refused; the old config stays in force.
    #[error("{0}")]
    Reload(#[from] ReloadError),
}

impl From<Unanswered> for Status {
    fn from(e: Unanswered) -> Status {
        let code = match &e {
            Unanswered::TaskFailed { .. } => Code::Internal,
            Unanswered::NotStored { .. } | Unanswered::FleetUnreachable { .. } => Code::Unavailable,
            Unanswered::Overloaded { .. } => Code::ResourceExhausted,
            Unanswered::Deadline { .. } => Code::DeadlineExceeded,
            Unanswered::Reload(_) => Code::FailedPrecondition,
        };
        Status::new(code, e.to_string())
    }
}
