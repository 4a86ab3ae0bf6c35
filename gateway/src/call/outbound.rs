//! The actor that owns one OUTGOING phone call: a manager calls a customer from the console.
//!
//! Steps: customer (by number or id) → a new call consultation (source phone, classified as a
//! call, outbound meet, assignee = the calling manager) → the WebRTC answer to the browser's
//! offer (`outbound_started`) → once the browser's WebRTC path is up, an INVITE through the
//! trunk's outbound proxy, answering 401/407 challenges (RFC 3261 §22.2: new CSeq, same
//! Call-ID) → 180/183 tell the browser it rings; a 183 with SDP starts the bridge so the
//! carrier's ringback reaches the browser (early media) → a 2xx is ACKed (§13.2.2.4) and the
//! call continues in the same in-call driver as an inbound call ([`answered::run_uac`]).
//!
//! Unanswered outcomes: 486/600 busy, 603 declined, 408/480 or the ring timeout (CANCEL, §9.1)
//! no answer, manager hang-up before the answer (CANCEL, 487 expected) cancelled, anything
//! else failed. They are recorded with `mark_missed` (existing `missed_reasons` rows) and the
//! exact outcome in the call record's `end_reason`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use media::bridge::{BridgeOutput, PhoneBridge};
use rand::Rng;
use schemas::missed::MissedReason;
use schemas::ws::ServerMessage;
use sip::dialog::Dialog;
use sip::endpoint::Peer;
use sip::message;
use sip::sdp;
use sip::transaction::TransactionKey;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use webrtc_peer::{PeerEvent, WebRtcPeer};

use super::answered::{self, UacConnected};
use super::inbound::{Ctx, InboundCall};
use super::CallInput;
use crate::config::OutboundConfig;
use crate::db::{self, Direction, NewPhoneCall};
use crate::phone_number::normalize_e164;
use crate::sip_service::service::{unix_ms, ALLOW};
use crate::sip_service::SipCommand;
use crate::state::AppState;

/// How long the browser has to complete ICE and DTLS before we give up (no INVITE sent).
const WEBRTC_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Challenges answered per call before giving up (a second one means wrong credentials,
/// unless it says `stale=true`).
const MAX_AUTH_ATTEMPTS: u32 = 3;

/// What the console asked for (`call_customer`).
#[derive(Debug, Clone)]
pub struct PlaceCall {
    pub manager_id: String,
    pub channel_id: String,
    pub customer_number: Option<String>,
    pub customer_id: Option<String>,
    pub sdp_offer: String,
}

/// What the SIP service decided when it admitted the call.
#[derive(Debug)]
pub struct OutboundCall {
    pub place: PlaceCall,
    pub call_id: String,
    pub from_tag: String,
    pub trunk_id: String,
    pub trunk_index: usize,
    pub outbound: OutboundConfig,
    /// Our Contact (name-addr) for UDP.
    pub contact: String,
}

/// Why an outgoing call ended without being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// 486 Busy Here / 600 Busy Everywhere.
    Busy,
    /// 603 Decline.
    Declined,
    /// 408 / 480, or our ring timeout (CANCEL).
    NoAnswer,
    /// The manager hung up before the answer (CANCEL).
    Cancelled,
    /// Any other final response, a transport failure or timeout, or a broken answer.
    Failed,
}

impl Unanswered {
    /// The call record's `end_reason` and the `call_ended` reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Unanswered::Busy => "busy",
            Unanswered::Declined => "declined",
            Unanswered::NoAnswer => "no_answer",
            Unanswered::Cancelled => "cancelled",
            Unanswered::Failed => "failed",
        }
    }

    /// The closest existing `missed_reasons` row (the schema has no busy/failed rows).
    pub fn missed_reason(self) -> MissedReason {
        match self {
            Unanswered::Declined => MissedReason::Declined,
            Unanswered::Cancelled => MissedReason::CallerCancelled,
            Unanswered::Busy | Unanswered::NoAnswer | Unanswered::Failed => MissedReason::NoAnswer,
        }
    }

    /// A final response to our INVITE (>= 300).
    pub fn from_status(status: u16) -> Unanswered {
        match status {
            486 | 600 => Unanswered::Busy,
            603 => Unanswered::Declined,
            408 | 480 => Unanswered::NoAnswer,
            487 => Unanswered::Cancelled,
            _ => Unanswered::Failed,
        }
    }
}

