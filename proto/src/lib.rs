//! The `goalstore.v1` gRPC contract: messages, the `GoalStore` client and server, and the
//! encoded file descriptor set that server reflection serves.

/// Generated from `proto/goalstore/v1/goalstore.proto`.
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("goalstore.v1");
}

/// The encoded `FileDescriptorSet` of the contract, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("goalstore_descriptor");
