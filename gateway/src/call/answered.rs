//! An inbound call from the moment a manager accepts until it ends.
//!
//! The manager's browser sent a WebRTC offer with its accept. We answer it, wait until the
//! WebRTC path is up, and only then send the carrier its 200 OK with our SDP answer (so the
//! caller is never connected to silence), retransmitting it until the ACK (RFC 3261
//! §13.3.1.4). Media then flows through the [`PhoneBridge`]; the call ends on a BYE from the
//! carrier, a hang-up from the manager, carrier media inactivity, or a failed WebRTC path.
//!
//! This is a thin driver: the dialog, the 2xx retransmitter, the bridge and the WebRTC peer
//! are sans-IO cores; this loop only moves datagrams, deadlines and messages between them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use media::bridge::{BridgeConfig, BridgeOutput, BridgeStats, LegId, PhoneBridge, PRIMARY_LEG};
use media::g711::G711Law;
use media::mixer::MAX_PARTICIPANTS;
use rand::Rng;
use schemas::ws::ServerMessage;
use sip::dialog::Dialog;
use sip::endpoint::Peer;
use sip::message;
use sip::sdp;
use sip::session_timer::{Refresher, SessionExpires, SessionTimer, SessionTimerAction};
use sip::uas_2xx::{TwoXxAction, TwoXxRetransmitter};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use webrtc_peer::{PeerConfig, PeerEvent, WebRtcPeer};

use super::inbound::Ctx;
use super::media_socket::MediaSocket;
use super::CallInput;
use crate::db;
use crate::recording::{FinishedRecording, Recorder};
use crate::sip_service::service::unix_ms;
use crate::sip_service::SipCommand;

/// How long the browser has to complete ICE and DTLS after accepting.
const WEBRTC_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Opus toward the browser: wideband speech is not needed for an 8 kHz phone leg.
const OPUS_BITRATE_BPS: u32 = 24_000;
const OPUS_COMPLEXITY: u8 = 5;
/// How often a call adds its media counters to `/metrics`.
const METRICS_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// The grid that calls' 20 ms media ticks start on (see [`carrier_bridge`]).
const TICK_GRID: Duration = Duration::from_millis(5);

/// The first grid instant at or after `now`, the grid being counted from `origin`.
fn next_grid_instant(origin: Instant, now: Instant) -> Instant {
    let grid_us = TICK_GRID.as_micros();
    let since_us = now.saturating_duration_since(origin).as_micros();
    let at_us = since_us.div_ceil(grid_us) * grid_us;
    origin + Duration::from_micros(u64::try_from(at_us).unwrap_or(u64::MAX))
}

/// The bridge for a negotiated carrier codec, with random SSRC, first sequence number and
/// timestamps (RFC 3550 §5.1). Shared by inbound and outbound calls.
///
/// Its ticks start on a 5 ms grid shared by every call of the node (`tick_origin`), so the
/// runtime's timer wakes once for all the calls due in the same slot instead of once per
/// call.
pub(crate) fn carrier_bridge(
    codec: (u8, sdp::Codec),
    telephone_event_pt: Option<u8>,
    ptime_ms: u32,
    tick_origin: Instant,
    now: Instant,
) -> Result<PhoneBridge, media::bridge::BridgeError> {
    let mut rng = rand::thread_rng();
    let law = match codec.1 {
        sdp::Codec::Pcmu => G711Law::Ulaw,
        sdp::Codec::Pcma => G711Law::Alaw,
    };
    PhoneBridge::new(
        BridgeConfig {
            law,
            carrier_payload_type: codec.0,
            carrier_dtmf_payload_type: telephone_event_pt,
            carrier_ptime_ms: ptime_ms,
            opus_bitrate_bps: OPUS_BITRATE_BPS,
            opus_complexity: OPUS_COMPLEXITY,
            record: true,
            carrier_ssrc: rng.gen(),
            carrier_first_sequence: rng.gen(),
            carrier_first_timestamp: rng.gen(),
            browser_first_timestamp: rng.gen(),
        },
        next_grid_instant(tick_origin, now),
    )
}

/// Why the call ended, as stored on the call record and sent to the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    CustomerHungUp,
    ManagerHungUp,
    MediaTimeout,
    MediaFailed,
    AckTimeout,
    /// RFC 4028: the session was not refreshed in time.
    SessionExpired,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CustomerHungUp => "customer_hung_up",
            EndReason::ManagerHungUp => "manager_hung_up",
            EndReason::MediaTimeout => "media_timeout",
            EndReason::MediaFailed => "media_failed",
            EndReason::AckTimeout => "ack_timeout",
            EndReason::SessionExpired => "session_expired",
        }
    }
}

/// What the ringing phase hands over.
pub struct Accepted<'a> {
    pub manager_id: String,
    pub browser_offer: String,
    pub consultation_id: &'a str,
    pub record: &'a db::CallRecord,
    pub dialog: Dialog,
}

/// An outgoing call (we are the UAC) whose 2xx was just ACKed: the cores the dialling phase
/// built (WebRTC peer already connected, bridge possibly running since early media) move
/// into the same in-call driver as an inbound call. `ctx.call.request` is the INVITE the 2xx
/// answered and `ctx.call.peer` the carrier's proxy.
pub struct UacConnected<'a> {
    pub manager_id: String,
    pub consultation_id: &'a str,
    pub record: &'a db::CallRecord,
    pub dialog: Dialog,
    pub peer: WebRtcPeer,
    pub webrtc_socket: UdpSocket,
    pub carrier_socket: UdpSocket,
    pub ports: crate::rtp_ports::RtpPortPair,
    pub bridge: PhoneBridge,
    pub carrier_remote: SocketAddr,
    pub local_media: sdp::LocalMedia,
    /// What the carrier's answer allows us (RFC 3264 §6.1).
    pub direction: sdp::Direction,
    /// The INVITE's CSeq and the ACK we sent for its 2xx: a retransmitted 2xx is ACKed again
    /// (RFC 3261 §13.2.2.4).
    pub invite_cseq: u32,
    pub ack: bytes::Bytes,
    pub answered_at: Instant,
}

