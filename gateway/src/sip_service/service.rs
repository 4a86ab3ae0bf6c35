//! The SIP service task: owns the sans-IO [`Endpoint`], feeds it what the transports received,
//! puts its output on the wire, admits new INVITEs (trunk access list, digest, limits, SDP) and
//! routes everything else to the call actor that owns the call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rsip::prelude::*;
use sip::digest::{Credentials, DigestServer, Secret};
use sip::endpoint::{Endpoint, EndpointConfig, EndpointEvent, Peer, Transmit, Transport};
use sip::message::{self, Limits};
use sip::sdp;
use sip::transaction::TransactionKey;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::call::inbound::{self, InboundCall};
use crate::call::outbound::{self, OutboundCall, PlaceCall};
use crate::call::CallInput;
use crate::config::TrunkConfig;
use crate::state::AppState;
use crate::trunk_limits::TrunkLimits;

use super::transport::Inbound;
use super::SipStats;

/// Methods we implement, for `Allow` (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE";
/// Queue from call actors to the service.
pub const COMMAND_QUEUE_LEN: usize = 8192;
/// Queue from the service to one call actor.
pub const CALL_QUEUE_LEN: usize = 32;

/// What call actors ask of the SIP service.
#[derive(Debug)]
pub enum SipCommand {
    Respond {
        key: TransactionKey,
        response: rsip::Response,
    },
    /// Starts a client transaction (BYE, re-INVITE, an outgoing INVITE); its responses and
    /// timeout come back to `reply_to` as [`CallInput::Response`] / [`CallInput::RequestFailed`].
    SendRequest {
        peer: Peer,
        request: rsip::Request,
        reply_to: mpsc::Sender<CallInput>,
    },
    /// Bytes outside any transaction: 2xx retransmissions and the ACK for a 2xx, which belong
    /// to the dialog (RFC 3261 §13.3.1.4, §13.2.2.4).
    SendRaw { peer: Peer, bytes: Bytes },
    /// The call is over: forget its routing and free its trunk slot. If its INVITE never got
    /// a final answer (the actor failed), the carrier gets 500 (RFC 3261 §21.5.1).
    CallEnded {
        call_id: String,
        trunk_index: usize,
        invite_key: TransactionKey,
    },
    /// A manager calls a customer (`call_customer` on the console): pick the channel's
    /// outbound trunk, admit the call against its limits and start the call's actor.
    PlaceCall(PlaceCall),
    /// An outgoing call is over: forget its routing and free its trunk slot.
    OutboundEnded { call_id: String, trunk_index: usize },
}

struct TrunkRuntime {
    config: TrunkConfig,
    channel_id: String,
    limits: TrunkLimits,
    digest: Option<DigestServer>,
}

struct LiveCall {
    tx: mpsc::Sender<CallInput>,
}

pub struct SipService {
    endpoint: Endpoint,
    udp: Option<Arc<UdpSocket>>,
    tcp_writers: HashMap<u64, mpsc::Sender<Bytes>>,
    trunks: Vec<TrunkRuntime>,
    calls: HashMap<String, LiveCall>,
    /// Who started each client transaction, to hand its responses back.
    client_transactions: HashMap<TransactionKey, mpsc::Sender<CallInput>>,
    rng: StdRng,
    state: Arc<AppState>,
    commands_tx: mpsc::Sender<SipCommand>,
    /// Host:port for our Contact header, per transport.
    contact_udp: Option<SocketAddr>,
    contact_tcp: Option<SocketAddr>,
    advertised_host: Option<String>,
    stats: Arc<SipStats>,
}

/// Wall-clock milliseconds, for digest nonces and database timestamps.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub struct ServiceParts {
    pub state: Arc<AppState>,
    pub udp: Option<Arc<UdpSocket>>,
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    pub stats: Arc<SipStats>,
    pub rng_seed: Option<u64>,
}

