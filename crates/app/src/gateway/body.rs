//! The response body the client receives: the upstream body's frames, passed on as they arrive
//! and untouched, with a copy of each data frame handed to a [`Meter`]. When the body ends, fails,
//! or is dropped because the client went away (which drops the upstream body and so cancels the
//! call), the meter's counts go to [`Finish`] exactly once.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use bedrock_usage_core::meter::{Meter, Metered};

/// What to do with the counts (record the call, write the access log).
pub type Finish = Box<dyn FnOnce(Metered, End) + Send>;

/// How the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The upstream body ended and was passed on whole.
    Complete,
    /// The upstream connection failed mid-body.
    UpstreamError,
    /// The client went away before the end.
    ClientGone,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Complete => "complete",
            End::UpstreamError => "upstream-error",
            End::ClientGone => "client-gone",
        }
    }
}

pub struct MeteredBody {
    inner: Incoming,
    meter: Option<Meter>,
    finish: Option<Finish>,
}

impl MeteredBody {
    pub fn new(inner: Incoming, meter: Meter, finish: Finish) -> MeteredBody {
        MeteredBody {
            inner,
            meter: Some(meter),
            finish: Some(finish),
        }
    }

    fn done(&mut self, end: End) {
        if let (Some(m), Some(f)) = (self.meter.take(), self.finish.take()) {
            f(m.finish(end == End::Complete), end);
        }
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(m)) = (frame.data_ref(), this.meter.as_mut()) {
                    m.bytes(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done(End::UpstreamError);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done(End::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        // A body whose end was seen has finished already; one dropped before its end was
        // abandoned by the client (or by the server on shutdown).
        let end = if self.inner.is_end_stream() {
            End::Complete
        } else {
            End::ClientGone
        };
        self.done(end);
    }
}