pub async fn run(
    call: OutboundCall,
    state: Arc<AppState>,
    tx: mpsc::Sender<CallInput>,
    mut rx: mpsc::Receiver<CallInput>,
    sip: mpsc::Sender<SipCommand>,
) {
    let manager_id = call.place.manager_id.clone();
    if let Err(e) = handle(&call, &state, tx, &mut rx, &sip).await {
        tracing::error!(call_id = %call.call_id, error = format!("{e:#}"), "outgoing call failed");
        state.hub.send(
            &manager_id,
            &ServerMessage::Error {
                code: "call.failed".into(),
                message: "the call could not be placed".into(),
            },
        );
    }
}

fn refuse(state: &AppState, manager_id: &str, code: &str, message: impl Into<String>) {
    state.hub.send(
        manager_id,
        &ServerMessage::Error {
            code: code.into(),
            message: message.into(),
        },
    );
}

async fn customer_number(
    state: &AppState,
    customer_id: &str,
    channel_id: &str,
) -> anyhow::Result<Option<String>> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT number_e164 FROM customer_phone_numbers \
         WHERE customer_id = $1 AND channel_id = $2 ORDER BY number_e164 LIMIT 1",
    )
    .bind(customer_id)
    .bind(channel_id)
    .fetch_optional(state.db.pool())
    .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("number_e164"))
        .transpose()?)
}

async fn handle(
    call: &OutboundCall,
    state: &Arc<AppState>,
    tx: mpsc::Sender<CallInput>,
    rx: &mut mpsc::Receiver<CallInput>,
    sip: &mpsc::Sender<SipCommand>,
) -> anyhow::Result<()> {
    let db = &state.db;
    let place = &call.place;
    let manager_id = place.manager_id.as_str();
    let Some(channel) = db.channel(&place.channel_id).await? else {
        refuse(state, manager_id, "call.unknown_channel", "unknown channel");
        return Ok(());
    };
    if channel.plan != db::Plan::Paid || !channel.business_verified {
        refuse(
            state,
            manager_id,
            "call.channel_not_allowed",
            "phone calls need a paid plan and a verified business",
        );
        return Ok(());
    }
    let now_ms = unix_ms();
    let (customer, number) = match (&place.customer_number, &place.customer_id) {
        (Some(n), _) => {
            let Ok(e164) = normalize_e164(n) else {
                refuse(
                    state,
                    manager_id,
                    "call.bad_number",
                    format!("{n:?} is not a phone number"),
                );
                return Ok(());
            };
            let c = db
                .find_or_create_customer_by_phone(&channel.id, &e164, now_ms)
                .await?;
            (c, e164)
        }
        (None, Some(id)) => {
            let Some(c) = db
                .customer(id)
                .await?
                .filter(|c| c.channel_id == channel.id)
            else {
                refuse(
                    state,
                    manager_id,
                    "call.unknown_customer",
                    format!("no customer {id}"),
                );
                return Ok(());
            };
            let Some(number) = customer_number(state, id, &channel.id).await? else {
                refuse(
                    state,
                    manager_id,
                    "call.customer_has_no_number",
                    format!("customer {id} has no phone number"),
                );
                return Ok(());
            };
            (c, number)
        }
        (None, None) => {
            refuse(
                state,
                manager_id,
                "call.no_customer",
                "give customer_number or customer_id",
            );
            return Ok(());
        }
    };
    let (consultation, _meet, record) = db
        .open_phone_consultation(
            &channel.id,
            &customer.id,
            Direction::Outbound,
            &NewPhoneCall {
                sip_call_id: &call.call_id,
                from_number: &call.outbound.from_number,
                to_number: &number,
                trunk_id: &call.trunk_id,
                currency: &channel.currency,
            },
            now_ms,
        )
        .await?;
    // The calling manager owns the consultation from the start.
    sqlx::query("UPDATE consultations SET assignee_manager_id = $1 WHERE id = $2")
        .bind(manager_id)
        .bind(&consultation.id)
        .execute(db.pool())
        .await?;
    state.calls.insert(&consultation.id, tx.clone());
    tracing::info!(consultation = %consultation.id, manager = %manager_id, to = %number,
        trunk = %call.trunk_id, "outgoing call");
    let result = dial_and_talk(
        call,
        state,
        tx,
        rx,
        sip,
        &consultation.id,
        &record,
        &customer.id,
        &number,
    )
    .await;
    state.calls.remove(&consultation.id);
    result
}

