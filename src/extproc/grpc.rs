//! The `envoy.service.ext_proc.v3.ExternalProcessor` gRPC service, routed
//! by hand ([`crate::grpc_method`]) so its one method reads through
//! [`IngressCodec`] (bodies as shared `Bytes`); envoy-types' generated
//! server would decode with prost's default codec, copying every body.

use std::convert::Infallible;

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture};
use tonic::server::{Grpc, StreamingService};
use tonic::{Request, Response, Status, Streaming};

use super::codec::{Inbound, IngressCodec};
use super::{ExtProcService, ResponseStream};
use crate::grpc_method::{Method, OneMethod};

/// The service's gRPC name (health checks and reflection use it).
pub const SERVICE_NAME: &str = "envoy.service.ext_proc.v3.ExternalProcessor";

/// The ext_proc service as tonic's router takes it.
pub type ExtProcServer = OneMethod<Process>;

impl ExtProcServer {
    /// `max_message_bytes` bounds a message either way (a 32 MB body is one
    /// message).
    pub fn new(inner: ExtProcService, max_message_bytes: usize) -> Self {
        OneMethod(Process {
            inner,
            max_message_bytes,
        })
    }
}

/// `Process`, the one method.
#[derive(Clone)]
pub struct Process {
    inner: ExtProcService,
    max_message_bytes: usize,
}

impl StreamingService<Inbound> for Process {
    type Response = envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<Response<ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Inbound>>) -> Self::Future {
        let service = self.inner.clone();
        Box::pin(async move { service.process(request).await })
    }
}

impl Method for Process {
    const SERVICE: &'static str = SERVICE_NAME;
    const PATH: &'static str = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

    fn serve(self, req: http::Request<Body>) -> BoxFuture<http::Response<Body>, Infallible> {
        let max = self.max_message_bytes;
        Box::pin(async move {
            let mut grpc =
                Grpc::new(IngressCodec).apply_max_message_size_config(Some(max), Some(max));
            Ok(grpc.streaming(self, req).await)
        })
    }
}
