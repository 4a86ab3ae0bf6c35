//! `GET /v1/ws`: the manager console's live channel (rings, presence, decline).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use schemas::ws::{ClientMessage, Presence, ServerMessage};

use crate::call::CallInput;
use crate::db::Manager;
use crate::state::AppState;

use super::auth::authenticate;
use super::ApiError;

/// Server pings find sockets whose browser vanished without a close (laptop lid shut).
const PING_INTERVAL: Duration = Duration::from_secs(20);

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let manager = authenticate(&state, &headers, query.as_deref()).await?;
    Ok(ws
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| session(state, manager, socket)))
}

async fn session(state: Arc<AppState>, manager: Manager, mut socket: WebSocket) {
    let (session_id, mut outbox) = state.hub.register(&manager.id);
    let mut do_not_disturb = manager.do_not_disturb;
    // Connecting the console puts the manager online (they can go offline from it).
    if let Err(e) = state.db.set_presence(&manager.id, true).await {
        tracing::warn!(manager = %manager.id, error = %e, "could not set presence");
    }
    let hello = ServerMessage::Hello {
        manager_id: manager.id.clone(),
        channel_id: manager.channel_id.clone(),
        presence: Presence::Online,
        do_not_disturb,
    };
    // Consultations ringing this session or in a call with it: told to the call if the socket
    // goes away (a closed console must not keep a call or a ring).
    let mut live: HashSet<String> = HashSet::new();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    let mut alive = send_json(&mut socket, &hello).await;
    while alive {
        tokio::select! {
            out = outbox.recv() => {
                let Some(msg) = out else { break };
                match &msg {
                    ServerMessage::Ring { consultation_id, .. } => {
                        live.insert(consultation_id.clone());
                    }
                    ServerMessage::RingStopped { consultation_id, .. } => {
                        live.remove(consultation_id);
                    }
                    // In a call (answered, joined or placed from here) until it ends for us.
                    ServerMessage::CallAnswered { consultation_id, .. }
                    | ServerMessage::OutboundStarted { consultation_id, .. } => {
                        live.insert(consultation_id.clone());
                    }
                    ServerMessage::CallEnded { consultation_id, .. } => {
                        live.remove(consultation_id);
                    }
                    _ => {}
                }
                alive = send_json(&mut socket, &msg).await;
            }
            incoming = socket.recv() => {
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let reply = handle_client_message(&state, &manager, &mut do_not_disturb, text.as_str()).await;
                        if let Some(reply) = reply {
                            alive = send_json(&mut socket, &reply).await;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        alive = send_json(&mut socket, &ServerMessage::Error {
                            code: "ws.binary_not_supported".into(),
                            message: "send JSON text frames".into(),
                        }).await;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                alive = socket.send(Message::Ping(Default::default())).await.is_ok();
            }
        }
    }
    let remaining = state.hub.unregister(&manager.id, session_id);
    if remaining == 0 {
        if let Err(e) = state.db.set_presence(&manager.id, false).await {
            tracing::warn!(manager = %manager.id, error = %e, "could not clear presence");
        }
        for consultation_id in live {
            state.calls.send(
                &consultation_id,
                CallInput::SessionGone {
                    manager_id: manager.id.clone(),
                },
            );
        }
    }
}

async fn handle_client_message(
    state: &AppState,
    manager: &Manager,
    do_not_disturb: &mut bool,
    text: &str,
) -> Option<ServerMessage> {
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(ServerMessage::Error {
                code: "ws.bad_message".into(),
                message: e.to_string(),
            })
        }
    };
    match msg {
        ClientMessage::Decline { consultation_id } => {
            let delivered = state.calls.send(
                &consultation_id,
                CallInput::Declined {
                    manager_id: manager.id.clone(),
                },
            );
            (!delivered).then(|| ServerMessage::Error {
                code: "call.not_ringing".into(),
                message: format!("consultation {consultation_id} is not ringing here"),
            })
        }
        ClientMessage::Accept {
            consultation_id,
            sdp_offer,
        } => route(state, manager, &consultation_id, |manager_id| {
            CallInput::Accepted {
                manager_id,
                sdp_offer,
            }
        }),
        ClientMessage::IceCandidate {
            consultation_id,
            candidate,
        } => route(state, manager, &consultation_id, |manager_id| {
            CallInput::IceCandidate {
                manager_id,
                candidate,
            }
        }),
        ClientMessage::Dtmf {
            consultation_id,
            digit,
        } => route(state, manager, &consultation_id, |manager_id| {
            CallInput::Dtmf { manager_id, digit }
        }),
        ClientMessage::Hangup { consultation_id } => {
            route(state, manager, &consultation_id, |manager_id| {
                CallInput::Hangup { manager_id }
            })
        }
        ClientMessage::Leave { consultation_id } => {
            route(state, manager, &consultation_id, |manager_id| {
                CallInput::Leave { manager_id }
            })
        }
        ClientMessage::InviteManager {
            consultation_id,
            manager_id: invitee_id,
        } => route(state, manager, &consultation_id, |manager_id| {
            CallInput::InviteManager {
                manager_id,
                invitee_id,
            }
        }),
        ClientMessage::Join {
            consultation_id,
            sdp_offer,
        } => route(state, manager, &consultation_id, |manager_id| {
            CallInput::Join {
                manager_id,
                sdp_offer,
            }
        }),
        ClientMessage::CallCustomer {
            customer_number,
            customer_id,
            sdp_offer,
        } => call_customer(state, manager, customer_number, customer_id, sdp_offer),
        ClientMessage::SetPresence { presence } => {
            let online = presence == Presence::Online;
            if let Err(e) = state.db.set_presence(&manager.id, online).await {
                tracing::warn!(error = %e, "set presence");
                return Some(internal_error());
            }
            broadcast_presence(state, manager, online, *do_not_disturb);
            None
        }
        ClientMessage::SetDoNotDisturb { enabled } => {
            if let Err(e) = state.db.set_do_not_disturb(&manager.id, enabled).await {
                tracing::warn!(error = %e, "set do-not-disturb");
                return Some(internal_error());
            }
            *do_not_disturb = enabled;
            broadcast_presence(state, manager, true, enabled);
            None
        }
    }
}