#[allow(clippy::too_many_arguments)]
async fn dial_and_talk(
    call: &OutboundCall,
    state: &Arc<AppState>,
    tx: mpsc::Sender<CallInput>,
    rx: &mut mpsc::Receiver<CallInput>,
    sip: &mpsc::Sender<SipCommand>,
    consultation_id: &str,
    record: &db::CallRecord,
    customer_id: &str,
    number: &str,
) -> anyhow::Result<()> {
    let db = &state.db;
    let manager_id = call.place.manager_id.clone();
    let dialing = Dialing::new(call, state, sip, tx, number).await;
    let mut dialing = match dialing {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(consultation = %consultation_id, error = format!("{e:#}"), "outgoing call could not start");
            record_unanswered(state, consultation_id, record, Unanswered::Failed).await?;
            state.hub.send(
                &manager_id,
                &ServerMessage::CallEnded {
                    consultation_id: consultation_id.to_string(),
                    reason: Unanswered::Failed.as_str().to_string(),
                },
            );
            return Ok(());
        }
    };
    let answer = dialing.accept_browser_offer(&call.place.sdp_offer)?;
    state.hub.send(
        &manager_id,
        &ServerMessage::OutboundStarted {
            consultation_id: consultation_id.to_string(),
            call_id: record.id.clone(),
            customer_id: customer_id.to_string(),
            customer_number: number.to_string(),
            sdp_answer: answer,
        },
    );
    let end = match dialing.run(rx, consultation_id).await {
        Ok(end) => end,
        Err(e) => {
            tracing::warn!(consultation = %consultation_id, error = format!("{e:#}"), "outgoing call failed while dialling");
            dialing.start_cancel(Unanswered::Failed).await;
            DialEnd::Unanswered(Unanswered::Failed)
        }
    };
    let reason = match end {
        DialEnd::Unanswered(outcome) => {
            dialing.peer.close();
            dialing.flush_peer().await;
            record_unanswered(state, consultation_id, record, outcome).await?;
            outcome.as_str()
        }
        DialEnd::Answered(parts) => {
            let now = Instant::now();
            db.answer_call(&record.id, &manager_id, unix_ms())
                .await
                .context("recording the answer")?;
            state.hub.send(
                &manager_id,
                &ServerMessage::OutboundAnswered {
                    consultation_id: consultation_id.to_string(),
                },
            );
            tracing::info!(consultation = %consultation_id, manager = %manager_id, "outgoing call answered");
            let ctx = Ctx {
                call: InboundCall {
                    key: parts.invite_key,
                    request: parts.invite,
                    peer: dialing.proxy,
                    call_id: call.call_id.clone(),
                    trunk_id: call.trunk_id.clone(),
                    trunk_channel_id: call.place.channel_id.clone(),
                    to_tag: call.from_tag.clone(),
                    contact: call.contact.clone(),
                    offer: None,
                },
                state: state.clone(),
                sip: sip.clone(),
            };
            let Dialing {
                peer,
                webrtc_socket,
                carrier_socket,
                ports,
                local_media,
                ..
            } = dialing;
            let connected = UacConnected {
                manager_id: manager_id.clone(),
                consultation_id,
                record,
                dialog: parts.dialog,
                peer,
                webrtc_socket,
                carrier_socket,
                ports,
                bridge: parts.bridge,
                carrier_remote: parts.negotiated.remote_rtp,
                local_media,
                direction: parts.negotiated.direction,
                invite_cseq: parts.invite_cseq,
                ack: parts.ack,
                answered_at: now,
            };
            let (outcome, recording) = answered::run_uac(&ctx, rx, connected).await;
            end_answered(
                state,
                consultation_id,
                record,
                &manager_id,
                outcome,
                recording,
            )
            .await
        }
    };
    state.hub.send(
        &manager_id,
        &ServerMessage::CallEnded {
            consultation_id: consultation_id.to_string(),
            reason: reason.to_string(),
        },
    );
    Ok(())
}

