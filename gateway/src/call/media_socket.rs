//! A call's media socket: woken by the reactor while the call sets up, then read on the call's
//! 20 ms media tick once audio flows.
//!
//! Why: a connected call receives two datagrams every 20 ms (one from the carrier, one from the
//! browser) and the bridge only produces output on its tick. Waking the call task for every
//! datagram costs an epoll event, a thread wake-up and a task poll per packet, more than the
//! bridge's own work on it. Taken off the reactor, the socket's datagrams wait in the kernel
//! until the tick, which reads them all and then runs the bridge; nothing is played later than
//! before, since the bridge plays out on that same tick.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;

/// At most this many datagrams are read from one socket per tick, so a flood cannot hold the
/// call task; the rest wait for the next tick (or the kernel drops them).
const MAX_DATAGRAMS_PER_TICK: usize = 64;

pub(crate) enum MediaSocket {
    /// Registered with tokio: `recv_from` wakes the task.
    Reactor(tokio::net::UdpSocket),
    /// Non-blocking and unregistered: read with [`MediaSocket::drain`] on the tick.
    Polled(std::net::UdpSocket),
}

impl MediaSocket {
    pub fn new(socket: tokio::net::UdpSocket) -> MediaSocket {
        MediaSocket::Reactor(socket)
    }

    pub fn is_polled(&self) -> bool {
        matches!(self, MediaSocket::Polled(_))
    }

    /// Leaves the reactor; from now on datagrams are read by [`MediaSocket::drain`].
    pub fn make_polled(&mut self) -> io::Result<()> {
        if let MediaSocket::Reactor(s) = self {
            // A second descriptor for the same socket; dropping the tokio one then deregisters
            // it from epoll, so arriving datagrams no longer wake any thread.
            let fd = s.as_fd().try_clone_to_owned()?;
            let socket = std::net::UdpSocket::from(fd);
            socket.set_nonblocking(true)?;
            *self = MediaSocket::Polled(socket);
        }
        Ok(())
    }

    /// Waits for one datagram. A polled socket never completes here (use `drain`).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            MediaSocket::Reactor(s) => s.recv_from(buf).await,
            MediaSocket::Polled(_) => std::future::pending().await,
        }
    }

    /// Hands every datagram waiting now (up to a bound) to `each`, without blocking.
    pub fn drain(&self, buf: &mut [u8], mut each: impl FnMut(&[u8], SocketAddr)) {
        for _ in 0..MAX_DATAGRAMS_PER_TICK {
            let got = match self {
                MediaSocket::Reactor(s) => s.try_recv_from(buf),
                MediaSocket::Polled(s) => s.recv_from(buf),
            };
            match got {
                Ok((n, from)) => each(&buf[..n], from),
                // WouldBlock: nothing left. Other errors (ICMP port unreachable surfacing as
                // ECONNREFUSED on Linux) concern an earlier send, not this read: stop for now.
                Err(_) => return,
            }
        }
    }

    /// Sends without waiting: a UDP send only fails to go out when the socket buffer is full,
    /// and then the datagram is dropped like any late media.
    pub fn send_to(&self, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            MediaSocket::Reactor(s) => s.try_send_to(datagram, to),
            MediaSocket::Polled(s) => s.send_to(datagram, to),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_polled_socket_reads_what_waited_and_then_nothing() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut media = MediaSocket::new(socket);
        assert!(!media.is_polled());
        media.make_polled().unwrap();
        assert!(media.is_polled());
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..3u8 {
            sender.send_to(&[i; 4], addr).unwrap();
        }
        // Loopback delivery is synchronous with the send, so all three are queued now.
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        media.drain(&mut buf, |d, from| {
            assert_eq!(from, sender.local_addr().unwrap());
            got.push(d[0]);
        });
        assert_eq!(got, vec![0, 1, 2]);
        let mut again = 0;
        media.drain(&mut buf, |_, _| again += 1);
        assert_eq!(again, 0);
    }

    #[tokio::test]
    async fn draining_stops_at_the_bound_and_leaves_the_rest_queued() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut media = MediaSocket::new(socket);
        media.make_polled().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..MAX_DATAGRAMS_PER_TICK + 5 {
            sender.send_to(&[7], addr).unwrap();
        }
        let mut buf = [0u8; 64];
        let (mut first, mut second) = (0, 0);
        media.drain(&mut buf, |_, _| first += 1);
        media.drain(&mut buf, |_, _| second += 1);
        assert_eq!((first, second), (MAX_DATAGRAMS_PER_TICK, 5));
    }
}
