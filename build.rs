//! Generates the gRPC code from `proto/` with a pure-Rust protobuf compiler
//! (protox), so building needs no system `protoc`.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/fairflow/v1/common.proto",
    "proto/fairflow/v1/rank.proto",
    "proto/fairflow/v1/catalog.proto",
    "proto/fairflow/v1/admin.proto",
    "proto/fairflow/v1/events.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The builder does not emit these itself when handed a descriptor set.
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Served by the reflection service so generic clients can list and call us.
    // The builder only writes this file when it runs protoc itself.
    std::fs::write(out.join("fairflow_descriptor.bin"), fds.encode_to_vec())?;
    // Prost's codec, but a message that does not decode is INVALID_ARGUMENT
    // naming what is wrong (src/server/codec.rs).
    tonic_prost_build::configure()
        .codec_path("crate::server::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
