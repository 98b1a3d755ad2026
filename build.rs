//! Compiles the protos with protox (pure Rust, no `protoc`) and keeps the descriptor set for
//! server reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/healthscore/v1/report.proto",
        "proto/healthscore/v1/metrics.proto",
        "proto/healthscore/v1/service.proto",
        "proto/grpc/health/v1/health.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // `healthscore push` reads snapshots from JSON with the proto's JSON field names.
    let mut builder = tonic_prost_build::configure()
        .btree_map(".")
        // The system report is encoded once per published state and sent as shared bytes;
        // these two responses are `proto::Envelope`s (same wire format) instead of structs.
        .extern_path(
            ".healthscore.v1.GetSystemHealthResponse",
            "crate::proto::SystemReportEnvelope",
        )
        .extern_path(
            ".healthscore.v1.WatchHealthResponse",
            "crate::proto::SystemReportEnvelope",
        );
    // Every message of metrics.proto is a snapshot apps push.
    let snapshots = descriptors
        .file
        .iter()
        .filter(|file| file.name() == "healthscore/v1/metrics.proto")
        .flat_map(|file| &file.message_type);
    for snapshot in snapshots {
        builder = builder.type_attribute(
            format!(".healthscore.v1.{}", snapshot.name()),
            "#[derive(serde::Deserialize)] #[serde(rename_all = \"camelCase\", default, deny_unknown_fields)]",
        );
    }
    builder
        .field_attribute(
            ".healthscore.v1.ExecutorSnapshot.state",
            "#[serde(deserialize_with = \"crate::proto::executor_state_json\")]",
        )
        .compile_fds(descriptors)?;
    Ok(())
}
