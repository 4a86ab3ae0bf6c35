//! One audio-only WebRTC peer (Opus, 48 kHz RTP clock, mono) for the gateway's per-call actor.
//!
//! A sans-IO wrapper around the webrtc-rs sans-IO stack (`rtc` crate, pinned in the workspace):
//! the caller owns the UDP socket and the clock, and drives the peer like `str0m`/`quinn-proto`:
//!
//! ```text
//! loop {
//!     while let Some(t) = peer.poll_transmit() { socket.send_to(&t.contents, t.destination) }
//!     while let Some(e) = peer.poll_event()    { /* Connected, AudioFrame, ... */ }
//!     let deadline = peer.poll_timeout();
//!     select! {
//!         datagram = socket.recv_from() => peer.handle_receive(now, from, &bytes),
//!         _ = sleep_until(deadline)     => peer.handle_timeout(now)?,
//!     }
//! }
//! ```
//!
//! Roles: answerer ([`WebRtcPeer::accept_offer`]) and offerer ([`WebRtcPeer::create_offer`] then
//! [`WebRtcPeer::accept_answer`]). ICE uses one host candidate: the address the caller passes in
//! [`PeerConfig::local_addr`]; optionally ICE-lite. DTLS-SRTP, BUNDLE and rtcp-mux come from the
//! stack.
//!
//! Determinism: ICE ufrag/pwd, SSRC and the first RTP sequence number derive from
//! [`PeerConfig::seed`]; the DTLS certificate can be injected as PEM
//! ([`PeerConfig::certificate_pem`], see [`generate_certificate_pem`]). The stack still draws its
//! own randomness for DTLS handshake randoms, SRTP and the ICE tie-breaker.
//!
//! Wire input never panics the caller: garbage datagrams are dropped and counted
//! ([`WebRtcPeer::stats`]); a panic inside the stack while handling a datagram is caught and turns
//! into [`PeerEvent::Failed`].

mod error;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MediaEngine, MIME_TYPE_OPUS};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

pub use error::PeerError;

/// Opus RTP clock rate (RFC 7587: always 48 kHz, whatever the codec's internal rate).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// The payload type we offer Opus on (Chrome's choice too). As answerer we use the offer's.
pub const DEFAULT_OPUS_PAYLOAD_TYPE: u8 = 111;
/// Received audio frames queued while the caller does not poll; older ones are dropped past it.
const MAX_QUEUED_EVENTS: usize = 1024;

/// How to build a [`WebRtcPeer`].
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The address of the caller's UDP socket, advertised as our only (host) ICE candidate.
    /// Must be a concrete IP (not `0.0.0.0` / `::`) and non-zero port.
    pub local_addr: SocketAddr,
    /// Run ICE-lite (RFC 8445 §2.5): we only answer connectivity checks, the browser drives.
    /// Fine for a server with a public/host address; two lite peers cannot connect.
    pub ice_lite: bool,
    /// Seed for ICE ufrag/pwd, SSRC and the first RTP sequence number. `None`: random.
    pub seed: Option<u64>,
    /// DTLS certificate (the PEM format of [`generate_certificate_pem`]). `None`: the stack
    /// generates a fresh ECDSA P-256 certificate for this peer.
    pub certificate_pem: Option<String>,
    /// Payload type used for Opus when we offer.
    pub opus_payload_type: u8,
    /// No ICE traffic from the remote for this long: [`PeerEvent::Disconnected`].
    /// `None`: the stack's default (5 s).
    pub ice_disconnected_timeout: Option<Duration>,
    /// Disconnected for this long more: [`PeerEvent::Failed`]. `None`: the stack's default (25 s).
    pub ice_failed_timeout: Option<Duration>,
}

impl PeerConfig {
    /// Defaults for a peer advertising `local_addr`: full ICE, random seed, fresh certificate.
    pub fn new(local_addr: SocketAddr) -> Self {
        PeerConfig {
            local_addr,
            ice_lite: false,
            seed: None,
            certificate_pem: None,
            opus_payload_type: DEFAULT_OPUS_PAYLOAD_TYPE,
            ice_disconnected_timeout: None,
            ice_failed_timeout: None,
        }
    }
}

