//! The standard gRPC health service reports SERVING for the server and each
//! service; reflection lists every service and serves their descriptors.

mod common;

use common::*;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn health_reports_serving() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "fairflow.v1.RankService",
        "fairflow.v1.CatalogService",
        "fairflow.v1.AdminService",
        "fairflow.v1.EventService",
    ] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.status,
            ServingStatus::Serving as i32,
            "service `{service}`"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

async fn reflect(server: &TestServer, req: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(req),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    stream
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_lists_and_describes_the_services() {
    let server = TestServer::start().await;
    let MessageResponse::ListServicesResponse(list) =
        reflect(&server, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "fairflow.v1.RankService",
        "fairflow.v1.CatalogService",
        "fairflow.v1.AdminService",
        "fairflow.v1.EventService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let MessageResponse::FileDescriptorResponse(files) = reflect(
        &server,
        MessageRequest::FileContainingSymbol("fairflow.v1.RankService".into()),
    )
    .await
    else {
        panic!("expected descriptors");
    };
    // The one answer is enough to build the schema: every import of every
    // file returned is among the files returned.
    let files: Vec<prost_types::FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|f| prost::Message::decode(&f[..]).unwrap())
        .collect();
    let names: Vec<&str> = files.iter().map(|f| f.name()).collect();
    assert_eq!(names[0], "fairflow/v1/rank.proto");
    for file in &files {
        for import in &file.dependency {
            assert!(
                names.contains(&import.as_str()),
                "{import} missing from {names:?}"
            );
        }
    }
    assert!(names.contains(&"fairflow/v1/common.proto"));
    let MessageResponse::ErrorResponse(err) = reflect(
        &server,
        MessageRequest::FileContainingSymbol("no.such.Service".into()),
    )
    .await
    else {
        panic!("expected an error answer");
    };
    assert_eq!(err.error_code, tonic::Code::NotFound as i32);
}
