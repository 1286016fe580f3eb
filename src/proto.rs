//! Wire types and service stubs generated from `proto/` by `build.rs`.
#![allow(clippy::all, missing_docs)]

/// `fairflow.v1`: the versioned wire contract.
pub mod v1 {
    tonic::include_proto!("fairflow.v1");
}

/// The encoded descriptor set of `proto/`, served by the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fairflow_descriptor");
