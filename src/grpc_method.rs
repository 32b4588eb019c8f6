//! A gRPC service of one method, routed by hand: tonic's router takes it
//! like a generated server, and the method decodes through a codec of
//! promptgate's own (the ext_proc bodies shared with tonic's buffer, the
//! access-log entries' few fields) instead of the generated server's.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::server::NamedService;
use tonic::Status;

/// The one method: its service's name, its path, and how a call is served.
pub trait Method: Clone + Send + 'static {
    /// The service's gRPC name (`package.Service`).
    const SERVICE: &'static str;
    /// The method's path (`/package.Service/Method`); any other path is
    /// answered `UNIMPLEMENTED`.
    const PATH: &'static str;

    /// Serves one call of the method.
    fn serve(self, req: http::Request<Body>) -> BoxFuture<http::Response<Body>, Infallible>;
}

/// A [`Method`] as a service tonic's router takes.
#[derive(Clone)]
pub struct OneMethod<M>(pub M);

impl<M: Method> NamedService for OneMethod<M> {
    const NAME: &'static str = M::SERVICE;
}

impl<M: Method, B> Service<http::Request<B>> for OneMethod<M>
where
    B: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != M::PATH {
            return Box::pin(async move {
                let message = format!("promptgate serves {} only", M::PATH);
                Ok(Status::unimplemented(message).into_http())
            });
        }
        self.0.clone().serve(req.map(Body::new))
    }
}
