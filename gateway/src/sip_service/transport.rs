//! UDP and TCP drivers: they only move bytes between sockets and the SIP service task.
//!
//! UDP datagrams and framed TCP messages go to the service through one bounded queue; when it is
//! full, UDP input is dropped (counted) as a congested network would, and TCP readers wait
//! (back-pressure on the connection). Each TCP connection has a bounded write queue.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use sip::endpoint::Peer;
use sip::message::{Frame, Limits, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

/// Queued outgoing messages per TCP connection before the connection is considered stuck.
const TCP_WRITE_QUEUE_LEN: usize = 256;

/// What the drivers hand to the SIP service.
#[derive(Debug)]
pub enum Inbound {
    Datagram {
        peer: Peer,
        bytes: Bytes,
    },
    StreamMessage {
        peer: Peer,
        bytes: Bytes,
    },
    Connected {
        id: u64,
        writer: mpsc::Sender<Bytes>,
    },
    Closed {
        id: u64,
    },
}

#[derive(Debug, Default)]
pub struct TransportStats {
    pub udp_dropped_queue_full: AtomicU64,
    pub tcp_connections: AtomicU64,
    pub tcp_framing_errors: AtomicU64,
}

pub async fn run_udp(
    socket: Arc<UdpSocket>,
    to_service: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
) {
    // 65,535 is the largest datagram; the message layer enforces its own limit after this.
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port-unreachable surfaces as an error on some systems: not fatal.
                tracing::debug!(error = %e, "udp recv");
                continue;
            }
        };
        let msg = Inbound::Datagram {
            peer: Peer::udp(from),
            bytes: Bytes::copy_from_slice(&buf[..len]),
        };
        match to_service.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                stats.udp_dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

pub async fn run_tcp_listener(
    listener: TcpListener,
    to_service: mpsc::Sender<Inbound>,
    limits: Limits,
    stats: Arc<TransportStats>,
) {
    let next_id = AtomicU64::new(1);
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(run_tcp_connection(
            stream,
            from,
            id,
            to_service.clone(),
            limits.clone(),
            stats.clone(),
        ));
    }
}

async fn run_tcp_connection(
    stream: tokio::net::TcpStream,
    from: SocketAddr,
    id: u64,
    to_service: mpsc::Sender<Inbound>,
    limits: Limits,
    stats: Arc<TransportStats>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (write_tx, mut write_rx) = mpsc::channel::<Bytes>(TCP_WRITE_QUEUE_LEN);
    if to_service
        .send(Inbound::Connected {
            id,
            writer: write_tx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = write_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let peer = Peer::tcp(from, id);
    let mut framer = StreamFramer::new(limits);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Message(bytes))) => {
                    if to_service
                        .send(Inbound::StreamMessage { peer, bytes })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(Some(Frame::KeepAlive { pong_needed })) => {
                    // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a CRLF pong.
                    if pong_needed && write_tx.try_send(Bytes::from_static(b"\r\n")).is_err() {
                        break 'read;
                    }
                }
                Err(e) => {
                    // The stream can no longer be delimited (§18.3): close it.
                    stats.tcp_framing_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %from, error = %e, "closing tcp connection");
                    break 'read;
                }
            }
        }
    }
    drop(write_tx);
    let _ = to_service.send(Inbound::Closed { id }).await;
    let _ = write_task.await;
}