impl SipService {
    pub fn new(parts: ServiceParts, commands_tx: mpsc::Sender<SipCommand>) -> SipService {
        let cfg = &parts.state.config;
        let mut rng = match parts.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let digest_secret: Vec<u8> = cfg
            .sip
            .digest_secret
            .clone()
            .unwrap_or_else(|| (0..32).map(|_| rng.gen::<u8>()).collect());
        let trunks = cfg
            .channels
            .iter()
            .flat_map(|ch| ch.trunks.iter().map(move |t| (ch.id.clone(), t.clone())))
            .map(|(channel_id, t)| TrunkRuntime {
                limits: TrunkLimits::new(t.max_calls_per_second, t.max_concurrent_calls),
                digest: t.digest.as_ref().map(|d| {
                    DigestServer::new(d.realm.clone(), digest_secret.clone())
                        .with_algorithms(&d.algorithms)
                }),
                channel_id,
                config: t,
            })
            .collect();
        let timers = sip::transaction::TimerConfig {
            t1: cfg.sip.t1,
            ..Default::default()
        };
        SipService {
            endpoint: Endpoint::new(EndpointConfig {
                timers,
                limits: Limits::default(),
            }),
            udp: parts.udp,
            tcp_writers: HashMap::new(),
            trunks,
            calls: HashMap::new(),
            client_transactions: HashMap::new(),
            rng,
            advertised_host: cfg.sip.advertised_host.clone(),
            state: parts.state,
            commands_tx,
            contact_udp: parts.udp_addr,
            contact_tcp: parts.tcp_addr,
            stats: parts.stats,
        }
    }

    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut commands: mpsc::Receiver<SipCommand>,
    ) {
        loop {
            let deadline = self.endpoint.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    self.handle_inbound(Instant::now(), msg);
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.handle_command(Instant::now(), cmd);
                }
                () = sleep => {
                    self.endpoint.handle_timeout(Instant::now());
                }
            }
            self.drain().await;
        }
    }

    fn handle_inbound(&mut self, now: Instant, msg: Inbound) {
        match msg {
            Inbound::Datagram { peer, bytes } => self.endpoint.handle_datagram(now, peer, &bytes),
            Inbound::StreamMessage { peer, bytes } => {
                self.endpoint.handle_stream_message(now, peer, &bytes)
            }
            Inbound::Connected { id, writer } => {
                self.tcp_writers.insert(id, writer);
            }
            Inbound::Closed { id } => {
                self.tcp_writers.remove(&id);
            }
        }
    }

    fn handle_command(&mut self, now: Instant, cmd: SipCommand) {
        match cmd {
            SipCommand::Respond { key, response } => {
                if let Err(e) = self.endpoint.respond(now, &key, response) {
                    tracing::debug!(error = %e, "response not sent");
                }
            }
            SipCommand::SendRequest {
                peer,
                request,
                reply_to,
            } => match self.endpoint.send_request(now, peer, request) {
                Ok(key) => {
                    self.client_transactions.insert(key, reply_to);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "request not sent");
                    let _ = reply_to.try_send(CallInput::RequestFailed { key: None });
                }
            },
            SipCommand::SendRaw { peer, bytes } => self.endpoint.send_bytes(peer, bytes),
            SipCommand::CallEnded {
                call_id,
                trunk_index,
                invite_key,
            } => {
                if self.endpoint.fail_if_pending(now, &invite_key, 500) {
                    tracing::warn!(call_id = %call_id, "call ended without a final response: sent 500");
                }
                self.calls.remove(&call_id);
                if let Some(t) = self.trunks.get_mut(trunk_index) {
                    t.limits.release();
                }
            }
            SipCommand::PlaceCall(place) => self.place_call(now, place),
            SipCommand::OutboundEnded {
                call_id,
                trunk_index,
            } => {
                self.calls.remove(&call_id);
                if let Some(t) = self.trunks.get_mut(trunk_index) {
                    t.limits.release();
                }
            }
        }
    }

    /// Starts an outgoing call on the manager's channel's first trunk with an outbound proxy.
    fn place_call(&mut self, now: Instant, place: PlaceCall) {
        let refuse = |state: &AppState, manager_id: &str, code: &str, message: String| {
            state.hub.send(
                manager_id,
                &schemas::ws::ServerMessage::Error {
                    code: code.into(),
                    message,
                },
            );
        };
        let Some(trunk_index) = self
            .trunks
            .iter()
            .position(|t| t.channel_id == place.channel_id && t.config.outbound.is_some())
        else {
            return refuse(
                &self.state,
                &place.manager_id,
                "call.no_outbound_trunk",
                format!(
                    "channel {} has no trunk for outgoing calls",
                    place.channel_id
                ),
            );
        };
        let trunk = &mut self.trunks[trunk_index];
        if let Err(limit) = trunk.limits.try_admit(now) {
            self.stats
                .limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return refuse(
                &self.state,
                &place.manager_id,
                "call.trunk_busy",
                format!("the trunk is at its limit ({}); try again", limit.code()),
            );
        }
        let Some(outbound_cfg) = trunk.config.outbound.clone() else {
            return;
        };
        let trunk_id = trunk.config.id.clone();
        let call_id = format!("{:032x}@gateway", self.rng.gen::<u128>());
        let from_tag = format!("{:016x}", self.rng.gen::<u64>());
        let (tx, rx) = mpsc::channel(CALL_QUEUE_LEN);
        self.calls
            .insert(call_id.clone(), LiveCall { tx: tx.clone() });
        let contact = self.contact_uri(Transport::Udp);
        let call = OutboundCall {
            place,
            call_id: call_id.clone(),
            from_tag,
            trunk_id,
            trunk_index,
            outbound: outbound_cfg,
            contact,
        };
        let ended = SipCommand::OutboundEnded {
            call_id,
            trunk_index,
        };
        let actor = tokio::spawn(outbound::run(
            call,
            self.state.clone(),
            tx,
            rx,
            self.commands_tx.clone(),
        ));
        let commands = self.commands_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = actor.await {
                tracing::error!(error = %e, "outbound call actor panicked");
            }
            let _ = commands.send(ended).await;
        });
    }

    /// Puts queued output on the wire and hands events to their owners, until both are empty.
    async fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                progressed = true;
                self.transmit(t).await;
            }
            while let Some(ev) = self.endpoint.poll_event() {
                progressed = true;
                self.handle_event(Instant::now(), ev);
            }
            if !progressed {
                break;
            }
        }
        self.stats
            .update_endpoint(self.endpoint.stats(), self.endpoint.transaction_count());
    }

    async fn transmit(&mut self, t: Transmit) {
        match t.peer.transport {
            Transport::Udp => {
                let Some(sock) = &self.udp else { return };
                if let Err(e) = sock.send_to(&t.bytes, t.peer.addr).await {
                    tracing::debug!(peer = %t.peer.addr, error = %e, "udp send");
                }
            }
            Transport::Tcp => {
                let writer = t.peer.connection.and_then(|id| self.tcp_writers.get(&id));
                match writer {
                    Some(w) if w.try_send(t.bytes).is_ok() => {}
                    _ => {
                        // §18.2.2 would have us open a new connection to the Via; carriers
                        // keep theirs open, so we report the failure to the transactions.
                        self.endpoint.handle_transport_error(Instant::now(), t.peer);
                    }
                }
            }
        }
    }

    fn handle_event(&mut self, now: Instant, ev: EndpointEvent) {
        match ev {
            EndpointEvent::Request { key, request, peer } => {
                self.handle_request(now, key, request, peer)
            }
            EndpointEvent::Cancelled { cancel, .. } => {
                if let Some(call) = call_id_of(&cancel).and_then(|id| self.calls.get(&id)) {
                    let _ = call.tx.try_send(CallInput::CallerCancelled);
                }
            }
            EndpointEvent::Ack { request, .. } => {
                if let Some(call) = call_id_of(&request).and_then(|id| self.calls.get(&id)) {
                    let _ = call.tx.try_send(CallInput::Ack(Box::new(request)));
                }
            }
            EndpointEvent::Response { key, response } => {
                let last = response.status_code.code() >= 200;
                if let Some(tx) = self.client_transactions.get(&key) {
                    let _ = tx.try_send(CallInput::Response {
                        key: key.clone(),
                        response: Box::new(response),
                    });
                }
                // A 2xx to INVITE can come again (RFC 6026 Accepted): keep routing until the
                // transaction ends; other finals end the routing now.
                if last && key.method() != "INVITE" {
                    self.client_transactions.remove(&key);
                }
            }
            EndpointEvent::ClientTimeout { key, .. } | EndpointEvent::TransportError { key } => {
                if let Some(tx) = self.client_transactions.remove(&key) {
                    let _ = tx.try_send(CallInput::RequestFailed { key: Some(key) });
                }
            }
            EndpointEvent::ServerTimeout { .. } => {}
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &rsip::Request,
        status: u16,
        extra: &[(&str, String)],
    ) {
        let mut response = message::build_response(request, status, None, None);
        for (name, value) in extra {
            response =
                message::with_header(response, rsip::Header::Other((*name).into(), value.clone()));
        }
        if let Err(e) = self.endpoint.respond(now, key, response) {
            tracing::debug!(error = %e, status, "response not sent");
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: rsip::Request,
        peer: Peer,
    ) {
        let has_to_tag = message::headers::to_tag(&request.headers)
            .ok()
            .flatten()
            .is_some();
        if has_to_tag {
            return self.handle_in_dialog(now, key, request);
        }
        // RFC 3261 §11.2: OPTIONS is answered as an INVITE would be, so non-trunk peers get 403.
        let Some(trunk_index) = self.trunk_for(peer.addr) else {
            self.stats
                .forbidden_source
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(peer = %peer.addr, method = %request.method, "request from an address no trunk allows");
            return self.respond(now, &key, &request, 403, &[]);
        };
        // RFC 3261 §8.2.2.3: an extension the caller requires and we lack gets 420 listing it.
        // No extension is implemented yet (100rel and timer arrive with the media bridge).
        let required = message::headers::option_tags(&request.headers, "Require");
        if !required.is_empty() && request.method != rsip::Method::Options {
            return self.respond(
                now,
                &key,
                &request,
                420,
                &[("Unsupported", required.join(", "))],
            );
        }
        match request.method {
            rsip::Method::Invite => self.admit_invite(now, key, request, peer, trunk_index),
            rsip::Method::Options => {
                // §11.2: capabilities, as an INVITE would be answered.
                self.respond(
                    now,
                    &key,
                    &request,
                    200,
                    &[
                        ("Allow", ALLOW.to_string()),
                        ("Accept", "application/sdp".to_string()),
                        ("Supported", String::new()),
                    ],
                );
            }
            // A BYE (or other dialog request) without a To tag matches no dialog (§12.2.2).
            rsip::Method::Bye | rsip::Method::Update => self.respond(now, &key, &request, 481, &[]),
            // Known methods we do not serve out of dialog: 405 with Allow (§8.2.1).
            _ => self.respond(now, &key, &request, 405, &[("Allow", ALLOW.to_string())]),
        }
    }

    fn handle_in_dialog(&mut self, now: Instant, key: TransactionKey, request: rsip::Request) {
        match call_id_of(&request).and_then(|id| self.calls.get(&id)) {
            Some(call) => {
                let input = CallInput::InDialog {
                    key: key.clone(),
                    request: Box::new(request.clone()),
                };
                if call.tx.try_send(input).is_err() {
                    // The call is ending or stuck: RFC 3261 §21.5.4 lets us ask for a retry.
                    self.respond(
                        now,
                        &key,
                        &request,
                        503,
                        &[("Retry-After", "1".to_string())],
                    );
                }
            }
            // §12.2.2: no dialog matches.
            None => self.respond(now, &key, &request, 481, &[]),
        }
    }

    fn trunk_for(&self, addr: SocketAddr) -> Option<usize> {
        self.trunks
            .iter()
            .position(|t| t.config.allowed_cidrs.iter().any(|c| c.contains(addr.ip())))
    }

    fn admit_invite(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: rsip::Request,
        peer: Peer,
        trunk_index: usize,
    ) {
        let now_ms = u64::try_from(unix_ms()).unwrap_or(0);
        // Digest challenge (RFC 3261 §22.2), when the trunk asks for one.
        if let Some(challenge_headers) = self.check_digest(trunk_index, &request, now_ms) {
            let headers: Vec<(&str, String)> = challenge_headers
                .into_iter()
                .map(|v| ("WWW-Authenticate", v))
                .collect();
            self.stats
                .auth_challenges
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return self.respond(now, &key, &request, 401, &headers);
        }
        // RFC 4028 §8.1: a session interval below our minimum is refused with 422 and Min-SE
        // (the carrier retries with a larger one).
        let session_expires = message::headers::first_value(&request.headers, "Session-Expires");
        if let Err(e) = sip::session_timer::check_request(
            session_expires.as_deref(),
            sip::session_timer::MIN_SE_S,
        ) {
            let min_se = sip::session_timer::MIN_SE_S.to_string();
            return self.respond(now, &key, &request, e.sip_status(), &[("Min-SE", min_se)]);
        }
        let trunk = &mut self.trunks[trunk_index];
        if let Err(limit) = trunk.limits.try_admit(now) {
            self.stats
                .limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(trunk = %trunk.config.id, code = limit.code(), "INVITE over the trunk's limit");
            return self.respond(
                now,
                &key,
                &request,
                503,
                &[("Retry-After", limit.retry_after_s().to_string())],
            );
        }
        let offer = match negotiate(&request, self.local_media()) {
            Ok(o) => o,
            Err((status, header, value)) => {
                self.trunks[trunk_index].limits.release();
                if status == 488 {
                    self.stats
                        .no_common_codec
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                return self.respond(now, &key, &request, status, &[(header, value)]);
            }
        };
        let Some(call_id) = call_id_of(&request) else {
            self.trunks[trunk_index].limits.release();
            return self.respond(now, &key, &request, 400, &[]);
        };
        // §8.2.6.1 / §17.2.1: the call layer needs the database before its next answer.
        self.respond(now, &key, &request, 100, &[]);
        let (tx, rx) = mpsc::channel(CALL_QUEUE_LEN);
        self.calls
            .insert(call_id.clone(), LiveCall { tx: tx.clone() });
        let to_tag = format!("{:016x}", self.rng.gen::<u64>());
        let call = InboundCall {
            key,
            request,
            peer,
            call_id,
            trunk_id: self.trunks[trunk_index].config.id.clone(),
            trunk_channel_id: self.trunks[trunk_index].channel_id.clone(),
            to_tag,
            contact: self.contact_uri(peer.transport),
            offer,
        };
        // A panic in the call's actor ends that call only: its supervisor still tells the
        // service, which answers the carrier and frees the trunk slot.
        let ended = SipCommand::CallEnded {
            call_id: call.call_id.clone(),
            trunk_index,
            invite_key: call.key.clone(),
        };
        let actor = tokio::spawn(inbound::run(
            call,
            self.state.clone(),
            tx,
            rx,
            self.commands_tx.clone(),
        ));
        let commands = self.commands_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = actor.await {
                tracing::error!(error = %e, "call actor panicked");
            }
            let _ = commands.send(ended).await;
        });
    }

    /// `None` when the request may pass; otherwise the challenge header values to send.
    fn check_digest(
        &mut self,
        trunk_index: usize,
        request: &rsip::Request,
        now_ms: u64,
    ) -> Option<Vec<String>> {
        let trunk = &self.trunks[trunk_index];
        let (Some(server), Some(cfg)) = (&trunk.digest, &trunk.config.digest) else {
            return None;
        };
        let random: u64 = self.rng.gen();
        let header = request.headers.iter().find_map(|h| match h {
            rsip::Header::Authorization(a) => Some(a.value().to_string()),
            rsip::Header::Other(name, value) if name.eq_ignore_ascii_case("Authorization") => {
                Some(value.clone())
            }
            _ => None,
        });
        let Some(header) = header else {
            return Some(server.challenge_headers(now_ms, random, false));
        };
        let verdict = Credentials::parse(&header).and_then(|creds| {
            server.verify(
                &creds,
                "INVITE",
                &cfg.username,
                Secret::Password(&cfg.password),
                now_ms,
            )
        });
        match verdict {
            Ok(()) => None,
            Err(e) => {
                tracing::info!(trunk = %trunk.config.id, code = e.code(), "digest authentication failed");
                Some(server.challenge_headers(now_ms, random, e.is_stale()))
            }
        }
    }

    fn contact_uri(&self, transport: Transport) -> String {
        let addr = match transport {
            Transport::Udp => self.contact_udp.or(self.contact_tcp),
            Transport::Tcp => self.contact_tcp.or(self.contact_udp),
        };
        let port = addr.map_or(5060, |a| a.port());
        let host = self
            .advertised_host
            .clone()
            .or_else(|| addr.map(|a| a.ip().to_string()))
            .unwrap_or_else(|| "127.0.0.1".to_string());
        match transport {
            Transport::Udp => format!("<sip:gateway@{host}:{port}>"),
            Transport::Tcp => format!("<sip:gateway@{host}:{port};transport=tcp>"),
        }
    }

    fn local_media(&self) -> sdp::LocalMedia {
        let host = self
            .contact_udp
            .or(self.contact_tcp)
            .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip());
        inbound::local_media(host)
    }
}