/// Something the peer tells its owner. Drain with [`WebRtcPeer::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// ICE and DTLS are up; audio can flow.
    Connected,
    /// Connectivity lost (ICE consent); may come back as [`PeerEvent::Connected`].
    Disconnected,
    /// The connection failed for good; drop the peer.
    Failed,
    /// The connection was closed (by [`WebRtcPeer::close`] or the remote).
    Closed,
    /// A local ICE candidate (`candidate:...` attribute value) to trickle to the remote.
    /// Our host candidate is also already in the SDP.
    IceCandidate(String),
    /// One received Opus RTP payload. Empty payloads (Chrome's probes) are reported as they are.
    AudioFrame {
        /// The Opus packet.
        payload: Bytes,
        /// RTP timestamp (48 kHz clock).
        rtp_timestamp: u32,
        /// RTP sequence number.
        sequence: u16,
    },
}

/// One datagram to send from the caller's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub contents: Bytes,
}

/// Counters for the owner's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Datagrams given to [`WebRtcPeer::handle_receive`].
    pub datagrams_received: u64,
    /// Datagrams dropped before the stack (empty, oversized, after close or failure).
    pub datagrams_dropped: u64,
    /// Audio frames received.
    pub audio_frames_received: u64,
    /// Audio frames sent.
    pub audio_frames_sent: u64,
    /// Events dropped because the owner did not poll them.
    pub events_dropped: u64,
    /// Panics caught inside the stack while handling wire input.
    pub stack_panics: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signaling {
    /// No description exchanged yet.
    Idle,
    /// We sent an offer, waiting for the answer.
    OfferSent,
    /// Offer/answer complete.
    Stable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    New,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// One audio-only WebRTC peer. Owned by one call actor; every method takes `&mut self`.
pub struct WebRtcPeer {
    pc: RTCPeerConnection,
    local_addr: SocketAddr,
    sender_id: RTCRtpSenderId,
    ssrc: u32,
    next_sequence: u16,
    first_packet: bool,
    send_payload_type: Option<u8>,
    signaling: Signaling,
    link: Link,
    events: VecDeque<PeerEvent>,
    stats: PeerStats,
    ice_ufrag: String,
}

impl std::fmt::Debug for WebRtcPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcPeer")
            .field("local_addr", &self.local_addr)
            .field("ssrc", &self.ssrc)
            .field("signaling", &self.signaling)
            .field("link", &self.link)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Generates a self-signed ECDSA P-256 DTLS certificate as PEM, for
/// [`PeerConfig::certificate_pem`]: generate once per process (or persist) and reuse it for every
/// peer, which saves a key generation per call and gives a stable fingerprint in tests.
pub fn generate_certificate_pem() -> Result<String, PeerError> {
    let cfg = |reason: String| PeerError::InvalidConfig { reason };
    let provider = rtc::crypto::default_provider().map_err(|e| cfg(e.to_string()))?;
    let params =
        CertificateParams::new(vec!["webrtc-peer".to_owned()]).map_err(|e| cfg(e.to_string()))?;
    let cert = RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        params,
    )
    .map_err(|e| cfg(e.to_string()))?;
    cert.serialize_pem().map_err(|e| cfg(e.to_string()))
}

/// SplitMix64: tiny deterministic generator for the identifiers we choose ourselves.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` ICE characters (RFC 8839 `ice-char`: ALPHA / DIGIT / "+" / "/"); we avoid + and /.
    fn ice_string(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| {
                let i = (self.next_u64() % ALPHABET.len() as u64) as usize;
                char::from(ALPHABET[i])
            })
            .collect()
    }
}

fn opus_codec(payload_type: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: OPUS_CLOCK_RATE,
            // Opus is always "opus/48000/2" in SDP (RFC 7587); mono is the absence of stereo=1.
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

/// True when the SDP has an audio section whose rtpmap names Opus.
fn sdp_has_opus_audio(sdp: &str) -> bool {
    let mut in_audio = false;
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            // A rejected section has port 0.
            let mut fields = m.split_whitespace();
            in_audio = fields.next() == Some("audio") && fields.next() != Some("0");
        } else if in_audio {
            if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
                let encoding = rtpmap.split_whitespace().nth(1).unwrap_or("");
                if encoding.to_ascii_lowercase().starts_with("opus/48000") {
                    return true;
                }
            }
        }
    }
    false
}

fn stack_err(stage: &'static str) -> impl Fn(rtc::shared::error::Error) -> PeerError {
    move |e| PeerError::Negotiation {
        stage,
        reason: e.to_string(),
    }
}

