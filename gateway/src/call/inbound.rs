//! The actor that owns one inbound phone call: it alone touches the call's state. It is reached
//! through a bounded queue ([`CallInput`]) and answers the carrier through the SIP service.
//!
//! Steps: dialled number → channel (404 if unknown, 403 if the channel cannot take calls),
//! customer by caller number, a new call consultation, then ringing driven by the pure
//! [`Ringing`] core until an outcome.

use std::sync::Arc;
use std::time::Instant;

use schemas::missed::MissedReason;
use schemas::ws::{RingStopReason, ServerMessage};
use sip::dialog::Dialog;
use sip::endpoint::Peer;
use sip::message;
use sip::sdp;
use sip::transaction::TransactionKey;
use tokio::sync::mpsc;

use super::answered;
use super::ringing::{RingAction, RingInput, Ringing, StopReason};
use super::CallInput;
use crate::db::{self, Direction, NewPhoneCall};
use crate::phone_number::normalize_e164;
use crate::recording;
use crate::sip_service::service::unix_ms;
use crate::sip_service::SipCommand;
use crate::state::AppState;

/// Everything the SIP service learned while admitting the INVITE.
#[derive(Debug)]
pub struct InboundCall {
    pub key: TransactionKey,
    pub request: rsip::Request,
    pub peer: Peer,
    pub call_id: String,
    pub trunk_id: String,
    /// The channel whose trunk delivered the call: it must own the dialled number.
    pub trunk_channel_id: String,
    /// Our To tag for every response in this dialog (RFC 3261 §8.2.6.2).
    pub to_tag: String,
    pub contact: String,
    /// The negotiated SDP answer, or `None` for an INVITE without an offer.
    pub offer: Option<sdp::Answer>,
}

/// Local media description for offer/answer. The RTP port is allocated when a manager answers
/// (the media issue); until then only the codec choice matters.
pub fn local_media(address: std::net::IpAddr) -> sdp::LocalMedia {
    sdp::LocalMedia {
        address,
        rtp_port: 0,
        codecs: vec![sdp::Codec::Pcmu, sdp::Codec::Pcma],
        telephone_event: true,
        session_id: 0,
        session_version: 0,
        username: "gateway".to_string(),
    }
}

pub(crate) struct Ctx {
    pub(crate) call: InboundCall,
    pub(crate) state: Arc<AppState>,
    pub(crate) sip: mpsc::Sender<SipCommand>,
}

impl Ctx {
    /// Answers the INVITE; every response but 100 carries our To tag.
    async fn respond(&self, status: u16, reason: Option<&str>) {
        let tag = (status > 100).then_some(self.call.to_tag.as_str());
        let mut response = message::build_response(&self.call.request, status, reason, tag);
        if (101..300).contains(&status) {
            // §12.1.1: a response that creates a dialog carries a Contact.
            response = message::with_header(
                response,
                rsip::Header::Other("Contact".into(), self.call.contact.clone()),
            );
        }
        let _ = self
            .sip
            .send(SipCommand::Respond {
                key: self.call.key.clone(),
                response,
            })
            .await;
    }

    async fn respond_in_dialog(&self, key: TransactionKey, request: &rsip::Request, status: u16) {
        let mut response = message::build_response(request, status, None, None);
        if status == 405 || status == 501 {
            response = message::with_header(
                response,
                rsip::Header::Other("Allow".into(), crate::sip_service::service::ALLOW.into()),
            );
        }
        let _ = self.sip.send(SipCommand::Respond { key, response }).await;
    }
}

/// Runs the call to its outcome. Its supervisor (in the SIP service) reports the end, and a
/// 500 reaches the carrier for any path that did not answer, panics included.
pub async fn run(
    call: InboundCall,
    state: Arc<AppState>,
    tx: mpsc::Sender<CallInput>,
    mut rx: mpsc::Receiver<CallInput>,
    sip: mpsc::Sender<SipCommand>,
) {
    let ctx = Ctx { call, state, sip };
    if let Err(e) = handle(&ctx, tx, &mut rx).await {
        tracing::error!(call_id = %ctx.call.call_id, error = format!("{e:#}"), "call failed");
        // RFC 3261 §21.5.1: our own failure.
        ctx.respond(500, None).await;
    }
}

/// The user part of a SIP URI (`sip:07012345678@host` → `07012345678`).
fn uri_user(uri: &rsip::Uri) -> Option<String> {
    uri.auth.as_ref().map(|a| a.user.clone())
}