async fn end_answered(
    state: &AppState,
    consultation_id: &str,
    record: &db::CallRecord,
    manager_id: &str,
    outcome: anyhow::Result<answered::Outcome>,
    recording: Option<crate::recording::FinishedRecording>,
) -> &'static str {
    // An invited manager who ended the call for everyone is recorded as its ender.
    let by_manager = match &outcome {
        Ok(answered::Outcome::EndedByManager { manager_id }) => Some(manager_id.clone()),
        _ => None,
    };
    let (reason, ended_by) = match outcome {
        Ok(answered::Outcome::Ended(reason)) => {
            let by = match reason {
                answered::EndReason::CustomerHungUp => "customer",
                answered::EndReason::ManagerHungUp => manager_id,
                _ => "system",
            };
            (reason.as_str(), by)
        }
        Ok(answered::Outcome::EndedByManager { .. }) => (
            answered::EndReason::ManagerHungUp.as_str(),
            by_manager.as_deref().unwrap_or(manager_id),
        ),
        // Not reachable for a call we placed (no CANCEL comes to a UAC).
        Ok(answered::Outcome::CancelledBeforeConnect) => ("customer_hung_up", "customer"),
        Err(e) => {
            tracing::error!(consultation = %consultation_id, error = format!("{e:#}"), "outgoing call failed after the answer");
            ("media_failed", "system")
        }
    };
    match crate::recording::end_call(state, record, reason, Some(ended_by), recording, unix_ms())
        .await
    {
        Ok(r) => {
            tracing::info!(consultation = %consultation_id, reason, seconds = r.billable_seconds,
            charge = r.charge_minor, "outgoing call ended")
        }
        Err(e) => {
            tracing::warn!(consultation = %consultation_id, error = %e, "could not end the call record")
        }
    }
    reason
}

/// `mark_missed` with the closest existing reason, then the exact outcome as `end_reason`.
async fn record_unanswered(
    state: &AppState,
    consultation_id: &str,
    record: &db::CallRecord,
    outcome: Unanswered,
) -> anyhow::Result<()> {
    let db = &state.db;
    db.mark_missed(
        consultation_id,
        &record.meet_id,
        &record.id,
        outcome.missed_reason(),
        unix_ms(),
    )
    .await?;
    sqlx::query("UPDATE calls SET end_reason = $1 WHERE id = $2")
        .bind(outcome.as_str())
        .bind(&record.id)
        .execute(db.pool())
        .await?;
    tracing::info!(consultation = %consultation_id, outcome = outcome.as_str(), "outgoing call not answered");
    Ok(())
}

/// What the dialling phase hands to the in-call driver.
struct AnsweredParts {
    invite: rsip::Request,
    invite_key: TransactionKey,
    invite_cseq: u32,
    dialog: Dialog,
    ack: bytes::Bytes,
    bridge: PhoneBridge,
    negotiated: sdp::Negotiated,
}

enum DialEnd {
    Answered(Box<AnsweredParts>),
    Unanswered(Unanswered),
}

/// The dialling phase: WebRTC peer, carrier RTP socket (early media) and the INVITE client.
struct Dialing<'a> {
    call: &'a OutboundCall,
    state: &'a Arc<AppState>,
    sip: &'a mpsc::Sender<SipCommand>,
    /// Where responses to our requests come back.
    tx: mpsc::Sender<CallInput>,
    proxy: Peer,
    request_uri: String,
    from_user: String,
    peer: WebRtcPeer,
    webrtc_socket: UdpSocket,
    carrier_socket: UdpSocket,
    ports: crate::rtp_ports::RtpPortPair,
    local_media: sdp::LocalMedia,
    offer_sdp: String,
    offer: sdp::SessionDescription,
    bridge: Option<PhoneBridge>,
    negotiated: Option<sdp::Negotiated>,
    carrier_remote: Option<SocketAddr>,
    browser_connected: bool,
    invite: Option<rsip::Request>,
    invite_key: Option<TransactionKey>,
    cseq: u32,
    auth_attempts: u32,
    provisional: bool,
    /// What the browser was last told (`outbound_ringing`), to tell changes only.
    ringing_told: Option<bool>,
    ring_deadline: Option<Instant>,
    /// Why we cancel, once we decided to.
    cancel: Option<Unanswered>,
    cancel_sent: bool,
    cancel_deadline: Option<Instant>,
}

