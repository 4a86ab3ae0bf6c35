//! Delivers the outbox: claims a due event with a lease, POSTs it with the Standard Webhooks
//! headers, and records the outcome. A 2xx delivers; anything else (an error status, a
//! refused connection, a timeout) is retried after `first_retry`, then 6 times longer each
//! time (at most 4 h), and given up after [`MAX_ATTEMPTS`]. Receivers must expect the same
//! `webhook-id` more than once (a dispatcher that dies after sending is not sure it did).

use std::sync::Arc;
use std::time::Duration;

use crate::config::WebhookConfig;
use crate::db::{WebhookAttempt, WebhookEvent};
use crate::sip_service::service::unix_ms;
use crate::state::AppState;

pub const MAX_ATTEMPTS: i64 = 10;
const LEASE: Duration = Duration::from_secs(60);
const IDLE_POLL: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(4 * 3600);

/// The wait before attempt `attempts + 1`, `None` when there are no attempts left.
pub fn retry_after(first_retry: Duration, attempts: i64) -> Option<Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(12);
    Some(
        first_retry
            .saturating_mul(6u32.saturating_pow(exponent))
            .min(MAX_BACKOFF),
    )
}

/// Runs until the process stops; returns at once when no channel has a webhook.
pub async fn run(state: Arc<AppState>) {
    let channels: Vec<String> = state
        .config
        .channels
        .iter()
        .filter(|c| c.webhook.is_some())
        .map(|c| c.id.clone())
        .collect();
    if channels.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("telephony-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: no HTTP client");
            return;
        }
    };
    let owner = format!("dispatcher-{}", uuid::Uuid::new_v4());
    loop {
        let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        match state
            .db
            .claim_webhook_event(&channels, &owner, unix_ms(), lease_ms)
            .await
        {
            Ok(Some(event)) => deliver(&state, &client, &owner, event).await,
            Ok(None) => tokio::time::sleep(IDLE_POLL).await,
            Err(e) => {
                tracing::warn!(error = %e, "claiming a webhook event");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

async fn deliver(state: &AppState, client: &reqwest::Client, owner: &str, event: WebhookEvent) {
    let Some(hook) = state
        .config
        .channels
        .iter()
        .find(|c| c.id == event.channel_id)
        .and_then(|c| c.webhook.as_ref())
    else {
        return;
    };
    let result = post(client, hook, &event).await;
    let now = unix_ms();
    let error_text: String;
    let attempt = match result {
        Ok(status) if (200..300).contains(&status) => WebhookAttempt::Delivered { status },
        other => {
            let status = other.as_ref().ok().copied();
            error_text = match &other {
                Ok(s) => format!("HTTP {s}"),
                Err(e) => e.clone(),
            };
            tracing::warn!(event = %event.id, kind = %event.event_type, attempt = event.attempts,
                error = %error_text, "webhook delivery failed");
            match retry_after(hook.first_retry, event.attempts) {
                Some(wait) => WebhookAttempt::Retry {
                    status,
                    error: &error_text,
                    at_ms: now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2),
                },
                None => WebhookAttempt::Failed {
                    status,
                    error: &error_text,
                },
            }
        }
    };
    if let Err(e) = state
        .db
        .finish_webhook_attempt(&event.id, owner, attempt, now)
        .await
    {
        tracing::warn!(event = %event.id, error = %e, "recording a webhook attempt");
    }
}

/// The endpoint's status, or why there was none.
async fn post(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    event: &WebhookEvent,
) -> Result<u16, String> {
    let timestamp_s = unix_ms() / 1000;
    let body = event.payload_json.as_bytes();
    let signature = super::sign::signature(&hook.secret, &event.id, timestamp_s, body);
    let resp = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp_s.to_string())
        .header("webhook-signature", signature)
        .body(event.payload_json.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_six_times_longer_each_time_then_stop() {
        let first = Duration::from_secs(5);
        assert_eq!(retry_after(first, 1), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(first, 2), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(first, 3), Some(Duration::from_secs(180)));
        assert_eq!(retry_after(first, 6), Some(MAX_BACKOFF));
        assert_eq!(retry_after(first, MAX_ATTEMPTS - 1), Some(MAX_BACKOFF));
        assert_eq!(retry_after(first, MAX_ATTEMPTS), None);
    }
}
