//! One client connection: read into a buffer, run every complete request in it, write all
//! replies with one write per batch.
//!
//! Invariants: a reply is written only after every WAL position it depends on is durable;
//! pending input never exceeds `client-query-buffer-limit` and pending output never exceeds the
//! normal-class `client-output-buffer-limit` (the client is disconnected instead, as in Redis).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::{decode_request, DecodeLimits, Frame, MAX_MULTIBULK_LEN};
use crate::server::{ClientHandle, Shared};
use crate::session::{Action, Session};

/// Initial read buffer capacity.
pub const READ_BUFFER_INITIAL_BYTES: usize = 16 * 1024;
/// Replies beyond this many bytes are written before more requests of the same batch run, so a
/// huge pipeline doesn't buffer all its replies.
pub const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;

/// Serves one client until it quits, errs, idles out, is killed or the server shuts down.
pub async fn serve(mut stream: TcpStream, client: Arc<ClientHandle>, shared: &Arc<Shared>) {
    let mut session = Session::new(client.clone(), shared);
    let mut shutdown = shared.shutdown_signal();
    let mut input = BytesMut::with_capacity(READ_BUFFER_INITIAL_BYTES);
    let mut output = BytesMut::with_capacity(READ_BUFFER_INITIAL_BYTES);
    let mut soft_limit_since: Option<Instant> = None;
    loop {
        let (timeout_secs, query_limit) = {
            let c = shared.config.read();
            (c.timeout_secs, c.client_query_buffer_limit_bytes)
        };
        let idle = async {
            if timeout_secs == 0 {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(Duration::from_secs(timeout_secs)).await
            }
        };
        let read = tokio::select! {
            r = stream.read_buf(&mut input) => r,
            _ = idle, if !session.in_multi() => break,
            _ = client.kill.notified() => break,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                shared
                    .stats
                    .net_input_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        if input.len() as u64 > query_limit {
            tracing::warn!(
                client = client.id.0,
                "closing client that exceeded client-query-buffer-limit"
            );
            break;
        }
        let limits = {
            let c = shared.config.read();
            DecodeLimits {
                max_bulk_len: c.proto_max_bulk_len_bytes,
                max_multibulk_len: MAX_MULTIBULK_LEN,
            }
        };
        let mut close = false;
        loop {
            match decode_request(&mut input, &limits) {
                Ok(Some(args)) => {
                    if args.is_empty() {
                        continue;
                    }
                    let reply = session.handle(args, shared);
                    match session.action.take() {
                        Some(Action::Shutdown) => {
                            let _ = flush(&mut stream, &mut output, &mut session, shared).await;
                            return;
                        }
                        Some(Action::Sleep(d)) => {
                            // Only this connection sleeps; other clients keep being served.
                            if flush(&mut stream, &mut output, &mut session, shared)
                                .await
                                .is_err()
                            {
                                return;
                            }
                            tokio::time::sleep(d).await;
                            reply.encode(&mut output, session.proto);
                        }
                        Some(Action::Close) => {
                            reply.encode(&mut output, session.proto);
                            close = true;
                            break;
                        }
                        None => reply.encode(&mut output, session.proto),
                    }
                    if output.len() >= WRITE_BATCH_BYTES_MAX {
                        if !within_output_limit(&output, shared, &mut soft_limit_since) {
                            tracing::warn!(
                                client = client.id.0,
                                "closing client that exceeded client-output-buffer-limit"
                            );
                            return;
                        }
                        if flush(&mut stream, &mut output, &mut session, shared)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    Frame::error(format!("ERR {e}")).encode(&mut output, session.proto);
                    close = true;
                    break;
                }
            }
        }
        if !within_output_limit(&output, shared, &mut soft_limit_since) {
            tracing::warn!(
                client = client.id.0,
                "closing client that exceeded client-output-buffer-limit"
            );
            return;
        }
        if flush(&mut stream, &mut output, &mut session, shared)
            .await
            .is_err()
            || close
            || client.is_killed()
        {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

fn within_output_limit(
    output: &BytesMut,
    shared: &Shared,
    soft_since: &mut Option<Instant>,
) -> bool {
    let limit = shared.config.read().client_output_buffer_limit;
    let pending = output.len() as u64;
    if limit.hard_bytes > 0 && pending > limit.hard_bytes {
        return false;
    }
    if limit.soft_bytes > 0 && pending > limit.soft_bytes {
        let since = soft_since.get_or_insert_with(Instant::now);
        if since.elapsed() > Duration::from_secs(limit.soft_secs) {
            return false;
        }
    } else {
        *soft_since = None;
    }
    true
}

/// Waits until the replies' WAL positions are durable, then writes them in one go.
async fn flush(
    stream: &mut TcpStream,
    output: &mut BytesMut,
    session: &mut Session,
    shared: &Shared,
) -> std::io::Result<()> {
    if output.is_empty() {
        return Ok(());
    }
    let needed = std::mem::take(&mut session.max_lsn);
    if needed > 0 {
        if let Some(durable) = shared.durable_lsn.as_ref() {
            let mut durable = durable.clone();
            if *durable.borrow() < needed && durable.wait_for(|d| *d >= needed).await.is_err() {
                // The WAL is gone: the writes can't be acknowledged, so say nothing.
                return Err(std::io::Error::other("durable LSN channel closed"));
            }
        }
    }
    stream.write_all(output).await?;
    shared
        .stats
        .net_output_bytes
        .fetch_add(output.len() as u64, Ordering::Relaxed);
    output.clear();
    Ok(())
}