/// The in-call phase of an outgoing call: same behaviour as an inbound call once answered
/// (BYE either side, hold re-INVITE, DTMF, media timeout, session refresh).
pub(crate) async fn run_uac(
    ctx: &Ctx,
    rx: &mut mpsc::Receiver<CallInput>,
    c: UacConnected<'_>,
) -> (anyhow::Result<Outcome>, Option<FinishedRecording>) {
    let mut call = InCall {
        ctx,
        peer: c.peer,
        webrtc_socket: MediaSocket::new(c.webrtc_socket),
        carrier_socket: MediaSocket::new(c.carrier_socket),
        carrier_remote: Some(c.carrier_remote),
        bridge: Some(c.bridge),
        retransmit: None,
        dialog: c.dialog,
        manager_id: c.manager_id,
        consultation_id: c.consultation_id.to_string(),
        answered_at: Some(c.answered_at),
        local_rtp: SocketAddr::new(
            ctx.state.config.media.advertised_address,
            c.ports.rtp_addr().port(),
        ),
        local_media: Some(c.local_media),
        send_to_carrier: true,
        carrier_inactive: false,
        session_timer: None,
        uac_ack: Some((c.invite_cseq, c.ack)),
        conference: Conference::new(c.record),
        published: BridgeStats::default(),
        next_publish_at: Instant::now() + METRICS_PUBLISH_INTERVAL,
        recorder: None,
        recording: None,
    };
    call.apply_direction(c.direction);
    // Recorded from the answer on (the early media before it is not part of the call).
    call.start_recording(&c.record.id).await;
    let _ports = c.ports;
    let outcome = call.drive(rx, c.record).await;
    let outcome = call.finish(outcome).await;
    (outcome, call.recording.take())
}

/// How the call went after the accept.
pub enum Outcome {
    /// Connected and later ended.
    Ended(EndReason),
    /// A manager in the call ended it for everyone (or was the last to leave): who.
    EndedByManager { manager_id: String },
    /// The caller hung up before the WebRTC path was up (answered 487 by the caller).
    CancelledBeforeConnect,
}

/// The in-call phase of an inbound call the manager accepted; the outcome, and the call's
/// recording when it got as far as the answer.
pub(crate) async fn run(
    ctx: &Ctx,
    rx: &mut mpsc::Receiver<CallInput>,
    accepted: Accepted<'_>,
) -> (anyhow::Result<Outcome>, Option<FinishedRecording>) {
    let record = accepted.record;
    // The port pair stays bound for the whole call.
    let (mut call, _ports) = match accept(ctx, accepted).await {
        Ok(c) => c,
        Err(e) => return (Err(e), None),
    };
    let outcome = call.drive(rx, record).await;
    let outcome = call.finish(outcome).await;
    (outcome, call.recording.take())
}

/// A call's two media legs before they carry audio: the carrier's RTP port pair and socket,
/// and the browser's WebRTC socket and ICE-lite peer (advertising the configured address).
pub(crate) struct MediaLegs {
    pub ports: crate::rtp_ports::RtpPortPair,
    pub carrier_socket: UdpSocket,
    pub webrtc_socket: UdpSocket,
    pub peer: WebRtcPeer,
}

impl MediaLegs {
    pub async fn open(state: &crate::state::AppState, now: Instant) -> anyhow::Result<MediaLegs> {
        let media_cfg = &state.config.media;
        let ports = state.rtp_ports.allocate().context("allocating RTP ports")?;
        let carrier_socket = UdpSocket::from_std({
            ports.rtp.set_nonblocking(true)?;
            ports.rtp.try_clone()?
        })?;
        let webrtc_socket = UdpSocket::bind(SocketAddr::new(media_cfg.bind_address, 0)).await?;
        let webrtc_addr = SocketAddr::new(
            media_cfg.advertised_address,
            webrtc_socket.local_addr()?.port(),
        );
        let peer = WebRtcPeer::new(
            now,
            PeerConfig {
                ice_lite: true,
                certificate_pem: Some(state.webrtc_certificate.clone()),
                ..PeerConfig::new(webrtc_addr)
            },
        )?;
        Ok(MediaLegs {
            ports,
            carrier_socket,
            webrtc_socket,
            peer,
        })
    }
}

/// Answers the browser's offer and builds the in-call driver; the carrier is answered once
/// the browser connects.
async fn accept<'c>(
    ctx: &'c Ctx,
    accepted: Accepted<'_>,
) -> anyhow::Result<(InCall<'c>, crate::rtp_ports::RtpPortPair)> {
    let state = &ctx.state;
    let media_cfg = &state.config.media;
    let now = Instant::now();
    let MediaLegs {
        ports,
        carrier_socket,
        webrtc_socket,
        mut peer,
    } = MediaLegs::open(state, now).await?;
    let answer = peer.accept_offer(now, &accepted.browser_offer)?;
    state.hub.send(
        &accepted.manager_id,
        &ServerMessage::CallAnswered {
            consultation_id: accepted.consultation_id.to_string(),
            sdp_answer: answer,
        },
    );

    let call = InCall {
        ctx,
        peer,
        webrtc_socket: MediaSocket::new(webrtc_socket),
        carrier_socket: MediaSocket::new(carrier_socket),
        carrier_remote: None,
        bridge: None,
        retransmit: None,
        dialog: accepted.dialog,
        manager_id: accepted.manager_id,
        consultation_id: accepted.consultation_id.to_string(),
        answered_at: None,
        local_rtp: SocketAddr::new(media_cfg.advertised_address, ports.rtp_addr().port()),
        local_media: None,
        send_to_carrier: true,
        carrier_inactive: false,
        session_timer: None,
        uac_ack: None,
        conference: Conference::new(accepted.record),
        published: BridgeStats::default(),
        next_publish_at: now + METRICS_PUBLISH_INTERVAL,
        recorder: None,
        recording: None,
    };
    Ok((call, ports))
}

