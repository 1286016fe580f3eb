//! gRPC server reflection (v1 and v1alpha), so generic clients (grpcurl,
//! Postman, gRPC UI) can list and call the services without proto files.
//!
//! Every file descriptor answer carries the file *and all its transitive
//! dependencies*, as the reflection protocol asks and grpc-go's server
//! does: a client that reads only the first answer can still build the
//! whole schema (`rank.proto` needs `common.proto` for its enums).

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tonic::Status;

/// The descriptors served, indexed by file and by symbol.
#[derive(Debug, Default)]
pub struct Index {
    /// File name -> (its descriptor, encoded; the names of its imports).
    files: HashMap<String, (Vec<u8>, Vec<String>)>,
    /// Fully qualified symbol -> the file defining it.
    symbols: HashMap<String, String>,
    services: BTreeSet<String>,
}

impl Index {
    /// Indexes encoded `FileDescriptorSet`s.
    pub fn new(sets: &[&[u8]]) -> Result<Index, prost::DecodeError> {
        let mut index = Index::default();
        for set in sets {
            for file in FileDescriptorSet::decode(*set)?.file {
                index.add(file);
            }
        }
        Ok(index)
    }

    fn add(&mut self, file: FileDescriptorProto) {
        let name = file.name().to_string();
        let package = file.package().to_string();
        let qualify = |n: &str| {
            if package.is_empty() {
                n.to_string()
            } else {
                format!("{package}.{n}")
            }
        };
        let mut symbols = Vec::new();
        for service in &file.service {
            let s = qualify(service.name());
            self.services.insert(s.clone());
            symbols.extend(service.method.iter().map(|m| format!("{s}.{}", m.name())));
            symbols.push(s);
        }
        for message in &file.message_type {
            messages(&qualify(message.name()), message, &mut symbols);
        }
        symbols.extend(file.enum_type.iter().map(|e| qualify(e.name())));
        for symbol in symbols {
            self.symbols.insert(symbol, name.clone());
        }
        let imports = file.dependency.clone();
        self.files.insert(name, (file.encode_to_vec(), imports));
    }

    /// `file` first, then every file it imports, directly or not, once.
    fn with_dependencies(&self, file: &str) -> Result<Vec<Vec<u8>>, Status> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![file.to_string()];
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let (bytes, imports) = self
                .files
                .get(&name)
                .ok_or_else(|| Status::not_found(format!("file {name} is not known")))?;
            order.push(bytes.clone());
            stack.extend(imports.iter().rev().cloned());
        }
        Ok(order)
    }

    fn file_by_name(&self, name: &str) -> Result<Vec<Vec<u8>>, Status> {
        self.with_dependencies(name)
    }

    fn file_containing_symbol(&self, symbol: &str) -> Result<Vec<Vec<u8>>, Status> {
        let file = self
            .symbols
            .get(symbol.trim_start_matches('.'))
            .ok_or_else(|| Status::not_found(format!("symbol {symbol} is not known")))?;
        self.with_dependencies(file)
    }
}

/// A message's name, its nested messages' and its enums'.
fn messages(name: &str, message: &DescriptorProto, out: &mut Vec<String>) {
    for nested in &message.nested_type {
        messages(&format!("{name}.{}", nested.name()), nested, out);
    }
    out.extend(
        message
            .enum_type
            .iter()
            .map(|e| format!("{name}.{}", e.name())),
    );
    out.push(name.to_string());
}

/// One service implementation per protocol version; the messages have the
/// same shape in both packages.
macro_rules! reflection_service {
    ($module:ident, $name:ident) => {
        pub mod $module {
            use super::Index;
            use std::sync::Arc;
            use tokio_stream::StreamExt;
            use tonic::{Request, Response, Status, Streaming};
            use tonic_reflection::pb::$module::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$module::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$module::server_reflection_server::{
                ServerReflection, ServerReflectionServer,
            };
            use tonic_reflection::pb::$module::{
                ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse,
                ListServiceResponse, ServerReflectionRequest, ServerReflectionResponse,
                ServiceResponse,
            };

            pub struct $name(pub Arc<Index>);

            pub fn server(index: Arc<Index>) -> ServerReflectionServer<$name> {
                ServerReflectionServer::new($name(index))
            }

            fn answer(index: &Index, request: Option<MessageRequest>) -> MessageResponse {
                let files = |found: Result<Vec<Vec<u8>>, Status>| match found {
                    Ok(file_descriptor_proto) => {
                        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                            file_descriptor_proto,
                        })
                    }
                    Err(status) => MessageResponse::ErrorResponse(ErrorResponse {
                        error_code: status.code() as i32,
                        error_message: status.message().to_string(),
                    }),
                };
                match request {
                    Some(MessageRequest::FileByFilename(name)) => files(index.file_by_name(&name)),
                    Some(MessageRequest::FileContainingSymbol(symbol)) => {
                        files(index.file_containing_symbol(&symbol))
                    }
                    Some(MessageRequest::FileContainingExtension(_)) => {
                        files(Err(Status::not_found("this server defines no extensions")))
                    }
                    // Clients (grpcurl) ask this of every message; none has
                    // extensions.
                    Some(MessageRequest::AllExtensionNumbersOfType(base_type_name)) => {
                        MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                            base_type_name,
                            extension_number: Vec::new(),
                        })
                    }
                    Some(MessageRequest::ListServices(_)) => {
                        MessageResponse::ListServicesResponse(ListServiceResponse {
                            service: index
                                .services
                                .iter()
                                .map(|name| ServiceResponse { name: name.clone() })
                                .collect(),
                        })
                    }
                    None => files(Err(Status::invalid_argument("message_request must be set"))),
                }
            }

            type Answers = std::pin::Pin<
                Box<
                    dyn tokio_stream::Stream<Item = Result<ServerReflectionResponse, Status>>
                        + Send,
                >,
            >;

            #[tonic::async_trait]
            impl ServerReflection for $name {
                type ServerReflectionInfoStream = Answers;

                async fn server_reflection_info(
                    &self,
                    request: Request<Streaming<ServerReflectionRequest>>,
                ) -> Result<Response<Answers>, Status> {
                    let index = self.0.clone();
                    let answers = request.into_inner().map(move |request| {
                        let request = request?;
                        Ok(ServerReflectionResponse {
                            valid_host: request.host.clone(),
                            message_response: Some(answer(&index, request.message_request.clone())),
                            original_request: Some(request),
                        })
                    });
                    Ok(Response::new(Box::pin(answers)))
                }
            }
        }
    };
}

reflection_service!(v1, ReflectionV1);
reflection_service!(v1alpha, ReflectionV1Alpha);

/// The index of every descriptor this server serves.
pub fn index() -> Result<Arc<Index>, prost::DecodeError> {
    Index::new(&[
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ])
    .map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_comes_with_every_file_it_imports() {
        let index = index().unwrap();
        let files = index
            .file_containing_symbol("fairflow.v1.RankService")
            .unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                FileDescriptorProto::decode(&f[..])
                    .unwrap()
                    .name()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            ["fairflow/v1/rank.proto", "fairflow/v1/common.proto"]
        );
        let method = index
            .file_containing_symbol("fairflow.v1.RankService.Rank")
            .unwrap();
        assert_eq!(method.len(), 2);
        let nested = index
            .file_containing_symbol(".fairflow.v1.ReasonCode")
            .unwrap();
        assert_eq!(nested[0], files[0]);
        assert!(index.file_containing_symbol("no.such.Thing").is_err());
        assert!(
            index
                .services
                .contains("grpc.reflection.v1.ServerReflection")
        );
    }
}