impl WebRtcPeer {
    /// Builds a peer advertising `config.local_addr` as its host candidate. `now` is the
    /// caller's clock.
    pub fn new(now: Instant, config: PeerConfig) -> Result<Self, PeerError> {
        let cfg = |reason: String| PeerError::InvalidConfig { reason };
        if config.local_addr.ip().is_unspecified() || config.local_addr.port() == 0 {
            return Err(cfg(format!(
                "local_addr {} must be a concrete IP and port",
                config.local_addr
            )));
        }
        let seed = config.seed.unwrap_or_else(rand::random);
        let mut rng = SplitMix64(seed);
        let ice_ufrag = rng.ice_string(8);
        let ice_pwd = rng.ice_string(24);
        let ssrc = (rng.next_u64() as u32).max(1);
        let next_sequence = (rng.next_u64() & 0x7fff) as u16;

        let setting_engine = SettingEngineBuilder::new()
            .with_ice_credentials(ice_ufrag.clone(), ice_pwd)
            .with_lite(config.ice_lite)
            .with_ice_timeouts(
                config.ice_disconnected_timeout,
                config.ice_failed_timeout,
                None,
            )
            // As answerer we are DTLS server (a=setup:passive): the browser sends the
            // ClientHello once its ICE checks succeed, which also suits ICE-lite.
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .build();

        let mut media_engine = MediaEngine::default();
        media_engine
            .register_codec(opus_codec(config.opus_payload_type), RtpCodecKind::Audio)
            .map_err(|e| cfg(e.to_string()))?;
        let registry = configure_rtcp_reports(rtc::interceptor::Registry::new());

        let mut configuration = RTCConfigurationBuilder::new();
        if let Some(pem) = &config.certificate_pem {
            let provider = rtc::crypto::default_provider().map_err(|e| cfg(e.to_string()))?;
            let cert = RTCCertificate::from_pem(pem, provider.crypto())
                .map_err(|e| cfg(format!("certificate_pem: {e}")))?;
            configuration = configuration.with_certificates(vec![cert]);
        }

        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(configuration.build())
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(|e| cfg(e.to_string()))?;

        let track = MediaStreamTrack::new(
            format!("gw-{ssrc:08x}"),
            format!("gw-audio-{ssrc:08x}"),
            "gateway-audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec(config.opus_payload_type).rtp_codec,
                ..Default::default()
            }],
        );
        let sender_id = pc.add_track(track).map_err(|e| cfg(e.to_string()))?;

        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: config.local_addr.ip().to_string(),
                port: config.local_addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(|e| cfg(e.to_string()))?;
        let host_init = RTCIceCandidate::from(&host)
            .to_json()
            .map_err(|e| cfg(e.to_string()))?;
        pc.add_local_candidate(host_init)
            .map_err(|e| cfg(e.to_string()))?;
        // Host candidates only: gathering is complete (the SDP gets a=end-of-candidates).
        pc.add_local_candidate(RTCIceCandidateInit::default())
            .map_err(|e| cfg(e.to_string()))?;

        let mut peer = WebRtcPeer {
            pc,
            local_addr: config.local_addr,
            sender_id,
            ssrc,
            next_sequence,
            first_packet: true,
            send_payload_type: None,
            signaling: Signaling::Idle,
            link: Link::New,
            events: VecDeque::new(),
            stats: PeerStats::default(),
            ice_ufrag,
        };
        peer.pump();
        Ok(peer)
    }

    /// Offerer role: creates our SDP offer (audio sendrecv, Opus) and applies it locally.
    pub fn create_offer(&mut self, now: Instant) -> Result<String, PeerError> {
        if self.signaling != Signaling::Idle {
            return Err(PeerError::WrongState {
                operation: "create_offer",
                reason: format!("signaling is {:?}", self.signaling),
            });
        }
        let offer = self
            .pc
            .create_offer(None)
            .map_err(stack_err("create_offer"))?;
        self.pc
            .set_local_description(now, offer)
            .map_err(stack_err("set_local_description"))?;
        self.signaling = Signaling::OfferSent;
        self.pump();
        self.local_sdp()
    }

    /// Answerer role: applies the remote offer and returns our SDP answer.
    pub fn accept_offer(&mut self, now: Instant, sdp: &str) -> Result<String, PeerError> {
        if self.signaling != Signaling::Idle {
            return Err(PeerError::WrongState {
                operation: "accept_offer",
                reason: format!("signaling is {:?}", self.signaling),
            });
        }
        let offer =
            RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| PeerError::InvalidSdp {
                kind: "offer",
                reason: e.to_string(),
            })?;
        if !sdp_has_opus_audio(sdp) {
            return Err(PeerError::NoCommonCodec);
        }
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| PeerError::InvalidSdp {
                kind: "offer",
                reason: e.to_string(),
            })?;
        let answer = self
            .pc
            .create_answer(None)
            .map_err(stack_err("create_answer"))?;
        self.pc
            .set_local_description(now, answer)
            .map_err(stack_err("set_local_description"))?;
        self.signaling = Signaling::Stable;
        self.pump();
        let answer = self.local_sdp()?;
        if !sdp_has_opus_audio(&answer) {
            return Err(PeerError::NoCommonCodec);
        }
        Ok(answer)
    }

    /// Offerer role: applies the remote answer to our offer.
    pub fn accept_answer(&mut self, now: Instant, sdp: &str) -> Result<(), PeerError> {
        if self.signaling != Signaling::OfferSent {
            return Err(PeerError::WrongState {
                operation: "accept_answer",
                reason: format!("signaling is {:?}", self.signaling),
            });
        }
        let answer =
            RTCSessionDescription::answer(sdp.to_owned()).map_err(|e| PeerError::InvalidSdp {
                kind: "answer",
                reason: e.to_string(),
            })?;
        if !sdp_has_opus_audio(sdp) {
            return Err(PeerError::NoCommonCodec);
        }
        self.pc
            .set_remote_description(now, answer)
            .map_err(|e| PeerError::InvalidSdp {
                kind: "answer",
                reason: e.to_string(),
            })?;
        self.signaling = Signaling::Stable;
        self.pump();
        Ok(())
    }

    /// Adds a trickled remote ICE candidate: `candidate:...`, `a=candidate:...` or the bare
    /// value. An empty string (end of candidates) is accepted and ignored.
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), PeerError> {
        let value = candidate.trim();
        let value = value.strip_prefix("a=").unwrap_or(value);
        if value.is_empty() {
            return Ok(());
        }
        if self.signaling == Signaling::Idle {
            return Err(PeerError::WrongState {
                operation: "add_remote_candidate",
                reason: "no remote description yet".to_owned(),
            });
        }
        let init = RTCIceCandidateInit {
            candidate: value.to_owned(),
            sdp_mline_index: Some(0),
            ..Default::default()
        };
        self.pc
            .add_remote_candidate(init)
            .map_err(|e| PeerError::InvalidCandidate {
                reason: e.to_string(),
            })?;
        self.pump();
        Ok(())
    }

    /// Feeds one datagram received on the caller's socket from `from`. Never fails: anything
    /// the stack cannot use is dropped (and counted).
    pub fn handle_receive(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        if bytes.is_empty()
            || bytes.len() > 65_535
            || matches!(self.link, Link::Failed | Link::Closed)
        {
            self.stats.datagrams_dropped += 1;
            return;
        }
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(bytes),
        };
        let pc = &mut self.pc;
        match catch_unwind(AssertUnwindSafe(|| pc.handle_read(msg))) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => self.stats.datagrams_dropped += 1,
            Err(_) => {
                self.stats.stack_panics += 1;
                self.set_link(Link::Failed);
                return;
            }
        }
        self.pump();
    }

    /// Tells the peer that time `now` has come (call at or after [`Self::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PeerError> {
        if matches!(self.link, Link::Failed | Link::Closed) {
            return Ok(());
        }
        self.pc.handle_timeout(now).map_err(|e| PeerError::Stack {
            reason: e.to_string(),
        })?;
        self.pump();
        Ok(())
    }

    /// Next datagram to send from the caller's socket.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let out = self.pc.poll_write()?;
        Some(Transmit {
            destination: out.transport.peer_addr,
            contents: out.message.freeze(),
        })
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if matches!(self.link, Link::Failed | Link::Closed) {
            return None;
        }
        self.pc.poll_timeout()
    }

    /// Next event for the owner.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        if self.events.is_empty() {
            self.pump();
        }
        self.events.pop_front()
    }

    /// Sends one Opus packet (one RTP packet) with the given RTP timestamp (48 kHz clock:
    /// +960 per 20 ms). Sequence numbers, SSRC and payload type are ours.
    pub fn send_audio(
        &mut self,
        now: Instant,
        opus_payload: &[u8],
        rtp_timestamp: u32,
    ) -> Result<(), PeerError> {
        if self.link != Link::Connected {
            return Err(PeerError::NotConnected);
        }
        let payload_type = self.negotiated_payload_type()?;
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker: self.first_packet,
                payload_type,
                sequence_number: self.next_sequence,
                timestamp: rtp_timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(opus_payload),
        };
        let mut sender = self.pc.rtp_sender(self.sender_id).ok_or(PeerError::Send {
            reason: "audio sender is gone".to_owned(),
        })?;
        sender.write_rtp(now, packet).map_err(|e| PeerError::Send {
            reason: e.to_string(),
        })?;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.first_packet = false;
        self.stats.audio_frames_sent += 1;
        Ok(())
    }

    /// Closes the peer (DTLS close_notify is queued: drain [`Self::poll_transmit`] once more).
    pub fn close(&mut self) {
        if self.link == Link::Closed {
            return;
        }
        let _ = self.pc.close();
        self.pump();
        self.set_link(Link::Closed);
    }

    /// True between [`PeerEvent::Connected`] and a disconnect/failure/close.
    pub fn is_connected(&self) -> bool {
        self.link == Link::Connected
    }

    /// Our current local SDP (offer or answer), if any.
    pub fn local_description(&self) -> Option<String> {
        self.pc.local_description().map(|d| d.sdp)
    }

    /// The address advertised as our host candidate.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Our RTP SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Our ICE username fragment (e.g. to route STUN by ufrag on a shared socket).
    pub fn ice_ufrag(&self) -> &str {
        &self.ice_ufrag
    }

    /// Counters.
    pub fn stats(&self) -> PeerStats {
        self.stats
    }

    fn local_sdp(&self) -> Result<String, PeerError> {
        self.local_description().ok_or(PeerError::Negotiation {
            stage: "local_description",
            reason: "no local description after applying it".to_owned(),
        })
    }

    fn negotiated_payload_type(&mut self) -> Result<u8, PeerError> {
        if let Some(pt) = self.send_payload_type {
            return Ok(pt);
        }
        let mut sender = self.pc.rtp_sender(self.sender_id).ok_or(PeerError::Send {
            reason: "audio sender is gone".to_owned(),
        })?;
        let pt = sender
            .get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS))
            .map(|c| c.payload_type)
            .ok_or(PeerError::NoCommonCodec)?;
        self.send_payload_type = Some(pt);
        Ok(pt)
    }

    fn push_event(&mut self, event: PeerEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            // Drop the oldest audio frame rather than a state change.
            if let Some(i) = self
                .events
                .iter()
                .position(|e| matches!(e, PeerEvent::AudioFrame { .. }))
            {
                self.events.remove(i);
            } else {
                self.events.pop_front();
            }
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    fn set_link(&mut self, link: Link) {
        if self.link == link || self.link == Link::Closed {
            return;
        }
        if self.link == Link::Failed && link != Link::Closed {
            return;
        }
        self.link = link;
        let event = match link {
            Link::New => return,
            Link::Connected => PeerEvent::Connected,
            Link::Disconnected => PeerEvent::Disconnected,
            Link::Failed => PeerEvent::Failed,
            Link::Closed => PeerEvent::Closed,
        };
        self.push_event(event);
    }

    /// Moves the stack's events and received media into our queue.
    fn pump(&mut self) {
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected => self.set_link(Link::Connected),
                    RTCPeerConnectionState::Disconnected => self.set_link(Link::Disconnected),
                    RTCPeerConnectionState::Failed => self.set_link(Link::Failed),
                    RTCPeerConnectionState::Closed => self.set_link(Link::Closed),
                    _ => {}
                },
                RTCPeerConnectionEvent::OnIceCandidateEvent(ice) => {
                    if let Ok(init) = ice.candidate.to_json() {
                        if !init.candidate.is_empty() {
                            self.push_event(PeerEvent::IceCandidate(init.candidate));
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_track, packet) = message {
                self.stats.audio_frames_received += 1;
                self.push_event(PeerEvent::AudioFrame {
                    payload: packet.payload,
                    rtp_timestamp: packet.header.timestamp,
                    sequence: packet.header.sequence_number,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_detection_in_sdp() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(sdp_has_opus_audio(sdp));
        let pcmu = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert!(!sdp_has_opus_audio(pcmu));
        let rejected = "v=0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(!sdp_has_opus_audio(rejected));
        let video = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(!sdp_has_opus_audio(video));
    }

    #[test]
    fn seeded_identifiers_are_stable() {
        let mut a = SplitMix64(7);
        let mut b = SplitMix64(7);
        assert_eq!(a.ice_string(8), b.ice_string(8));
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(PeerError::NotConnected.code(), "webrtc.not_connected");
        assert_eq!(PeerError::NoCommonCodec.code(), "webrtc.no_common_codec");
        assert_eq!(
            PeerError::InvalidSdp {
                kind: "offer",
                reason: String::new()
            }
            .code(),
            "webrtc.invalid_sdp"
        );
    }
}