fn call_id_of(request: &rsip::Request) -> Option<String> {
    message::headers::call_id(&request.headers).ok()
}

/// Runs SDP offer/answer on the INVITE's body (RFC 3264 §6). An INVITE without a body is a
/// late offer: allowed, our offer goes in the 200 OK.
fn negotiate(
    request: &rsip::Request,
    local: sdp::LocalMedia,
) -> Result<Option<sdp::Answer>, (u16, &'static str, String)> {
    if request.body.is_empty() {
        return Ok(None);
    }
    // RFC 3261 §8.2.3: a body we cannot read is 415 with the types we accept.
    let content_type = message::headers::content_type(&request.headers);
    if content_type.as_deref() != Some("application/sdp") {
        return Err((415, "Accept", "application/sdp".to_string()));
    }
    let refuse = |e: sdp::SdpError| {
        // RFC 3261 §20.43: say why in a Warning (305 incompatible format, 304 media type…).
        let warning = e
            .warning("gateway")
            .unwrap_or_else(|| format!("399 gateway \"{e}\""));
        (e.sip_status(), "Warning", warning)
    };
    let offer = sdp::SessionDescription::parse_bytes(&request.body).map_err(refuse)?;
    sdp::negotiate_answer(&offer, &local)
        .map(Some)
        .map_err(refuse)
}