fn caller_number(request: &rsip::Request) -> Option<String> {
    use rsip::prelude::*;
    let from = request.from_header().ok()?.typed().ok()?;
    // P-Asserted-Identity would be more trustworthy on some trunks; From is what all send.
    uri_user(&from.uri).and_then(|u| normalize_e164(&u).ok())
}

fn dialled_number(request: &rsip::Request) -> Option<String> {
    use rsip::prelude::*;
    let from_ruri = uri_user(&request.uri).and_then(|u| normalize_e164(&u).ok());
    from_ruri.or_else(|| {
        let to = request.to_header().ok()?.typed().ok()?;
        uri_user(&to.uri).and_then(|u| normalize_e164(&u).ok())
    })
}

async fn handle(
    ctx: &Ctx,
    tx: mpsc::Sender<CallInput>,
    rx: &mut mpsc::Receiver<CallInput>,
) -> anyhow::Result<()> {
    let db = &ctx.state.db;
    let request = &ctx.call.request;
    // The (early) dialog this INVITE creates (RFC 3261 §12.1.1); an INVITE that cannot make
    // one (no usable Contact, §8.1.1.8) is refused before any database work.
    let dialog = match Dialog::uas(request, &ctx.call.to_tag, &ctx.call.contact) {
        Ok(d) => d,
        Err(e) => {
            tracing::info!(call_id = %ctx.call.call_id, code = e.code(), "INVITE cannot create a dialog");
            ctx.respond(e.sip_status().unwrap_or(400), Some(&e.to_string()))
                .await;
            return Ok(());
        }
    };
    let Some(dialled) = dialled_number(request) else {
        ctx.respond(404, None).await;
        return Ok(());
    };
    let channel = match ctx
        .state
        .numbers
        .channel_for(db, &dialled, Instant::now())
        .await?
    {
        Some(channel) if channel.id == ctx.call.trunk_channel_id => channel,
        Some(channel) => {
            tracing::info!(number = %dialled, channel = %channel.id, trunk = %ctx.call.trunk_id,
                "number belongs to a channel this trunk does not serve");
            ctx.respond(404, None).await;
            return Ok(());
        }
        None => {
            tracing::info!(number = %dialled, "INVITE for an unknown number");
            ctx.respond(404, None).await;
            return Ok(());
        }
    };
    if channel.plan != db::Plan::Paid {
        tracing::info!(channel = %channel.id, "call refused: channel is not on a paid plan");
        ctx.respond(403, Some("Channel Not On A Paid Plan")).await;
        return Ok(());
    }
    if !channel.business_verified {
        tracing::info!(channel = %channel.id, "call refused: channel business is not verified");
        ctx.respond(403, Some("Channel Business Not Verified"))
            .await;
        return Ok(());
    }

    let now_ms = unix_ms();
    let caller = caller_number(request);
    let customer = match &caller {
        Some(number) => {
            db.find_or_create_customer_by_phone(&channel.id, number, now_ms)
                .await?
        }
        // A withheld number (anonymous) is a new customer each time: nothing to match on.
        None => db.create_customer(&channel.id, now_ms).await?,
    };
    let from_number = caller.clone().unwrap_or_else(|| "anonymous".to_string());
    let (consultation, _meet, record) = db
        .open_phone_consultation(
            &channel.id,
            &customer.id,
            Direction::Inbound,
            &NewPhoneCall {
                sip_call_id: &ctx.call.call_id,
                from_number: &from_number,
                to_number: &dialled,
                trunk_id: &ctx.call.trunk_id,
                currency: &channel.currency,
            },
            now_ms,
        )
        .await?;
    ctx.state.calls.insert(&consultation.id, tx);
    let result = ring(
        ctx,
        rx,
        dialog,
        &channel.id,
        &consultation.id,
        &record,
        caller,
        &dialled,
        &customer,
    )
    .await;
    let result = match result {
        Ok(RingEnd::Missed) => Ok(()),
        Ok(RingEnd::Answered {
            manager_id,
            browser_offer,
            dialog,
        }) => {
            let accepted = answered::Accepted {
                manager_id,
                browser_offer,
                consultation_id: &consultation.id,
                record: &record,
                dialog: *dialog,
            };
            in_call(ctx, rx, accepted).await
        }
        Err(e) => Err(e),
    };
    ctx.state.calls.remove(&consultation.id);
    result
}