/// A manager invited into the call: their own WebRTC peer and UDP socket; datagrams reach the
/// driver through [`Conference::rx`] from a reader task.
struct ManagerLeg {
    manager_id: String,
    id: LegId,
    peer: WebRtcPeer,
    socket: Arc<UdpSocket>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for ManagerLeg {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A manager invited into the call who has not joined yet.
struct Invite {
    manager_id: String,
    invited_by: String,
    expires_at: Instant,
}

/// The meet around the call: managers invited, managers joined (besides the first one).
struct Conference {
    meet_id: String,
    channel_id: String,
    caller: Option<String>,
    /// False once the answering manager left only themselves.
    primary_present: bool,
    legs: Vec<ManagerLeg>,
    invited: Vec<Invite>,
    tx: mpsc::Sender<(LegId, SocketAddr, Vec<u8>)>,
    rx: mpsc::Receiver<(LegId, SocketAddr, Vec<u8>)>,
    /// Who ended the call for everyone.
    ended_by: Option<String>,
}

impl Conference {
    fn new(record: &db::CallRecord) -> Conference {
        let (tx, rx) = mpsc::channel(256);
        let caller = match record.direction {
            db::Direction::Inbound => &record.from_number,
            _ => &record.to_number,
        };
        Conference {
            meet_id: record.meet_id.clone(),
            channel_id: record.channel_id.clone(),
            caller: (!caller.is_empty()).then(|| caller.clone()),
            primary_present: true,
            legs: Vec::new(),
            invited: Vec::new(),
            tx,
            rx,
            ended_by: None,
        }
    }
}

struct InCall<'c> {
    ctx: &'c Ctx,
    peer: WebRtcPeer,
    webrtc_socket: MediaSocket,
    carrier_socket: MediaSocket,
    /// Where carrier RTP goes: the SDP address first, then wherever the carrier's RTP really
    /// comes from (symmetric RTP, RFC 4961), which is what works through NAT.
    carrier_remote: Option<SocketAddr>,
    bridge: Option<PhoneBridge>,
    retransmit: Option<TwoXxRetransmitter>,
    dialog: Dialog,
    manager_id: String,
    consultation_id: String,
    answered_at: Option<Instant>,
    local_rtp: SocketAddr,
    /// Our side of the carrier's offer/answer, reused (with a newer version) for re-INVITEs.
    local_media: Option<sdp::LocalMedia>,
    /// False while the carrier holds the call with `a=sendonly`/`inactive` (RFC 3264 §8.4):
    /// we then must not send RTP.
    send_to_carrier: bool,
    /// True while the carrier's stream is `inactive`: no RTP is expected, so no media timeout.
    carrier_inactive: bool,
    session_timer: Option<SessionTimer>,
    /// Outgoing calls only: the INVITE's CSeq and our ACK for its 2xx (sent again when the
    /// carrier retransmits the 2xx). `None` on inbound calls.
    uac_ack: Option<(u32, bytes::Bytes)>,
    conference: Conference,
    /// The bridge counters as last added to the node's [`crate::media_metrics`].
    published: BridgeStats,
    next_publish_at: Instant,
    /// The call's recording while it runs (from the answer), and once finished.
    recorder: Option<Recorder>,
    recording: Option<FinishedRecording>,
}

impl InCall<'_> {
    async fn drive(
        &mut self,
        rx: &mut mpsc::Receiver<CallInput>,
        record: &db::CallRecord,
    ) -> anyhow::Result<Outcome> {
        let connect_deadline = Instant::now() + WEBRTC_CONNECT_TIMEOUT;
        let mut carrier_buf = vec![0u8; 2048];
        let mut webrtc_buf = vec![0u8; 2048];
        loop {
            // Outputs of the cores first, then wait for the next input or deadline.
            if let Some(end) = self.pump(record).await? {
                return Ok(end);
            }
            let now = Instant::now();
            if self.answered_at.is_none() && now >= connect_deadline {
                anyhow::bail!("the browser's WebRTC connection did not come up in time");
            }
            if let Some(reason) = self.media_timed_out(now) {
                self.hang_up(reason).await;
                return Ok(Outcome::Ended(reason));
            }
            // Once audio flows, the sockets are read on the media tick instead of per datagram
            // (see `media_socket`); until then every handshake packet is answered at once.
            if self.answered_at.is_some() && !self.carrier_socket.is_polled() {
                self.carrier_socket.make_polled()?;
                self.webrtc_socket.make_polled()?;
            }
            let deadline = self.next_deadline(connect_deadline);
            tokio::select! {
                r = self.carrier_socket.recv_from(&mut carrier_buf) => {
                    if let Ok((n, from)) = r {
                        self.carrier_datagram(from, &carrier_buf[..n]);
                    }
                }
                r = self.webrtc_socket.recv_from(&mut webrtc_buf) => {
                    if let Ok((n, from)) = r {
                        self.webrtc_datagram(from, &webrtc_buf[..n]);
                    }
                }
                Some((id, from, data)) = self.conference.rx.recv() => {
                    if let Some(leg) = self.conference.legs.iter_mut().find(|l| l.id == id) {
                        leg.peer.handle_receive(Instant::now(), from, &data);
                    }
                }
                input = rx.recv() => {
                    let Some(input) = input else { anyhow::bail!("call queue closed") };
                    if let Some(outcome) = self.handle_input(input).await? {
                        return Ok(outcome);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    self.drain_sockets(&mut carrier_buf, &mut webrtc_buf);
                    let now = Instant::now();
                    self.peer.handle_timeout(now).ok();
                    for leg in &mut self.conference.legs {
                        leg.peer.handle_timeout(now).ok();
                    }
                    if let Some(bridge) = self.bridge.as_mut() {
                        bridge.handle_timeout(now)?;
                    }
                    self.expire_invites(now);
                    if now >= self.next_publish_at {
                        self.next_publish_at = now + METRICS_PUBLISH_INTERVAL;
                        self.publish_media_counters();
                    }
                    match self.session_timer.as_mut().and_then(|t| t.handle_timeout(now)) {
                        Some(SessionTimerAction::Expired) => {
                            self.hang_up(EndReason::SessionExpired).await;
                            return Ok(Outcome::Ended(EndReason::SessionExpired));
                        }
                        Some(SessionTimerAction::SendRefresh) => self.send_refresh().await,
                        None => {}
                    }
                    if let Some(r) = self.retransmit.as_mut() {
                        match r.handle_timeout(now) {
                            Some(TwoXxAction::Retransmit(bytes)) => {
                                let peer = self.reply_peer();
                                let _ = self.ctx.sip.send(SipCommand::SendRaw { peer, bytes }).await;
                            }
                            Some(TwoXxAction::GiveUp) => {
                                // §13.3.1.4: no ACK for 64·T1 — end the session with a BYE.
                                self.hang_up(EndReason::AckTimeout).await;
                                return Ok(Outcome::Ended(EndReason::AckTimeout));
                            }
                            None => {}
                        }
                    }
                }
            }
        }
    }

    fn carrier_datagram(&mut self, from: SocketAddr, datagram: &[u8]) {
        if let Some(bridge) = self.bridge.as_mut() {
            // Latch onto the carrier's real source (RFC 4961 symmetric RTP).
            self.carrier_remote = Some(from);
            bridge.handle_carrier_packet(Instant::now(), datagram);
        }
    }

    fn webrtc_datagram(&mut self, from: SocketAddr, datagram: &[u8]) {
        if self.conference.primary_present {
            self.peer.handle_receive(Instant::now(), from, datagram);
        }
    }

    /// Everything that waited on the polled sockets since the last tick, in arrival order
    /// per socket.
    fn drain_sockets(&mut self, carrier_buf: &mut [u8], webrtc_buf: &mut [u8]) {
        let now = Instant::now();
        let (bridge, remote) = (&mut self.bridge, &mut self.carrier_remote);
        self.carrier_socket.drain(carrier_buf, |datagram, from| {
            if let Some(bridge) = bridge.as_mut() {
                *remote = Some(from);
                bridge.handle_carrier_packet(now, datagram);
            }
        });
        let (peer, present) = (&mut self.peer, self.conference.primary_present);
        self.webrtc_socket.drain(webrtc_buf, |datagram, from| {
            if present {
                peer.handle_receive(now, from, datagram);
            }
        });
    }

    fn next_deadline(&mut self, connect_deadline: Instant) -> Instant {
        let mut at = Instant::now() + Duration::from_secs(1);
        let candidates = [
            self.peer.poll_timeout(),
            self.bridge.as_ref().map(PhoneBridge::poll_timeout),
            self.retransmit
                .as_ref()
                .and_then(TwoXxRetransmitter::poll_timeout),
            self.session_timer.as_ref().map(SessionTimer::poll_timeout),
            self.answered_at.is_none().then_some(connect_deadline),
        ];
        for c in candidates.into_iter().flatten() {
            at = at.min(c);
        }
        for leg in &mut self.conference.legs {
            if let Some(t) = leg.peer.poll_timeout() {
                at = at.min(t);
            }
        }
        for invite in &self.conference.invited {
            at = at.min(invite.expires_at);
        }
        at
    }

    /// Invites nobody took up in time: the invitee's console drops it, the inviter hears why.
    fn expire_invites(&mut self, now: Instant) {
        if !self.conference.invited.iter().any(|i| now >= i.expires_at) {
            return;
        }
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.conference.invited)
            .into_iter()
            .partition(|i| now >= i.expires_at);
        self.conference.invited = live;
        for invite in expired {
            self.ctx.state.hub.send(
                &invite.manager_id,
                &ServerMessage::MeetInviteExpired {
                    consultation_id: self.consultation_id.clone(),
                },
            );
            self.error_to(
                &invite.invited_by,
                "meet.invite_expired",
                format!(
                    "manager {} did not join within {} s",
                    invite.manager_id,
                    self.ctx.state.config.meet_invite_timeout.as_secs_f32()
                ),
            );
        }
    }

