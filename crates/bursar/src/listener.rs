//! The HTTP listener: what a connection may hold, how many may be open, and how shutdown
//! drains them.
//!
//! - A connection idle for `header_read_timeout` is closed: one that sends nothing, one that
//!   trickles its headers (slowloris), and a keep-alive connection between requests. A
//!   request body must arrive within `body_read_timeout` (checked where bodies are read).
//! - At most `max_connections` are open; one more is answered with a 503 in the error shape
//!   and closed, so the file-descriptor limit is never reached and new clients get an answer
//!   rather than a timeout.
//! - Shutdown stops accepting, lets in-flight requests finish for `drain_timeout`, then ends
//!   the streams still open (the server's drain token: they send an error frame and are
//!   charged) and waits a moment for those last frames.

use axum::Router;
use axum::extract::ConnectInfo;
use bursar_core::config::ConnectionSettings;
use bursar_server::AppState;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long streams cut at the drain deadline get to send their error frame.
const LAST_FRAMES: Duration = Duration::from_secs(5);
/// File descriptors kept free for everything that is not a client connection (database and
/// Redis pools, upstream connections, the spool and log files).
const RESERVED_FDS: usize = 512;
/// The default cap when the descriptor limit cannot be read.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The connection cap: the configured one, else what the descriptor limit leaves room for.
pub fn max_connections(settings: &ConnectionSettings) -> usize {
    settings.max_connections.unwrap_or_else(|| {
        open_files_limit()
            .map(|limit| limit.saturating_sub(RESERVED_FDS).max(64))
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .min(DEFAULT_MAX_CONNECTIONS * 10)
    })
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains (see the module
/// docs); `drain` is cancelled at the drain deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ConnectionSettings,
    shutdown: CancellationToken,
    drain: CancellationToken,
    state: AppState,
) {
    let cap = max_connections(&settings);
    let slots = Arc::new(Semaphore::new(cap));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(settings.header_read_timeout))
        .keep_alive_timeout(settings.header_read_timeout);
    tracing::info!(
        max_connections = cap,
        header_read_timeout_s = settings.header_read_timeout.as_secs_f64(),
        "accepting connections"
    );
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(ok) => ok,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: wait a moment
                // rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            state
                .counters()
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(refuse(stream, cap));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request
                });
        let io = TokioIo::new(FirstByteTimeout::new(stream, settings.header_read_timeout));
        let connection = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let drained = graceful.shutdown();
    tokio::pin!(drained);
    tokio::select! {
        () = &mut drained => {}
        () = tokio::time::sleep(settings.drain_timeout) => {
            tracing::warn!(
                drain_timeout_s = settings.drain_timeout.as_secs_f64(),
                "requests still open at the drain deadline; ending their streams"
            );
            drain.cancel();
            if tokio::time::timeout(LAST_FRAMES, &mut drained).await.is_err() {
                tracing::warn!("connections still open after the drain deadline were dropped");
            }
        }
    }
}

/// Answers a connection over the cap with a 503 in the error shape, then closes it.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = format!(
        r#"{{"error":{{"message":"Too many open connections (the limit is {cap}); retry shortly","type":"service_unavailable","param":null,"code":"503"}}}}"#
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// A connection that must send its first byte within `limit`. hyper's header timer starts
/// at a request's first byte (and covers idle keep-alive connections between requests), so
/// a client that connects and sends nothing would otherwise hold its slot forever. Once a
/// byte arrives the wrapper is inert: a request may then take as long as its answer does.
struct FirstByteTimeout {
    inner: TcpStream,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl FirstByteTimeout {
    fn new(inner: TcpStream, limit: Duration) -> FirstByteTimeout {
        FirstByteTimeout {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
        }
    }
}

impl AsyncRead for FirstByteTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request received",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for FirstByteTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_descriptor_limit() {
        let configured = ConnectionSettings {
            max_connections: Some(7),
            ..ConnectionSettings::default()
        };
        assert_eq!(max_connections(&configured), 7);
        let derived = max_connections(&ConnectionSettings::default());
        if let Some(limit) = open_files_limit() {
            assert!(
                derived < limit.max(RESERVED_FDS + 64),
                "{derived} vs {limit}"
            );
        }
        assert!(derived >= 64);
    }
}
