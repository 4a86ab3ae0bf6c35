//! The SIP side of the gateway: socket drivers and the service task that owns the endpoint.

pub mod registration;
pub mod service;
pub mod transport;

use std::sync::atomic::{AtomicU64, Ordering};

use sip::endpoint::EndpointStats;

pub use service::{SipCommand, SipService};

/// Counters exported for operators (and asserted by the malformed-input tests).
#[derive(Debug, Default)]
pub struct SipStats {
    pub messages_received: AtomicU64,
    pub malformed_answered: AtomicU64,
    pub malformed_dropped: AtomicU64,
    pub retransmissions_absorbed: AtomicU64,
    pub stray_responses: AtomicU64,
    pub active_transactions: AtomicU64,
    pub forbidden_source: AtomicU64,
    pub auth_challenges: AtomicU64,
    pub limited: AtomicU64,
    pub no_common_codec: AtomicU64,
    /// Registration state per trunk (RFC 3261 §10).
    pub registrations: registration::RegistrationMetrics,
}

impl SipStats {
    fn update_endpoint(&self, s: &EndpointStats, transactions: usize) {
        self.messages_received
            .store(s.messages_received, Ordering::Relaxed);
        self.malformed_answered
            .store(s.malformed_answered, Ordering::Relaxed);
        self.malformed_dropped
            .store(s.malformed_dropped, Ordering::Relaxed);
        self.retransmissions_absorbed
            .store(s.retransmissions_absorbed, Ordering::Relaxed);
        self.stray_responses
            .store(s.stray_responses, Ordering::Relaxed);
        self.active_transactions
            .store(transactions as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let rows = [
            ("sip_messages_received_total", &self.messages_received),
            ("sip_malformed_answered_total", &self.malformed_answered),
            ("sip_malformed_dropped_total", &self.malformed_dropped),
            (
                "sip_retransmissions_absorbed_total",
                &self.retransmissions_absorbed,
            ),
            ("sip_stray_responses_total", &self.stray_responses),
            ("sip_active_transactions", &self.active_transactions),
            ("sip_forbidden_source_total", &self.forbidden_source),
            ("sip_auth_challenges_total", &self.auth_challenges),
            ("sip_limited_total", &self.limited),
            ("sip_no_common_codec_total", &self.no_common_codec),
        ];
        let mut out = String::new();
        for (name, v) in rows {
            out.push_str(&format!("{name} {}\n", v.load(Ordering::Relaxed)));
        }
        out.push_str(&self.registrations.render_prometheus());
        out
    }
}
