//! The one place errors become gRPC statuses. Each match lists every variant
//! with no catch-all arm, so a new error kind must choose its code here.

use crate::catalog::RecordError;
use crate::domain::FieldError;
use crate::engine::RankError;
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