/// The answered phase and its record: call record ended (with its charge) or, when the caller
/// hung up before the browser connected, a missed call.
async fn in_call(
    ctx: &Ctx,
    rx: &mut mpsc::Receiver<CallInput>,
    accepted: answered::Accepted<'_>,
) -> anyhow::Result<()> {
    let db = &ctx.state.db;
    let manager_id = accepted.manager_id.clone();
    let consultation_id = accepted.consultation_id.to_string();
    let record = accepted.record;
    let (outcome, recording) = answered::run(ctx, rx, accepted).await;
    let reason = match outcome {
        Ok(ended @ (answered::Outcome::Ended(_) | answered::Outcome::EndedByManager { .. })) => {
            let (reason, by_manager) = match ended {
                answered::Outcome::EndedByManager { manager_id } => {
                    (answered::EndReason::ManagerHungUp, Some(manager_id))
                }
                answered::Outcome::Ended(reason) => (reason, None),
                answered::Outcome::CancelledBeforeConnect => unreachable!(),
            };
            let ended_by = match reason {
                answered::EndReason::CustomerHungUp => "customer",
                // Whoever ended it for everyone (an invited manager too).
                answered::EndReason::ManagerHungUp => {
                    by_manager.as_deref().unwrap_or(manager_id.as_str())
                }
                _ => "system",
            };
            let r = recording::end_call(
                &ctx.state,
                record,
                reason.as_str(),
                Some(ended_by),
                recording,
                unix_ms(),
            )
            .await?;
            tracing::info!(consultation = %consultation_id, reason = reason.as_str(),
                seconds = r.billable_seconds, charge = r.charge_minor, "call ended");
            reason.as_str()
        }
        Ok(answered::Outcome::CancelledBeforeConnect) => {
            db.mark_missed(
                &consultation_id,
                &record.meet_id,
                &record.id,
                MissedReason::CallerCancelled,
                unix_ms(),
            )
            .await?;
            "customer_hung_up"
        }
        Err(e) => {
            tracing::error!(consultation = %consultation_id, error = format!("{e:#}"), "call failed after the accept");
            // Whichever applies: an answered call ends, an unanswered one is missed.
            if recording::end_call(
                &ctx.state,
                record,
                "failed",
                Some("system"),
                recording,
                unix_ms(),
            )
            .await
            .is_err()
            {
                let _ = db
                    .mark_missed(
                        &consultation_id,
                        &record.meet_id,
                        &record.id,
                        MissedReason::NoAnswer,
                        unix_ms(),
                    )
                    .await;
            }
            "media_failed"
        }
    };
    ctx.state.hub.send(
        &manager_id,
        &ServerMessage::CallEnded {
            consultation_id,
            reason: reason.to_string(),
        },
    );
    Ok(())
}

/// How ringing ended.
enum RingEnd {
    Missed,
    Answered {
        manager_id: String,
        browser_offer: String,
        dialog: Box<Dialog>,
    },
}