/// `call_customer`: checks the seat and hands the call to the SIP service; the call's actor
/// answers with `outbound_started` (or an error) on this manager's sessions.
fn call_customer(
    state: &AppState,
    manager: &Manager,
    customer_number: Option<String>,
    customer_id: Option<String>,
    sdp_offer: String,
) -> Option<ServerMessage> {
    let error = |code: &str, message: &str| {
        Some(ServerMessage::Error {
            code: code.into(),
            message: message.into(),
        })
    };
    if !manager.operator_seat || manager.role != crate::db::Role::Manager {
        return error(
            "call.no_operator_seat",
            "phone calls need a manager with an operator seat",
        );
    }
    if customer_number.is_none() && customer_id.is_none() {
        return error("call.no_customer", "give customer_number or customer_id");
    }
    let place = crate::call::outbound::PlaceCall {
        manager_id: manager.id.clone(),
        channel_id: manager.channel_id.clone(),
        customer_number,
        customer_id,
        sdp_offer,
    };
    match state
        .sip
        .try_send(crate::sip_service::SipCommand::PlaceCall(place))
    {
        Ok(()) => None,
        Err(_) => error("call.busy", "the gateway is busy; try again"),
    }
}

/// Hands a console request to the call's actor, which checks it comes from its manager.
fn route(
    state: &AppState,
    manager: &Manager,
    consultation_id: &str,
    input: impl FnOnce(String) -> CallInput,
) -> Option<ServerMessage> {
    let delivered = state.calls.send(consultation_id, input(manager.id.clone()));
    (!delivered).then(|| ServerMessage::Error {
        code: "call.not_found".into(),
        message: format!("no live call for consultation {consultation_id}"),
    })
}

fn broadcast_presence(state: &AppState, manager: &Manager, online: bool, do_not_disturb: bool) {
    let presence = if online {
        Presence::Online
    } else {
        Presence::Offline
    };
    state.hub.send(
        &manager.id,
        &ServerMessage::Presence {
            presence,
            do_not_disturb,
        },
    );
}

fn internal_error() -> ServerMessage {
    ServerMessage::Error {
        code: "internal".into(),
        message: "the request could not be carried out; try again".into(),
    }
}

async fn send_json(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => true,
    }
}
