//! Server reflection lists both services, so grpcurl works with no .proto files.

mod common;

use common::TestServer;
use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::{
    server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse, ServerReflectionRequest,
};

#[tokio::test]
async fn reflection_lists_both_services_and_describes_them() {
    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let requests = tokio_stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "healthscore.v1.HealthReports".into(),
            )),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .expect("reflection call")
        .into_inner();
    let listed = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("expected a service list, got {listed:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"healthscore.v1.HealthReports"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    let described = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("expected file descriptors, got {described:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // Imports travel with the descriptors, so clients can resolve Timestamp and Duration.
    let set = <prost_types::FileDescriptorSet as prost::Message>::decode(
        healthscore::proto::FILE_DESCRIPTOR_SET,
    )
    .expect("descriptor set decodes");
    let files: Vec<_> = set.file.iter().map(|f| f.name()).collect();
    assert!(
        files.contains(&"google/protobuf/timestamp.proto"),
        "{files:?}"
    );
    assert!(
        files.contains(&"google/protobuf/duration.proto"),
        "{files:?}"
    );
}