#[allow(clippy::too_many_arguments)]
async fn ring(
    ctx: &Ctx,
    rx: &mut mpsc::Receiver<CallInput>,
    mut dialog: Dialog,
    channel_id: &str,
    consultation_id: &str,
    record: &db::CallRecord,
    caller: Option<String>,
    dialled: &str,
    customer: &db::Customer,
) -> anyhow::Result<RingEnd> {
    let db = &ctx.state.db;
    let started = Instant::now();
    // The WebRTC offer that came with an accept, kept until the ringing core confirms it.
    let mut offers: Vec<(String, String)> = Vec::new();
    let ring_timeout = ctx.state.config.ring_timeout;
    let mut ringing = Ringing::new(started, ring_timeout);
    let expires_at_ms = unix_ms() + i64::try_from(ring_timeout.as_millis()).unwrap_or(0);
    loop {
        while let Some(action) = ringing.poll_action() {
            match action {
                RingAction::ClaimNext { exclude } => {
                    let claimed = db
                        .claim_next_manager(
                            channel_id,
                            consultation_id,
                            &exclude.iter().map(String::as_str).collect::<Vec<_>>(),
                            unix_ms(),
                        )
                        .await?;
                    ringing.handle_input(Instant::now(), RingInput::Claimed(claimed.map(|m| m.id)));
                }
                RingAction::Ring { manager_id } => {
                    let msg = ServerMessage::Ring {
                        consultation_id: consultation_id.to_string(),
                        call_id: record.id.clone(),
                        caller: caller.clone(),
                        customer_id: customer.id.clone(),
                        customer_name: customer.name.clone(),
                        dialled: dialled.to_string(),
                        ring_expires_at_ms: expires_at_ms,
                    };
                    let delivered = ctx.state.hub.send(&manager_id, &msg) > 0;
                    ringing.handle_input(
                        Instant::now(),
                        RingInput::RingDelivered {
                            manager_id,
                            delivered,
                        },
                    );
                }
                RingAction::SendRinging => ctx.respond(180, None).await,
                RingAction::StopRinging { manager_id, reason } => {
                    // When the call is missed, `mark_missed` frees every manager it rang in
                    // its own transaction; only a call that goes on frees one here.
                    if !matches!(reason, StopReason::Missed(_)) || !ringing.is_done() {
                        db.release_ringing(&manager_id, consultation_id).await?;
                    }
                    let reason = match reason {
                        StopReason::DeclinedByManager => RingStopReason::DeclinedByYou,
                        StopReason::Missed(r) => RingStopReason::Missed(r),
                    };
                    ctx.state.hub.send(
                        &manager_id,
                        &ServerMessage::RingStopped {
                            consultation_id: consultation_id.to_string(),
                            reason,
                        },
                    );
                }
                RingAction::Missed { reason, sip_status } => {
                    // Answer the carrier first: it is waiting, the database is not.
                    ctx.respond(sip_status, None).await;
                    db.mark_missed(
                        consultation_id,
                        &record.meet_id,
                        &record.id,
                        reason,
                        unix_ms(),
                    )
                    .await?;
                    tracing::info!(consultation = %consultation_id, reason = reason.as_str(), "call missed");
                    return Ok(RingEnd::Missed);
                }
                RingAction::Answer { manager_id } => {
                    let browser_offer = offers
                        .iter()
                        .rev()
                        .find(|(m, _)| *m == manager_id)
                        .map(|(_, o)| o.clone())
                        .unwrap_or_default();
                    ctx.state.hub.send(
                        &manager_id,
                        &ServerMessage::RingStopped {
                            consultation_id: consultation_id.to_string(),
                            reason: RingStopReason::Answered,
                        },
                    );
                    return Ok(RingEnd::Answered {
                        manager_id,
                        browser_offer,
                        dialog: Box::new(dialog),
                    });
                }
            }
        }
        let deadline = ringing.poll_timeout().unwrap_or(started + ring_timeout);
        tokio::select! {
            input = rx.recv() => {
                let now = Instant::now();
                match input {
                    Some(CallInput::CallerCancelled) => ringing.handle_input(now, RingInput::CallerCancelled),
                    Some(CallInput::Accepted { manager_id, sdp_offer }) => {
                        offers.push((manager_id.clone(), sdp_offer));
                        ringing.handle_input(now, RingInput::Accepted { manager_id });
                    }
                    Some(CallInput::Declined { manager_id }) => ringing.handle_input(now, RingInput::Declined { manager_id }),
                    Some(CallInput::SessionGone { manager_id }) => ringing.handle_input(now, RingInput::SessionGone { manager_id }),
                    // Nobody is in the call yet: nothing to leave, invite or join.
                    Some(CallInput::Leave { .. } | CallInput::InviteManager { .. } | CallInput::Join { .. }) => {}
                    Some(CallInput::InDialog { key, request }) => {
                        // Before the answer only the early dialog exists, and only once our
                        // 180 has told the caller its tag (§12.2.2: otherwise 481).
                        let status = if !ringing.sent_ringing() || !dialog.matches_request(&request) {
                            481
                        } else {
                            match dialog.handle_request(&request) {
                                Err(e) => e.sip_status().unwrap_or(500),
                                // §15.1.2: a BYE for the early dialog is answered 200 and the
                                // pending INVITE 487, as for CANCEL (some carriers hang up so).
                                Ok(()) if request.method == rsip::Method::Bye => {
                                    ringing.handle_input(now, RingInput::CallerCancelled);
                                    200
                                }
                                Ok(()) if request.method == rsip::Method::Options => 200,
                                // Known methods we do not implement within a dialog (§8.2.1).
                                Ok(()) => 501,
                            }
                        };
                        ctx.respond_in_dialog(key, &request, status).await;
                    }
                    // Nothing is sent by this call before the answer, so nothing comes back.
                    Some(
                        CallInput::Ack(_)
                        | CallInput::Response { .. }
                        | CallInput::RequestFailed { .. }
                        | CallInput::IceCandidate { .. }
                        | CallInput::Dtmf { .. }
                        | CallInput::Hangup { .. },
                    ) => {}
                    None => ringing.handle_input(now, RingInput::CallerCancelled),
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => ringing.handle_timeout(Instant::now()),
        }
    }
}
