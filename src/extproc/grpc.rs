//! The `envoy.service.ext_proc.v3.ExternalProcessor` gRPC service, routed
//! by hand so its one method reads through [`IngressCodec`] (bodies as
//! shared `Bytes`); envoy-types' generated server would decode with
//! prost's default codec, copying every body.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::codegen::{http, BoxFuture, Service};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};

use super::codec::{Inbound, IngressCodec};
use super::{ExtProcService, ResponseStream};

/// The service's gRPC name (health checks and reflection use it).
pub const SERVICE_NAME: &str = "envoy.service.ext_proc.v3.ExternalProcessor";
const PROCESS: &str = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

/// The ext_proc service as tonic's router takes it.
#[derive(Clone)]
pub struct ExtProcServer {
    inner: ExtProcService,
    max_message_bytes: usize,
}

impl ExtProcServer {
    /// `max_message_bytes` bounds a message either way (a 32 MB body is one
    /// message).
    pub fn new(inner: ExtProcService, max_message_bytes: usize) -> Self {
        ExtProcServer {
            inner,
            max_message_bytes,
        }
    }
}

impl NamedService for ExtProcServer {
    const NAME: &'static str = SERVICE_NAME;
}

/// `Process`, the one method.
struct Process(ExtProcService);

impl StreamingService<Inbound> for Process {
    type Response = envoy_types::pb::envoy::service::ext_proc::v3::ProcessingResponse;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<Response<ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Inbound>>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.process(request).await })
    }
}

impl<B> Service<http::Request<B>> for ExtProcServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != PROCESS {
            return Box::pin(async move {
                Ok(
                    Status::unimplemented("promptgate serves ExternalProcessor/Process only")
                        .into_http(),
                )
            });
        }
        let (inner, max) = (self.inner.clone(), self.max_message_bytes);
        Box::pin(async move {
            let mut grpc =
                Grpc::new(IngressCodec).apply_max_message_size_config(Some(max), Some(max));
            Ok(grpc.streaming(Process(inner), req).await)
        })
    }
}
