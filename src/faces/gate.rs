//! The one tower layer every face's server runs its requests through, before any handler:
//! probes pass untouched; anything else needs a connection that is not kept for probes, a
//! token with the right scope (when tokens are configured) and a slot of the requests-at-once
//! budget, refused rather than queued when spent.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{Either, Ready};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::{
    auth::{presented, Denied, Scope, Tokens},
    listener::Peer,
};

/// What a face's requests need, and how it says no.
pub trait Policy: Clone + Send + Sync + 'static {
    type Body;
    /// The scope `request` needs; `None` for probes, which pass untouched.
    fn scope<B>(&self, request: &Request<B>) -> Option<Scope>;
    /// Whether the token may come from the dashboard's cookie (safe reads only).
    fn cookie_allowed<B>(&self, request: &Request<B>) -> bool;
    fn deny(&self, denied: Denied) -> Response<Self::Body>;
}

/// Checks every request by the face's policy.
#[derive(Clone)]
pub struct GateLayer<P> {
    /// `None`: tokens are off.
    tokens: Option<Arc<Tokens>>,
    requests: Arc<Semaphore>,
    policy: P,
}

impl<P> GateLayer<P> {
    pub fn new(tokens: Option<Arc<Tokens>>, requests: Arc<Semaphore>, policy: P) -> Self {
        Self {
            tokens,
            requests,
            policy,
        }
    }
}

impl<S, P: Clone> Layer<S> for GateLayer<P> {
    type Service = Gate<S, P>;

    fn layer(&self, inner: S) -> Gate<S, P> {
        Gate {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Gate<S, P> {
    inner: S,
    layer: GateLayer<P>,
}

impl<S, P, B> Service<Request<B>> for Gate<S, P>
where
    S: Service<Request<B>, Response = Response<P::Body>>,
    P: Policy,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Either<Either<S::Future, Holding<S::Future>>, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let layer = &self.layer;
        let Some(scope) = layer.policy.scope(&request) else {
            return Either::Left(Either::Left(self.inner.call(request)));
        };
        if request
            .extensions()
            .get::<Peer>()
            .is_some_and(Peer::probes_only)
        {
            return Either::Right(futures_util::future::ready(Ok(layer
                .policy
                .deny(Denied::ProbesOnly))));
        }
        if let Some(tokens) = &layer.tokens {
            let token = presented(request.headers(), layer.policy.cookie_allowed(&request));
            match tokens.check(token.as_deref(), scope) {
                Ok(grant) => {
                    request.extensions_mut().insert(grant);
                }
                Err(denied) => {
                    tracing::debug!(path = request.uri().path(), %denied, "request refused");
                    return Either::Right(futures_util::future::ready(Ok(layer
                        .policy
                        .deny(denied))));
                }
            }
        }
        let Ok(permit) = layer.requests.clone().try_acquire_owned() else {
            return Either::Right(futures_util::future::ready(Ok(layer
                .policy
                .deny(Denied::Busy))));
        };
        Either::Left(Either::Right(Holding {
            inner: self.inner.call(request),
            _permit: permit,
        }))
    }
}

pin_project! {
    /// A handler's future holding its slot of the requests-at-once budget until it answers
    /// (a stream's slot is freed when the stream starts: watch streams have their own cap).
    pub struct Holding<F> {
        #[pin]
        inner: F,
        _permit: OwnedSemaphorePermit,
    }
}

impl<F: Future> Future for Holding<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}