impl<'a> Dialing<'a> {
    async fn new(
        call: &'a OutboundCall,
        state: &'a Arc<AppState>,
        sip: &'a mpsc::Sender<SipCommand>,
        tx: mpsc::Sender<CallInput>,
        number: &str,
    ) -> anyhow::Result<Dialing<'a>> {
        let media_cfg = &state.config.media;
        let now = Instant::now();
        let super::answered::MediaLegs {
            ports,
            carrier_socket,
            webrtc_socket,
            peer,
        } = super::answered::MediaLegs::open(state, now).await?;
        let session_id: u64 = rand::thread_rng().gen();
        let local_media = sdp::LocalMedia {
            address: media_cfg.advertised_address,
            rtp_port: ports.rtp_addr().port(),
            codecs: vec![sdp::Codec::Pcmu, sdp::Codec::Pcma],
            telephone_event: true,
            session_id: session_id >> 1,
            session_version: 1,
            username: "gateway".to_string(),
        };
        let offer_sdp = sdp::build_offer(&local_media, sdp::Direction::SendRecv);
        let offer = sdp::SessionDescription::parse(&offer_sdp).context("our own offer")?;
        let cfg = &call.outbound;
        let to_user = cfg.number_format.format(number);
        Ok(Dialing {
            call,
            state,
            sip,
            tx,
            proxy: Peer::udp(cfg.proxy),
            request_uri: format!("sip:{to_user}@{}", cfg.domain),
            from_user: cfg.number_format.format(&cfg.from_number),
            peer,
            webrtc_socket,
            carrier_socket,
            ports,
            local_media,
            offer_sdp,
            offer,
            bridge: None,
            negotiated: None,
            carrier_remote: None,
            browser_connected: false,
            invite: None,
            invite_key: None,
            cseq: 0,
            auth_attempts: 0,
            provisional: false,
            ringing_told: None,
            ring_deadline: None,
            cancel: None,
            cancel_sent: false,
            cancel_deadline: None,
        })
    }

    fn accept_browser_offer(&mut self, offer: &str) -> anyhow::Result<String> {
        Ok(self.peer.accept_offer(Instant::now(), offer)?)
    }

    fn manager_id(&self) -> &str {
        &self.call.place.manager_id
    }

    fn via_host_port(&self) -> String {
        let c = self
            .call
            .contact
            .trim_start_matches('<')
            .trim_end_matches('>');
        let c = c.split_once('@').map_or(c, |(_, h)| h);
        c.split(';').next().unwrap_or(c).to_string()
    }

    async fn run(
        &mut self,
        rx: &mut mpsc::Receiver<CallInput>,
        consultation_id: &str,
    ) -> anyhow::Result<DialEnd> {
        let connect_deadline = Instant::now() + WEBRTC_CONNECT_TIMEOUT;
        let mut carrier_buf = vec![0u8; 2048];
        let mut webrtc_buf = vec![0u8; 2048];
        loop {
            self.pump(consultation_id).await?;
            if self.browser_connected && self.invite.is_none() && self.cancel.is_none() {
                self.send_invite(None).await?;
                self.ring_deadline = Some(Instant::now() + self.call.outbound.ring_timeout);
            }
            if let (Some(reason), None) = (self.cancel, &self.invite) {
                // Nothing went to the carrier yet: nothing to cancel.
                return Ok(DialEnd::Unanswered(reason));
            }
            let now = Instant::now();
            if !self.browser_connected && now >= connect_deadline {
                anyhow::bail!("the browser's WebRTC connection did not come up in time");
            }
            let mut deadline = now + Duration::from_secs(1);
            let candidates = [
                self.peer.poll_timeout(),
                self.bridge.as_ref().map(PhoneBridge::poll_timeout),
                (!self.browser_connected).then_some(connect_deadline),
                self.ring_deadline.filter(|_| self.cancel.is_none()),
                self.cancel_deadline,
            ];
            for c in candidates.into_iter().flatten() {
                deadline = deadline.min(c);
            }
            tokio::select! {
                r = self.carrier_socket.recv_from(&mut carrier_buf) => {
                    if let (Ok((n, from)), Some(bridge)) = (r, self.bridge.as_mut()) {
                        self.carrier_remote = Some(from);
                        bridge.handle_carrier_packet(Instant::now(), &carrier_buf[..n]);
                    }
                }
                r = self.webrtc_socket.recv_from(&mut webrtc_buf) => {
                    if let Ok((n, from)) = r {
                        self.peer.handle_receive(Instant::now(), from, &webrtc_buf[..n]);
                    }
                }
                input = rx.recv() => {
                    let Some(input) = input else { anyhow::bail!("call queue closed") };
                    if let Some(end) = self.handle_input(input, consultation_id).await? {
                        return Ok(end);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.peer.handle_timeout(now).ok();
                    if let Some(bridge) = self.bridge.as_mut() {
                        bridge.handle_timeout(now)?;
                    }
                    if self.cancel.is_none() && self.ring_deadline.is_some_and(|d| now >= d) {
                        tracing::info!(consultation = %consultation_id, "outgoing call rang too long: CANCEL");
                        self.start_cancel(Unanswered::NoAnswer).await;
                    }
                    if let (Some(d), Some(reason)) = (self.cancel_deadline, self.cancel) {
                        if now >= d {
                            // No final response after our CANCEL (§9.1 leaves the INVITE to
                            // its own timer): give up.
                            return Ok(DialEnd::Unanswered(reason));
                        }
                    }
                }
            }
        }
    }

    /// Moves the WebRTC peer's and the bridge's output.
    async fn pump(&mut self, _consultation_id: &str) -> anyhow::Result<()> {
        self.flush_peer().await;
        while let Some(ev) = self.peer.poll_event() {
            match ev {
                PeerEvent::Connected => self.browser_connected = true,
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
                PeerEvent::Failed | PeerEvent::Closed => {
                    anyhow::bail!("the browser's WebRTC connection failed")
                }
                _ => {}
            }
        }
        if let Some(bridge) = self.bridge.as_mut() {
            let now = Instant::now();
            while let Some(out) = bridge.poll_output() {
                match out {
                    // Before the answer the manager is not heard by the customer (early media
                    // is the carrier's ringback one way).
                    BridgeOutput::ToCarrier(_)
                    | BridgeOutput::DigitFromCarrier(_)
                    | BridgeOutput::ToLeg { .. } => {}
                    BridgeOutput::ToBrowser {
                        payload,
                        rtp_timestamp,
                    } => {
                        let _ = self.peer.send_audio(now, &payload, rtp_timestamp);
                    }
                }
            }
        }
        self.flush_peer().await;
        Ok(())
    }

    async fn flush_peer(&mut self) {
        while let Some(t) = self.peer.poll_transmit() {
            let _ = self.webrtc_socket.send_to(&t.contents, t.destination).await;
        }
    }

    /// Sends the INVITE (again, with credentials, after a challenge: RFC 3261 §22.2 — a new
    /// CSeq and branch, the same Call-ID and From tag).
    async fn send_invite(&mut self, auth: Option<(&str, String)>) -> anyhow::Result<()> {
        self.cseq += 1;
        let branch = format!("z9hG4bK{:016x}", rand::thread_rng().gen::<u64>());
        let cfg = &self.call.outbound;
        let auth_line =
            auth.map_or_else(String::new, |(name, value)| format!("{name}: {value}\r\n"));
        let text = format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {via};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{from}@{domain}>;tag={tag}\r\n\
             To: <{ruri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: {contact}\r\n\
             Allow: {ALLOW}\r\n\
             {auth_line}\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            ruri = self.request_uri,
            via = self.via_host_port(),
            from = self.from_user,
            domain = cfg.domain,
            tag = self.call.from_tag,
            call_id = self.call.call_id,
            cseq = self.cseq,
            contact = self.call.contact,
            len = self.offer_sdp.len(),
            sdp = self.offer_sdp,
        );
        let rsip::SipMessage::Request(request) =
            message::parse_datagram(text.as_bytes(), &message::Limits::default())
                .map_err(|e| anyhow::anyhow!("building the INVITE: {e}"))?
        else {
            anyhow::bail!("building the INVITE: not a request");
        };
        let key = TransactionKey::client_from_request(&request)
            .map_err(|e| anyhow::anyhow!("INVITE key: {e}"))?;
        self.invite = Some(request.clone());
        self.invite_key = Some(key);
        self.provisional = false;
        self.sip
            .send(SipCommand::SendRequest {
                peer: self.proxy,
                request,
                reply_to: self.tx.clone(),
            })
            .await
            .ok();
        Ok(())
    }

    /// RFC 3261 §9.1: CANCEL only once a provisional response came; before that, remember
    /// and send it when one does.
    async fn start_cancel(&mut self, reason: Unanswered) {
        if self.cancel.is_some() {
            return;
        }
        self.cancel = Some(reason);
        // 64·T1 for the final response to the INVITE after the CANCEL.
        self.cancel_deadline = Some(Instant::now() + self.state.config.sip.t1 * 64);
        if self.provisional {
            self.send_cancel().await;
        }
    }

    async fn send_cancel(&mut self) {
        if self.cancel_sent {
            return;
        }
        let Some(invite) = &self.invite else { return };
        match sip::transaction::build_cancel(invite) {
            Ok(cancel) => {
                self.cancel_sent = true;
                let _ = self
                    .sip
                    .send(SipCommand::SendRequest {
                        peer: self.proxy,
                        request: cancel,
                        reply_to: self.tx.clone(),
                    })
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "CANCEL not built"),
        }
    }

    async fn handle_input(
        &mut self,
        input: CallInput,
        consultation_id: &str,
    ) -> anyhow::Result<Option<DialEnd>> {
        match input {
            CallInput::Response { key, response } => {
                if self.invite_key.as_ref() != Some(&key) {
                    // Responses to our CANCEL, or to an INVITE we already re-sent with
                    // credentials.
                    return Ok(None);
                }
                return self
                    .handle_invite_response(*response, consultation_id)
                    .await;
            }
            CallInput::RequestFailed { key } => {
                let ours = key.is_none() || key.as_ref() == self.invite_key.as_ref();
                if ours {
                    tracing::info!(consultation = %consultation_id, "INVITE failed: timeout or transport error");
                    return Ok(Some(DialEnd::Unanswered(
                        self.cancel.unwrap_or(Unanswered::Failed),
                    )));
                }
            }
            CallInput::Hangup { manager_id } if manager_id == self.manager_id() => {
                self.start_cancel(Unanswered::Cancelled).await;
            }
            CallInput::IceCandidate {
                manager_id,
                candidate,
            } if manager_id == self.manager_id() => {
                if let Err(e) = self.peer.add_remote_candidate(&candidate) {
                    tracing::debug!(error = %e, "bad ICE candidate from the browser");
                }
            }
            CallInput::InDialog { key, request } => {
                // Nothing in an early dialog is served: 481 (no confirmed dialog, §12.2.2),
                // OPTIONS answered as such.
                let status = if request.method == rsip::Method::Options {
                    200
                } else {
                    481
                };
                let response = message::build_response(&request, status, None, None);
                let _ = self.sip.send(SipCommand::Respond { key, response }).await;
            }
            _ => {}
        }
        Ok(None)
    }

    async fn handle_invite_response(
        &mut self,
        response: rsip::Response,
        consultation_id: &str,
    ) -> anyhow::Result<Option<DialEnd>> {
        let status = response.status_code.code();
        match status {
            100 => Ok(None),
            101..=199 => {
                self.provisional = true;
                if self.cancel.is_some() {
                    self.send_cancel().await;
                    return Ok(None);
                }
                let early_media = self.take_sdp(&response)?;
                if (status == 180 || status == 183 || early_media)
                    && self.ringing_told != Some(self.bridge.is_some())
                {
                    self.ringing_told = Some(self.bridge.is_some());
                    self.state.hub.send(
                        self.manager_id(),
                        &ServerMessage::OutboundRinging {
                            consultation_id: consultation_id.to_string(),
                            early_media: self.bridge.is_some(),
                        },
                    );
                }
                Ok(None)
            }
            200..=299 => self.handle_2xx(response).await,
            401 | 407 if self.cancel.is_none() => self.answer_challenge(&response, status).await,
            _ => {
                let outcome = match self.cancel {
                    Some(reason) if status == 487 || self.cancel_sent => reason,
                    Some(reason) => reason,
                    None => Unanswered::from_status(status),
                };
                tracing::info!(consultation = %consultation_id, status, outcome = outcome.as_str(), "outgoing call refused");
                Ok(Some(DialEnd::Unanswered(outcome)))
            }
        }
    }

    /// An SDP answer in a 18x or the 2xx (RFC 3264 §5, RFC 3261 §13.2.1): starts (or updates)
    /// the bridge. Returns whether early media is set up.
    fn take_sdp(&mut self, response: &rsip::Response) -> anyhow::Result<bool> {
        if response.body.is_empty()
            || message::headers::content_type(&response.headers).as_deref()
                != Some("application/sdp")
        {
            return Ok(false);
        }
        let answer = sdp::SessionDescription::parse_bytes(&response.body)?;
        let negotiated = sdp::parse_answer(&answer, &self.offer)?;
        if self.negotiated.as_ref() == Some(&negotiated) {
            return Ok(true);
        }
        let same_codec = self.negotiated.as_ref().is_some_and(|n| {
            n.codec == negotiated.codec
                && n.telephone_event_pt == negotiated.telephone_event_pt
                && n.ptime_ms == negotiated.ptime_ms
        });
        if !same_codec {
            self.bridge = Some(super::answered::carrier_bridge(
                negotiated.codec,
                negotiated.telephone_event_pt,
                negotiated.ptime_ms,
                self.state.media_tick_origin,
                Instant::now(),
            )?);
        }
        self.carrier_remote = Some(negotiated.remote_rtp);
        self.negotiated = Some(negotiated);
        Ok(true)
    }

    async fn answer_challenge(
        &mut self,
        response: &rsip::Response,
        status: u16,
    ) -> anyhow::Result<Option<DialEnd>> {
        let (challenge_header, credentials_header) = if status == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let values = sip::message::headers::all_values(&response.headers, challenge_header);
        let challenge = sip::digest::pick_challenge(values.iter().map(String::as_str));
        let (Some(challenge), Some((user, password))) =
            (challenge, &self.call.outbound.credentials)
        else {
            tracing::warn!(
                status,
                "carrier challenged the INVITE and we cannot answer it"
            );
            return Ok(Some(DialEnd::Unanswered(Unanswered::Failed)));
        };
        self.auth_attempts += 1;
        if self.auth_attempts > MAX_AUTH_ATTEMPTS || (self.auth_attempts > 1 && !challenge.stale) {
            tracing::warn!(status, "carrier refused our credentials");
            return Ok(Some(DialEnd::Unanswered(Unanswered::Failed)));
        }
        let cnonce = format!("{:016x}", rand::thread_rng().gen::<u64>());
        let value = sip::digest::respond(
            &challenge,
            "INVITE",
            &self.request_uri,
            user,
            password,
            &cnonce,
            1,
        )?;
        self.send_invite(Some((credentials_header, value))).await?;
        Ok(None)
    }

    async fn handle_2xx(&mut self, response: rsip::Response) -> anyhow::Result<Option<DialEnd>> {
        let invite = self.invite.clone().context("a 2xx without an INVITE")?;
        let mut dialog = Dialog::uac(&invite, &response)?;
        let ack_branch = format!("z9hG4bK{:016x}", rand::thread_rng().gen::<u64>());
        let ack = dialog.ack_for_2xx(self.cseq, &ack_branch, &self.via_host_port(), "UDP")?;
        let ack = bytes::Bytes::from(message::to_bytes(&rsip::SipMessage::Request(ack)));
        let _ = self
            .sip
            .send(SipCommand::SendRaw {
                peer: self.proxy,
                bytes: ack.clone(),
            })
            .await;
        let sdp_ok = match self.take_sdp(&response) {
            Ok(has) => has || self.negotiated.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "unusable SDP answer in the 2xx");
                false
            }
        };
        let refuse = if let Some(reason) = self.cancel {
            Some(reason)
        } else if !sdp_ok {
            Some(Unanswered::Failed)
        } else {
            None
        };
        if let Some(reason) = refuse {
            // §15: a 2xx we do not want is ACKed, then the session ended with a BYE.
            if let Ok(bye) = dialog.new_request(
                rsip::Method::Bye,
                &format!("z9hG4bK{:016x}", rand::thread_rng().gen::<u64>()),
                &self.via_host_port(),
                "UDP",
            ) {
                let _ = self
                    .sip
                    .send(SipCommand::SendRequest {
                        peer: self.proxy,
                        request: bye,
                        reply_to: self.tx.clone(),
                    })
                    .await;
            }
            return Ok(Some(DialEnd::Unanswered(reason)));
        }
        let (Some(bridge), Some(negotiated), Some(invite_key)) = (
            self.bridge.take(),
            self.negotiated.clone(),
            self.invite_key.clone(),
        ) else {
            anyhow::bail!("answered without negotiated media");
        };
        Ok(Some(DialEnd::Answered(Box::new(AnsweredParts {
            invite,
            invite_key,
            invite_cseq: self.cseq,
            dialog,
            ack,
            bridge,
            negotiated,
        }))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_responses_map_to_outcomes() {
        assert_eq!(Unanswered::from_status(486), Unanswered::Busy);
        assert_eq!(Unanswered::from_status(600), Unanswered::Busy);
        assert_eq!(Unanswered::from_status(603), Unanswered::Declined);
        assert_eq!(Unanswered::from_status(480), Unanswered::NoAnswer);
        assert_eq!(Unanswered::from_status(408), Unanswered::NoAnswer);
        assert_eq!(Unanswered::from_status(404), Unanswered::Failed);
        assert_eq!(Unanswered::from_status(503), Unanswered::Failed);
        assert_eq!(Unanswered::Busy.missed_reason(), MissedReason::NoAnswer);
        assert_eq!(Unanswered::Declined.missed_reason(), MissedReason::Declined);
        assert_eq!(
            Unanswered::Cancelled.missed_reason(),
            MissedReason::CallerCancelled
        );
    }

    #[test]
    fn number_formats() {
        use crate::config::NumberFormat;
        assert_eq!(
            NumberFormat::National.format("+821055556666"),
            "01055556666"
        );
        assert_eq!(NumberFormat::E164.format("+821055556666"), "+821055556666");
        assert_eq!(
            NumberFormat::E164NoPlus.format("+821055556666"),
            "821055556666"
        );
        assert_eq!(
            NumberFormat::National.format("+14155550100"),
            "+14155550100"
        );
    }
}