    fn media_timed_out(&self, now: Instant) -> Option<EndReason> {
        let answered = self.answered_at?;
        if self.carrier_inactive {
            return None;
        }
        let last = self
            .bridge
            .as_ref()
            .and_then(PhoneBridge::last_carrier_packet_at)
            .unwrap_or(answered);
        (now.saturating_duration_since(last) >= self.ctx.state.config.media.inactivity_timeout)
            .then_some(EndReason::MediaTimeout)
    }

    /// Moves what the cores produced: WebRTC datagrams, bridge packets and frames, events.
    async fn pump(&mut self, record: &db::CallRecord) -> anyhow::Result<Option<Outcome>> {
        self.flush_peer().await;
        while let Some(ev) = self.peer.poll_event() {
            match ev {
                PeerEvent::Connected if self.answered_at.is_none() => {
                    self.connect_carrier(record).await?
                }
                PeerEvent::AudioFrame {
                    payload,
                    rtp_timestamp,
                    sequence,
                } => {
                    if let Some(bridge) = self.bridge.as_mut() {
                        bridge.handle_browser_audio(
                            Instant::now(),
                            sequence,
                            rtp_timestamp,
                            &payload,
                        );
                    }
                }
                _ if !self.conference.primary_present => {}
                PeerEvent::Failed | PeerEvent::Closed
                    if self.answered_at.is_some() && !self.conference.legs.is_empty() =>
                {
                    // The others stay in the call.
                    let m = self.manager_id.clone();
                    if let Some(o) = self.leave(m, "media_failed").await {
                        return Ok(Some(o));
                    }
                }
                PeerEvent::Failed | PeerEvent::Closed if self.answered_at.is_some() => {
                    self.hang_up(EndReason::MediaFailed).await;
                    return Ok(Some(Outcome::Ended(EndReason::MediaFailed)));
                }
                PeerEvent::Failed | PeerEvent::Closed => {
                    anyhow::bail!("the browser's WebRTC connection failed")
                }
                _ => {}
            }
        }
        let mut gone = Vec::new();
        for leg in &mut self.conference.legs {
            while let Some(ev) = leg.peer.poll_event() {
                match ev {
                    PeerEvent::AudioFrame {
                        payload,
                        rtp_timestamp,
                        sequence,
                    } => {
                        if let Some(bridge) = self.bridge.as_mut() {
                            bridge.handle_leg_audio(
                                leg.id,
                                Instant::now(),
                                sequence,
                                rtp_timestamp,
                                &payload,
                            );
                        }
                    }
                    PeerEvent::Failed | PeerEvent::Closed => gone.push(leg.manager_id.clone()),
                    _ => {}
                }
            }
        }
        for manager_id in gone {
            if let Some(o) = self.leave(manager_id, "media_failed").await {
                return Ok(Some(o));
            }
        }
        let mut digits = Vec::new();
        if let Some(bridge) = self.bridge.as_mut() {
            let now = Instant::now();
            while let Some(out) = bridge.poll_output() {
                match out {
                    BridgeOutput::ToCarrier(packet) => {
                        if let (Some(remote), true) = (self.carrier_remote, self.send_to_carrier) {
                            let _ = self.carrier_socket.send_to(&packet, remote);
                        }
                    }
                    BridgeOutput::ToBrowser {
                        payload,
                        rtp_timestamp,
                    } => {
                        // Not connected yet or congested: the frame is dropped, never queued.
                        if self.conference.primary_present {
                            let _ = self.peer.send_audio(now, &payload, rtp_timestamp);
                        }
                    }
                    BridgeOutput::ToLeg {
                        leg,
                        payload,
                        rtp_timestamp,
                    } => {
                        if let Some(l) = self.conference.legs.iter_mut().find(|l| l.id == leg) {
                            let _ = l.peer.send_audio(now, &payload, rtp_timestamp);
                        }
                    }
                    BridgeOutput::DigitFromCarrier(digit) => digits.push(digit),
                }
            }
            if let (Some(recorder), Some(chunk)) = (self.recorder.as_mut(), bridge.take_recording())
            {
                recorder.push(chunk);
            }
        }
        for digit in digits {
            let msg = ServerMessage::DtmfReceived {
                consultation_id: self.consultation_id.clone(),
                digit,
            };
            for m in self.managers_in_call() {
                self.ctx.state.hub.send(&m, &msg);
            }
        }
        self.flush_peer().await;
        Ok(None)
    }

    async fn flush_peer(&mut self) {
        while let Some(t) = self.peer.poll_transmit() {
            let _ = self.webrtc_socket.send_to(&t.contents, t.destination);
        }
        for leg in &mut self.conference.legs {
            while let Some(t) = leg.peer.poll_transmit() {
                let _ = leg.socket.send_to(&t.contents, t.destination).await;
            }
        }
    }

