//! A budget of answer bytes in flight, shared by every reader of a face. An answer takes its
//! size from the budget when it is built and gives it back when its body has been sent or
//! dropped, so a burst of readers (or readers that stopped reading) hold at most the budget in
//! send buffers, whatever they ask for.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::listener::OpenRequest;

/// The budget is counted in KiB, so that one answer's share always fits a permit count.
const UNIT: usize = 1024;

/// Bytes that answers in flight may hold, and how long an answer waits for its share.
#[derive(Clone, Debug)]
pub struct Budget {
    units: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// An answer's share of the budget. Put in the response's extensions by the handler;
/// [`hold_until_sent`] keeps it with the body until the body is gone.
#[derive(Clone, Debug)]
pub struct Share {
    _units: Arc<OwnedSemaphorePermit>,
}

impl Budget {
    pub fn new(bytes: usize, wait: Duration) -> Self {
        let total_units = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    /// A share for an answer of `bytes`, waiting for other answers to drain; `None` when none
    /// came in time. An answer larger than the whole budget takes all of it.
    pub async fn take(&self, bytes: usize) -> Option<Share> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_units);
        let permit = self.units.clone().acquire_many_owned(units);
        match tokio::time::timeout(self.wait, permit).await {
            Ok(Ok(permit)) => Some(Share {
                _units: Arc::new(permit),
            }),
            // The semaphore is never closed; a timeout means the budget stayed spent.
            _ => None,
        }
    }
}

/// Moves a response's [`Share`] from its extensions (dropped once the headers are sent) into its
/// body (dropped once the last byte is handed to the connection, or the call ends). Used as a
/// `tower::util::MapResponseLayer` on every server, so every response passes through it without
/// a future of its own; [`super::listener::TrackLayer`], outside it, adds the request's place
/// among its connection's open requests.
pub fn hold_until_sent<B>(mut response: http::Response<B>) -> http::Response<HeldBody<B>> {
    let share = response.extensions_mut().remove::<Share>();
    response.map(|body| HeldBody {
        body,
        share,
        open: None,
    })
}

/// A response body, the budget share it holds, and its request's place on its connection.
pub struct HeldBody<B> {
    body: B,
    share: Option<Share>,
    open: Option<OpenRequest>,
}

impl<B> HeldBody<B> {
    /// Keeps `open` until the body is gone.
    pub fn hold_request(&mut self, open: OpenRequest) {
        self.open = Some(open);
    }
}

impl<B: Body + Unpin> Body for HeldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.share = None;
            self.open = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
