//! RTP port allocation for carrier media (the configurable port range of issue 3).
//!
//! RTP takes an even port and RTCP the next odd one (RFC 3550 §11); both are bound so another
//! process cannot take the RTCP half. Ports are handed out round-robin so a port just freed is
//! not reused at once (late packets of the old call would land in the new one).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum RtpPortError {
    #[error("no free RTP port pair in {min}..={max}")]
    Exhausted { min: u16, max: u16 },
}

impl RtpPortError {
    pub fn code(&self) -> &'static str {
        "media.rtp_ports_exhausted"
    }
}

#[derive(Debug)]
struct Inner {
    next: u16,
    in_use: HashSet<u16>,
}

/// Shared by the calls of one node; cheap to clone.
#[derive(Debug, Clone)]
pub struct RtpPorts {
    bind: IpAddr,
    min: u16,
    max: u16,
    inner: Arc<Mutex<Inner>>,
}

/// A bound RTP/RTCP pair, returned to the pool when dropped.
#[derive(Debug)]
pub struct RtpPortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    port: u16,
    owner: RtpPorts,
}

impl RtpPortPair {
    pub fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.owner.bind, self.port)
    }
}

impl Drop for RtpPortPair {
    fn drop(&mut self) {
        let mut inner = self.owner.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.in_use.remove(&self.port);
    }
}

impl RtpPorts {
    /// `min..=max` is rounded inward to even RTP ports with room for RTCP.
    pub fn new(bind: IpAddr, min: u16, max: u16) -> RtpPorts {
        let min = min.checked_next_multiple_of(2).unwrap_or(u16::MAX - 1);
        RtpPorts {
            bind,
            min,
            max,
            inner: Arc::new(Mutex::new(Inner {
                next: min,
                in_use: HashSet::new(),
            })),
        }
    }

    pub fn in_use(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_use
            .len()
    }

    pub fn allocate(&self) -> Result<RtpPortPair, RtpPortError> {
        let exhausted = RtpPortError::Exhausted {
            min: self.min,
            max: self.max,
        };
        if self.max < self.min.saturating_add(1) {
            return Err(exhausted);
        }
        // Whole RTP/RTCP pairs that fit: an RTP port needs its RTCP port inside the range.
        let pairs = usize::from((self.max - self.min).div_ceil(2));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..pairs {
            let port = inner.next;
            inner.next = if port.saturating_add(3) > self.max {
                self.min
            } else {
                port + 2
            };
            if inner.in_use.contains(&port) {
                continue;
            }
            // Taken by another process: skip it, try the next pair.
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.bind, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.bind, port + 1)) else {
                continue;
            };
            inner.in_use.insert(port);
            drop(inner);
            return Ok(RtpPortPair {
                rtp,
                rtcp,
                port,
                owner: self.clone(),
            });
        }
        Err(exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_range(len: u16) -> u16 {
        // Find `len` consecutive free ports starting at an even number.
        'outer: for start in (40_000..60_000u16).step_by(64) {
            let mut held = Vec::new();
            for p in start..start + len {
                match UdpSocket::bind(("127.0.0.1", p)) {
                    Ok(s) => held.push(s),
                    Err(_) => continue 'outer,
                }
            }
            return start;
        }
        panic!("no free port range");
    }

    #[test]
    fn hands_out_even_pairs_round_robin_and_reuses_after_drop() {
        let start = free_range(6);
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), start, start + 5);
        let a = ports.allocate().unwrap();
        let b = ports.allocate().unwrap();
        let c = ports.allocate().unwrap();
        let got: Vec<u16> = [&a, &b, &c].iter().map(|p| p.rtp_addr().port()).collect();
        assert_eq!(got, [start, start + 2, start + 4]);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), start + 1);
        assert!(matches!(
            ports.allocate(),
            Err(RtpPortError::Exhausted { .. })
        ));
        drop(b);
        assert_eq!(ports.in_use(), 2);
        assert_eq!(ports.allocate().unwrap().rtp_addr().port(), start + 2);
    }

    #[test]
    fn odd_bounds_round_inward_and_a_taken_port_is_skipped() {
        let start = free_range(6);
        let squatter = UdpSocket::bind(("127.0.0.1", start + 2)).unwrap();
        let ports = RtpPorts::new("127.0.0.1".parse().unwrap(), start + 1, start + 5);
        // start+1 rounds up to start+2, which another socket holds: next pair.
        assert_eq!(ports.allocate().unwrap().rtp_addr().port(), start + 4);
        drop(squatter);
        let empty = RtpPorts::new("127.0.0.1".parse().unwrap(), start + 4, start + 4);
        assert!(empty.allocate().is_err());
    }
}