    /// Starts recording the call (from the answer). A recording that cannot start is logged
    /// and the call goes on without it: the customer is on the line.
    async fn start_recording(&mut self, call_id: &str) {
        let spool = self.ctx.state.recordings.spool_dir();
        match Recorder::start(&spool, call_id).await {
            Ok(r) => self.recorder = Some(r),
            Err(e) => tracing::error!(call = call_id, error = %e, "cannot record this call"),
        }
    }

    /// The rest of the audio, then the finished file (kept for the call record).
    async fn finish_recording(&mut self) {
        let Some(mut recorder) = self.recorder.take() else {
            return;
        };
        if let Some(chunk) = self.bridge.as_mut().and_then(PhoneBridge::take_recording) {
            recorder.push(chunk);
        }
        let dropped = recorder.dropped_chunks();
        match recorder.finish().await {
            Ok(done) => {
                if dropped > 0 {
                    tracing::warn!(call = %done.call_id, dropped_ms = dropped * 20,
                        "the recording misses audio the writer could not keep up with");
                }
                self.recording = Some(done);
            }
            Err(e) => tracing::error!(error = %e, "the call's recording could not be finished"),
        }
    }

    /// Adds what the bridge counted since the last time to the node's media metrics.
    fn publish_media_counters(&mut self) {
        if let Some(bridge) = &self.bridge {
            let now = bridge.stats();
            self.ctx.state.media.add(&self.published, &now);
            self.published = now;
        }
    }

    /// The call is over: close every WebRTC path and tell joined and invited managers; the
    /// outcome says which manager ended it, when one did.
    async fn finish(&mut self, outcome: anyhow::Result<Outcome>) -> anyhow::Result<Outcome> {
        self.publish_media_counters();
        self.finish_recording().await;
        self.peer.close();
        for leg in &mut self.conference.legs {
            leg.peer.close();
        }
        self.flush_peer().await;
        let reason = match &outcome {
            Ok(Outcome::Ended(r)) => r.as_str(),
            Ok(Outcome::EndedByManager { .. }) => EndReason::ManagerHungUp.as_str(),
            Ok(Outcome::CancelledBeforeConnect) => EndReason::CustomerHungUp.as_str(),
            Err(_) => "media_failed",
        };
        let legs = std::mem::take(&mut self.conference.legs);
        let invited = std::mem::take(&mut self.conference.invited);
        let told = legs
            .iter()
            .map(|l| &l.manager_id)
            .chain(invited.iter().map(|i| &i.manager_id));
        for manager_id in told {
            // An invite to a call that is over disappears from the invitee's console.
            self.ctx.state.hub.send(
                manager_id,
                &ServerMessage::CallEnded {
                    consultation_id: self.consultation_id.clone(),
                    reason: reason.to_string(),
                },
            );
        }
        match (outcome, self.conference.ended_by.take()) {
            (Ok(Outcome::Ended(EndReason::ManagerHungUp)), Some(manager_id)) => {
                Ok(Outcome::EndedByManager { manager_id })
            }
            (o, _) => o,
        }
    }

