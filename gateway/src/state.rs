//! What the HTTP handlers and call actors share on one node.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::call::CallInput;
use crate::config::Config;
use crate::db::Db;
use crate::hub::ManagerHub;
use crate::media_metrics::MediaMetrics;
use crate::number_directory::NumberDirectory;
use crate::rtp_ports::RtpPorts;
use crate::sip_service::SipCommand;

pub struct AppState {
    pub config: Config,
    pub db: Db,
    pub hub: ManagerHub,
    pub calls: CallRegistry,
    pub numbers: NumberDirectory,
    /// Carrier RTP port pairs of this node.
    pub rtp_ports: RtpPorts,
    /// DTLS certificate for WebRTC (PEM), made once per start: generating one per call costs
    /// milliseconds of CPU.
    pub webrtc_certificate: String,
    /// The SIP service's command queue (the console places outgoing calls through it).
    pub sip: mpsc::Sender<SipCommand>,
    /// Media counters over all calls of this node (`/metrics`).
    pub media: MediaMetrics,
    /// Where finished phone-call recordings are kept (and the spool of calls in progress).
    pub recordings: crate::recording::RecordingStore,
    /// Where the grid that calls' media ticks start on is counted from.
    pub media_tick_origin: std::time::Instant,
}

/// Live calls on this node by consultation id, so a decline from a browser reaches the call's
/// actor. Only the senders are shared; each call's state stays owned by its actor.
#[derive(Default)]
pub struct CallRegistry {
    calls: Mutex<HashMap<String, mpsc::Sender<CallInput>>>,
}

impl CallRegistry {
    pub fn insert(&self, consultation_id: &str, tx: mpsc::Sender<CallInput>) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.insert(consultation_id.to_string(), tx);
    }

    pub fn remove(&self, consultation_id: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.remove(consultation_id);
    }

    /// Never blocks: a call whose queue is full drops the input (its actor is stuck or ending).
    pub fn send(&self, consultation_id: &str, input: CallInput) -> bool {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .get(consultation_id)
            .is_some_and(|tx| tx.try_send(input).is_ok())
    }

    pub fn len(&self) -> usize {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