    /// Managers now in the call (the answering one first, while present).
    fn managers_in_call(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.conference.legs.len() + 1);
        if self.conference.primary_present {
            v.push(self.manager_id.clone());
        }
        v.extend(self.conference.legs.iter().map(|l| l.manager_id.clone()));
        v
    }

    fn in_call(&self, manager_id: &str) -> bool {
        (self.conference.primary_present && manager_id == self.manager_id)
            || self
                .conference
                .legs
                .iter()
                .any(|l| l.manager_id == manager_id)
    }

    fn error_to(&self, manager_id: &str, code: &str, message: String) {
        self.ctx.state.hub.send(
            manager_id,
            &ServerMessage::Error {
                code: code.into(),
                message,
            },
        );
    }

    fn broadcast_participants(&self) {
        let managers = self.managers_in_call();
        let msg = ServerMessage::MeetParticipants {
            consultation_id: self.consultation_id.clone(),
            manager_ids: managers.clone(),
        };
        for m in &managers {
            self.ctx.state.hub.send(m, &msg);
        }
    }

    /// "Leave only me": the manager's path closes and the call goes on for the others; the
    /// last manager leaving ends the call for everyone (BYE to the carrier).
    async fn leave(&mut self, manager_id: String, why: &str) -> Option<Outcome> {
        if !self.in_call(&manager_id) {
            return None;
        }
        if self.managers_in_call().len() <= 1 {
            let reason = if why == "media_failed" {
                EndReason::MediaFailed
            } else {
                self.conference.ended_by = Some(manager_id);
                EndReason::ManagerHungUp
            };
            self.hang_up(reason).await;
            return Some(Outcome::Ended(reason));
        }
        let leg_index = self
            .conference
            .legs
            .iter()
            .position(|l| l.manager_id == manager_id);
        if self.conference.primary_present && manager_id == self.manager_id {
            self.peer.close();
            self.conference.primary_present = false;
            if let Some(b) = self.bridge.as_mut() {
                b.remove_leg(PRIMARY_LEG);
            }
        } else if let Some(i) = leg_index {
            let mut leg = self.conference.legs.remove(i);
            leg.peer.close();
            while let Some(t) = leg.peer.poll_transmit() {
                let _ = leg.socket.send_to(&t.contents, t.destination).await;
            }
            if let Some(b) = self.bridge.as_mut() {
                b.remove_leg(leg.id);
            }
        }
        self.flush_peer().await;
        self.ctx.state.hub.send(
            &manager_id,
            &ServerMessage::CallEnded {
                consultation_id: self.consultation_id.clone(),
                reason: if why == "media_failed" {
                    "media_failed"
                } else {
                    "left"
                }
                .into(),
            },
        );
        if let Err(e) = self
            .ctx
            .state
            .db
            .leave_meet(&self.conference.meet_id, &manager_id, unix_ms())
            .await
        {
            tracing::warn!(error = %e, "recording a manager leaving the meet");
        }
        tracing::info!(consultation = %self.consultation_id, manager = %manager_id, "manager left the call");
        self.broadcast_participants();
        None
    }

    /// Participants of the meet: the customer plus every manager in the call.
    fn participant_count(&self) -> usize {
        1 + self.managers_in_call().len()
    }

    async fn invite(&mut self, inviter: String, invitee: String) {
        if self.bridge.is_none() {
            return self.error_to(
                &inviter,
                "call.not_connected",
                "the call is not connected yet".into(),
            );
        }
        if self.participant_count() >= MAX_PARTICIPANTS {
            return self.error_to(
                &inviter,
                "meet.full",
                format!("the meet already has {MAX_PARTICIPANTS} participants (at most {MAX_PARTICIPANTS})"),
            );
        }
        if self.in_call(&invitee) {
            return self.error_to(
                &inviter,
                "meet.already_joined",
                format!("manager {invitee} is already in the call"),
            );
        }
        match self.ctx.state.db.manager(&invitee).await {
            Ok(Some(m)) if m.channel_id == self.conference.channel_id => {}
            Ok(_) => {
                return self.error_to(
                    &inviter,
                    "meet.unknown_manager",
                    format!("no manager {invitee} in this channel"),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "looking up an invited manager");
                return self.error_to(
                    &inviter,
                    "internal",
                    "the invite could not be sent; try again".into(),
                );
            }
        }
        let delivered = self.ctx.state.hub.send(
            &invitee,
            &ServerMessage::MeetInvite {
                consultation_id: self.consultation_id.clone(),
                caller: self.conference.caller.clone(),
                invited_by: inviter.clone(),
            },
        );
        if delivered == 0 {
            return self.error_to(
                &inviter,
                "meet.invitee_offline",
                format!("manager {invitee} has no console open"),
            );
        }
        // Inviting again renews the invite.
        self.conference.invited.retain(|i| i.manager_id != invitee);
        self.conference.invited.push(Invite {
            manager_id: invitee,
            invited_by: inviter,
            expires_at: Instant::now() + self.ctx.state.config.meet_invite_timeout,
        });
    }

    async fn join(&mut self, manager_id: String, sdp_offer: String) -> anyhow::Result<()> {
        if !self
            .conference
            .invited
            .iter()
            .any(|i| i.manager_id == manager_id)
        {
            self.error_to(
                &manager_id,
                "meet.not_invited",
                "join needs an invite from a manager in the call".into(),
            );
            return Ok(());
        }
        if self.in_call(&manager_id) {
            self.error_to(
                &manager_id,
                "meet.already_joined",
                "already in the call".into(),
            );
            return Ok(());
        }
        if self.participant_count() >= MAX_PARTICIPANTS {
            self.error_to(
                &manager_id,
                "meet.full",
                format!("the meet already has {MAX_PARTICIPANTS} participants (at most {MAX_PARTICIPANTS})"),
            );
            return Ok(());
        }
        let Some(bridge) = self.bridge.as_mut() else {
            self.error_to(
                &manager_id,
                "call.not_connected",
                "the call is not connected".into(),
            );
            return Ok(());
        };
        let Some(id) = (1..LegId::MAX).find(|id| !self.conference.legs.iter().any(|l| l.id == *id))
        else {
            self.error_to(&manager_id, "meet.full", "no room in the meet".into());
            return Ok(());
        };
        let state = &self.ctx.state;
        let media_cfg = &state.config.media;
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(media_cfg.bind_address, 0)).await?);
        let addr = SocketAddr::new(media_cfg.advertised_address, socket.local_addr()?.port());
        let now = Instant::now();
        let mut peer = WebRtcPeer::new(
            now,
            PeerConfig {
                ice_lite: true,
                certificate_pem: Some(state.webrtc_certificate.clone()),
                ..PeerConfig::new(addr)
            },
        )?;
        let answer = match peer.accept_offer(now, &sdp_offer) {
            Ok(a) => a,
            Err(e) => {
                self.error_to(&manager_id, "call.bad_offer", e.to_string());
                return Ok(());
            }
        };
        if let Err(e) = bridge.add_leg(id, rand::thread_rng().gen()) {
            self.error_to(&manager_id, e.code(), e.to_string());
            return Ok(());
        }
        let reader = {
            let socket = socket.clone();
            let tx = self.conference.tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    if let Ok((n, from)) = socket.recv_from(&mut buf).await {
                        if tx.send((id, from, buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                }
            })
        };
        self.conference
            .invited
            .retain(|i| i.manager_id != manager_id);
        self.conference.legs.push(ManagerLeg {
            manager_id: manager_id.clone(),
            id,
            peer,
            socket,
            reader,
        });
        state.hub.send(
            &manager_id,
            &ServerMessage::CallAnswered {
                consultation_id: self.consultation_id.clone(),
                sdp_answer: answer,
            },
        );
        if let Err(e) = state
            .db
            .join_meet(&self.conference.meet_id, &manager_id, unix_ms())
            .await
        {
            tracing::warn!(error = %e, "recording a manager joining the meet");
        }
        tracing::info!(consultation = %self.consultation_id, manager = %manager_id, "manager joined the call");
        self.broadcast_participants();
        Ok(())
    }

    /// The browser is connected: answer the carrier (200 OK with SDP) and start the bridge.
    async fn connect_carrier(&mut self, record: &db::CallRecord) -> anyhow::Result<()> {
        let ctx = self.ctx;
        let now = Instant::now();
        let session_id: u64 = rand::thread_rng().gen();
        let local = sdp::LocalMedia {
            address: self.local_rtp.ip(),
            rtp_port: self.local_rtp.port(),
            codecs: vec![sdp::Codec::Pcmu, sdp::Codec::Pcma],
            telephone_event: true,
            session_id: session_id >> 1,
            session_version: 1,
            username: "gateway".to_string(),
        };
        let offer = sdp::SessionDescription::parse_bytes(&ctx.call.request.body)
            .context("the carrier's offer (checked at admission)")?;
        let answer = sdp::negotiate_answer(&offer, &local)?;
        self.local_media = Some(local);
        self.carrier_remote = Some(answer.remote_rtp);
        self.apply_direction(answer.direction);
        self.bridge = Some(carrier_bridge(
            answer.codec,
            answer.telephone_event_pt,
            answer.ptime_ms,
            ctx.state.media_tick_origin,
            now,
        )?);
        // Recorded from the answer to the hang-up.
        self.start_recording(&record.id).await;
        let mut response =
            message::build_response(&ctx.call.request, 200, None, Some(&ctx.call.to_tag));
        response = message::with_header(
            response,
            rsip::Header::Other("Contact".into(), ctx.call.contact.clone()),
        );
        response = message::with_header(
            response,
            rsip::Header::Other("Allow".into(), crate::sip_service::service::ALLOW.into()),
        );
        response = self.with_session_timer(response, &ctx.call.request, now);
        response = message::with_body(response, "application/sdp", answer.sdp.into_bytes());
        let bytes = bytes::Bytes::from(message::to_bytes(&rsip::SipMessage::Response(
            response.clone(),
        )));
        ctx.sip
            .send(SipCommand::Respond {
                key: ctx.call.key.clone(),
                response,
            })
            .await
            .ok();
        self.retransmit = Some(TwoXxRetransmitter::new(now, bytes, timer_config(ctx)));
        self.dialog.confirm();
        self.answered_at = Some(now);
        ctx.state
            .db
            .answer_call(&record.id, &self.manager_id, unix_ms())
            .await
            .context("recording the answer")?;
        tracing::info!(consultation = %self.consultation_id, manager = %self.manager_id, "call answered");
        Ok(())
    }

    async fn handle_input(&mut self, input: CallInput) -> anyhow::Result<Option<Outcome>> {
        match input {
            CallInput::Ack(_) => {
                if let Some(r) = self.retransmit.as_mut() {
                    r.handle_ack();
                }
            }
            CallInput::Response { response, .. } if self.uac_ack.is_some() => {
                // RFC 3261 §13.2.2.4: every retransmission of the INVITE's 2xx gets the ACK.
                let is_invite_2xx = (200..300).contains(&response.status_code.code())
                    && message::headers::cseq(&response.headers).is_ok_and(|c| {
                        c.method == "INVITE"
                            && self.uac_ack.as_ref().is_some_and(|(seq, _)| *seq == c.seq)
                    });
                if let (true, Some((_, ack))) = (is_invite_2xx, self.uac_ack.as_ref()) {
                    let peer = self.ctx.call.peer;
                    let bytes = ack.clone();
                    let _ = self.ctx.sip.send(SipCommand::SendRaw { peer, bytes }).await;
                }
            }
            CallInput::CallerCancelled if self.answered_at.is_none() => {
                // RFC 3261 §9.2: the INVITE is still pending: 487 ends it.
                let response = message::build_response(
                    &self.ctx.call.request,
                    487,
                    None,
                    Some(&self.ctx.call.to_tag),
                );
                let _ = self
                    .ctx
                    .sip
                    .send(SipCommand::Respond {
                        key: self.ctx.call.key.clone(),
                        response,
                    })
                    .await;
                return Ok(Some(Outcome::CancelledBeforeConnect));
            }
            CallInput::InDialog { key, request } => {
                let checked = if !self.dialog.matches_request(&request) {
                    Err(481)
                } else {
                    self.dialog
                        .handle_request(&request)
                        .map_err(|e| e.sip_status().unwrap_or(500))
                };
                let response = match (checked, &request.method) {
                    (Err(status), _) => message::build_response(&request, status, None, None),
                    (Ok(()), rsip::Method::Invite | rsip::Method::Update)
                        if self.answered_at.is_some() =>
                    {
                        self.session_update(&request)
                    }
                    (Ok(()), rsip::Method::Bye | rsip::Method::Options) => {
                        message::build_response(&request, 200, None, None)
                    }
                    (Ok(()), _) => message::build_response(&request, 501, None, None),
                };
                let ok = response.status_code.code() == 200;
                if ok && request.method == rsip::Method::Invite {
                    // The 2xx to a re-INVITE is retransmitted until its ACK too (§13.3.1.4).
                    let bytes = bytes::Bytes::from(message::to_bytes(&rsip::SipMessage::Response(
                        response.clone(),
                    )));
                    self.retransmit = Some(TwoXxRetransmitter::new(
                        Instant::now(),
                        bytes,
                        timer_config(self.ctx),
                    ));
                }
                let _ = self
                    .ctx
                    .sip
                    .send(SipCommand::Respond { key, response })
                    .await;
                if ok && request.method == rsip::Method::Bye {
                    return Ok(Some(Outcome::Ended(EndReason::CustomerHungUp)));
                }
            }
            CallInput::Hangup { manager_id } if self.in_call(&manager_id) => {
                self.conference.ended_by = Some(manager_id);
                self.hang_up(EndReason::ManagerHungUp).await;
                return Ok(Some(Outcome::Ended(EndReason::ManagerHungUp)));
            }
            CallInput::Leave { manager_id } if self.in_call(&manager_id) => {
                if let Some(o) = self.leave(manager_id, "left").await {
                    return Ok(Some(o));
                }
            }
            // The manager's last console closed: they are gone from the call, as if they left.
            CallInput::SessionGone { manager_id } if self.in_call(&manager_id) => {
                if let Some(o) = self.leave(manager_id, "left").await {
                    return Ok(Some(o));
                }
            }
            CallInput::InviteManager {
                manager_id,
                invitee_id,
            } if self.in_call(&manager_id) => self.invite(manager_id, invitee_id).await,
            CallInput::Join {
                manager_id,
                sdp_offer,
            } => self.join(manager_id, sdp_offer).await?,
            CallInput::IceCandidate {
                manager_id,
                candidate,
            } if self.in_call(&manager_id) => {
                let peer = if self.conference.primary_present && manager_id == self.manager_id {
                    Some(&mut self.peer)
                } else {
                    self.conference
                        .legs
                        .iter_mut()
                        .find(|l| l.manager_id == manager_id)
                        .map(|l| &mut l.peer)
                };
                if let Some(Err(e)) = peer.map(|p| p.add_remote_candidate(&candidate)) {
                    tracing::debug!(error = %e, "bad ICE candidate from the browser");
                }
            }
            CallInput::Leave { manager_id }
            | CallInput::Hangup { manager_id }
            | CallInput::InviteManager { manager_id, .. } => {
                self.error_to(
                    &manager_id,
                    "call.not_in_call",
                    "you are not in this call".into(),
                );
            }
            CallInput::Dtmf { manager_id, digit } if self.in_call(&manager_id) => {
                if let Some(bridge) = self.bridge.as_mut() {
                    if let Err(e) = bridge.send_digit(Instant::now(), digit, 160) {
                        tracing::debug!(error = %e, "DTMF not sent");
                    }
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// A re-INVITE or UPDATE in the confirmed dialog: a new offer (hold, resume, a new
    /// address; RFC 3264 §8) and/or a session refresh (RFC 4028). Returns the response.
    fn session_update(&mut self, request: &rsip::Request) -> rsip::Response {
        let now = Instant::now();
        let mut response = message::build_response(request, 200, None, None);
        let Some(local) = self.local_media.as_mut() else {
            return message::build_response(request, 500, None, None);
        };
        if !request.body.is_empty() {
            let answer = sdp::SessionDescription::parse_bytes(&request.body).and_then(|offer| {
                // §8: every new answer carries a higher o= version.
                local.session_version += 1;
                sdp::negotiate_answer(&offer, local)
            });
            match answer {
                Ok(answer) => {
                    self.carrier_remote = Some(answer.remote_rtp);
                    let direction = answer.direction;
                    response =
                        message::with_body(response, "application/sdp", answer.sdp.into_bytes());
                    self.apply_direction(direction);
                }
                Err(e) => {
                    let mut r = message::build_response(request, e.sip_status(), None, None);
                    if let Some(w) = e.warning("gateway") {
                        r = message::with_header(r, rsip::Header::Other("Warning".into(), w));
                    }
                    return r;
                }
            }
        } else if request.method == rsip::Method::Invite {
            // An offerless re-INVITE: our current description is the offer in the 200 (§14.2).
            local.session_version += 1;
            let offer = sdp::build_offer(local, sdp::Direction::SendRecv);
            response = message::with_body(response, "application/sdp", offer.into_bytes());
        }
        response = message::with_header(
            response,
            rsip::Header::Other("Contact".into(), self.ctx.call.contact.clone()),
        );
        // Same capabilities as in the first 2xx (RFC 3261 §20.5), so carriers see one answer.
        response = message::with_header(
            response,
            rsip::Header::Other("Allow".into(), crate::sip_service::service::ALLOW.into()),
        );
        self.with_session_timer(response, request, now)
    }

    /// RFC 3264 §6.1: what the answer says we may do on the carrier leg.
    fn apply_direction(&mut self, answered: sdp::Direction) {
        self.send_to_carrier = answered.sends();
        self.carrier_inactive = !answered.receives();
    }

    /// RFC 4028 §9: echo the session timer in a 2xx and (re)start it.
    fn with_session_timer(
        &mut self,
        response: rsip::Response,
        request: &rsip::Request,
        now: Instant,
    ) -> rsip::Response {
        let header = message::headers::first_value(&request.headers, "Session-Expires");
        let Ok(Some(se)) =
            sip::session_timer::check_request(header.as_deref(), sip::session_timer::MIN_SE_S)
        else {
            return response;
        };
        let timer = match self.session_timer.as_mut() {
            Some(t) => {
                t.refreshed(now, Some(se.interval_s));
                t.clone()
            }
            None => self
                .session_timer
                .insert(SessionTimer::new(now, se))
                .clone(),
        };
        let mut response = message::with_header(
            response,
            rsip::Header::Other(
                "Session-Expires".into(),
                SessionExpires::header_value(timer.interval_s(), timer.refresher()),
            ),
        );
        let supported = message::headers::option_tags(&request.headers, "Supported");
        if supported.iter().any(|t| t == "timer") {
            response = message::with_header(
                response,
                rsip::Header::Other("Require".into(), "timer".into()),
            );
        }
        response
    }

    /// We are the session refresher (the carrier asked us to be): an UPDATE without a body
    /// refreshes the session (RFC 4028 §7.4, RFC 3311).
    async fn send_refresh(&mut self) {
        let Ok(mut request) = self.dialog.new_request(
            rsip::Method::Update,
            &format!("z9hG4bK{:016x}", rand::thread_rng().gen::<u64>()),
            &via_host_port(self.ctx),
            self.ctx.call.peer.transport.via_name(),
        ) else {
            return;
        };
        if let Some(t) = self.session_timer.as_mut() {
            request.headers.push(rsip::Header::Other(
                "Session-Expires".into(),
                SessionExpires::header_value(t.interval_s(), Refresher::Uas),
            ));
            // Restart now: a carrier that is gone never answers, and the expiry ends the call.
            let interval = t.interval_s();
            t.refreshed(Instant::now(), Some(interval));
        }
        let (tx, _rx) = mpsc::channel(4);
        let _ = self
            .ctx
            .sip
            .send(SipCommand::SendRequest {
                peer: self.ctx.call.peer,
                request,
                reply_to: tx,
            })
            .await;
    }

    /// Ends the call from our side: BYE to the carrier once the dialog is confirmed.
    async fn hang_up(&mut self, reason: EndReason) {
        if self.answered_at.is_none() {
            return;
        }
        let Ok(request) = self.dialog.new_request(
            rsip::Method::Bye,
            &format!("z9hG4bK{:016x}", rand::thread_rng().gen::<u64>()),
            &via_host_port(self.ctx),
            self.ctx.call.peer.transport.via_name(),
        ) else {
            return;
        };
        // The BYE goes where the dialog's target points; over the carrier's own connection or
        // address, as carriers expect from a trunk.
        let request = with_reason(request, reason);
        let (tx, _rx) = mpsc::channel(4);
        let _ = self
            .ctx
            .sip
            .send(SipCommand::SendRequest {
                peer: self.ctx.call.peer,
                request,
                reply_to: tx,
            })
            .await;
    }

    fn reply_peer(&self) -> Peer {
        let call = &self.ctx.call;
        // On an outgoing call `call.request` is our own INVITE: the carrier is its peer.
        if call.peer.transport.is_reliable() || self.uac_ack.is_some() {
            return call.peer;
        }
        match message::headers::top_via(&call.request.headers) {
            Ok(via) => Peer::udp(message::response_destination(
                &via,
                call.peer.addr,
                message::ResponseTransport::Unreliable,
            )),
            Err(_) => call.peer,
        }
    }
}

/// RFC 3326: say why we hang up, so the carrier's CDRs can tell a timeout from a hang-up.
fn with_reason(mut request: rsip::Request, reason: EndReason) -> rsip::Request {
    let text = match reason {
        EndReason::MediaTimeout => "SIP;cause=408;text=\"media_timeout\"",
        EndReason::AckTimeout => "SIP;cause=408;text=\"ack_timeout\"",
        EndReason::MediaFailed => "SIP;cause=500;text=\"media_failed\"",
        EndReason::SessionExpired => "SIP;cause=408;text=\"session_expired\"",
        EndReason::ManagerHungUp | EndReason::CustomerHungUp => {
            "SIP;cause=200;text=\"Call completed\""
        }
    };
    request
        .headers
        .push(rsip::Header::Other("Reason".into(), text.into()));
    request
}

fn via_host_port(ctx: &Ctx) -> String {
    let host_port = ctx
        .call
        .contact
        .trim_start_matches('<')
        .trim_end_matches('>');
    let host_port = host_port.split_once('@').map_or(host_port, |(_, h)| h);
    host_port.split(';').next().unwrap_or(host_port).to_string()
}

fn timer_config(ctx: &Ctx) -> sip::transaction::TimerConfig {
    sip::transaction::TimerConfig {
        t1: ctx.state.config.sip.t1,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ticks_start_on_the_shared_five_millisecond_grid() {
        let origin = Instant::now();
        let at = |ms: u64, us: u64| origin + Duration::from_millis(ms) + Duration::from_micros(us);
        assert_eq!(next_grid_instant(origin, origin), origin);
        assert_eq!(next_grid_instant(origin, at(0, 1)), at(5, 0));
        assert_eq!(next_grid_instant(origin, at(12, 400)), at(15, 0));
        assert_eq!(next_grid_instant(origin, at(15, 0)), at(15, 0));
        // A clock reading from before the origin starts at the origin.
        assert_eq!(next_grid_instant(at(10, 0), origin), at(10, 0));
    }
}
