//! The webhook outbox: events are inserted in the transaction of what they announce, then a
//! dispatcher claims due ones with a lease (as transcription jobs are claimed), POSTs them and
//! records the outcome: delivered, or retried later, or failed for good.

use sqlx::Row;

use super::{new_id, Backend, Db, DbError};

/// How a delivery attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAttempt<'a> {
    /// The endpoint answered 2xx.
    Delivered { status: u16 },
    /// Try again at `at_ms`.
    Retry {
        status: Option<u16>,
        error: &'a str,
        at_ms: i64,
    },
    /// No more attempts.
    Failed { status: Option<u16>, error: &'a str },
}

/// An event to announce; `payload_json` is the exact body that will be POSTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent {
    pub channel_id: String,
    pub event_type: &'static str,
    pub payload_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub channel_id: String,
    pub event_type: String,
    pub payload_json: String,
    pub state: String,
    /// Including the current one, once claimed.
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub created_at_ms: i64,
}

const COLUMNS: &str =
    "id, channel_id, type, payload_json, state, attempts, last_status, created_at_ms";

fn from_row(r: &sqlx::any::AnyRow) -> Result<WebhookEvent, DbError> {
    Ok(WebhookEvent {
        id: r.try_get("id")?,
        channel_id: r.try_get("channel_id")?,
        event_type: r.try_get("type")?,
        payload_json: r.try_get("payload_json")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// Inserts events inside the caller's transaction; returns their ids.
pub(super) async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[NewWebhookEvent],
    now_ms: i64,
) -> Result<Vec<String>, DbError> {
    let mut ids = Vec::with_capacity(events.len());
    for e in events {
        let id = new_id();
        sqlx::query(
            "INSERT INTO webhook_events (id, channel_id, type, payload_json, state, attempts, \
                 next_attempt_at_ms, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&e.channel_id)
        .bind(e.event_type)
        .bind(&e.payload_json)
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

impl Db {
    /// Events announced outside another transaction.
    pub async fn add_webhook_events(
        &self,
        events: &[NewWebhookEvent],
        now_ms: i64,
    ) -> Result<Vec<String>, DbError> {
        let mut tx = self.pool.begin().await?;
        let ids = insert_events(&mut tx, events, now_ms).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// The oldest due event of one of `channels` (pending and due, or leased by a dispatcher
    /// that stopped), held by `owner` until `now_ms + lease_ms`.
    pub async fn claim_webhook_event(
        &self,
        channels: &[String],
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<WebhookEvent>, DbError> {
        if channels.is_empty() {
            return Ok(None);
        }
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // Channel ids are bound one placeholder each, after the five fixed parameters.
        let list: Vec<String> = (0..channels.len()).map(|i| format!("${}", i + 6)).collect();
        let sql = format!(
            "UPDATE webhook_events SET lease_owner = $1, lease_expires_at_ms = $2, \
                 attempts = attempts + 1, updated_at_ms = $3 \
             WHERE id = (SELECT id FROM webhook_events \
                 WHERE state = 'pending' AND next_attempt_at_ms <= $4 \
                   AND (lease_expires_at_ms IS NULL OR lease_expires_at_ms <= $5) \
                   AND channel_id IN ({}) \
                 ORDER BY next_attempt_at_ms, id LIMIT 1 {lock}) \
             RETURNING {COLUMNS}",
            list.join(", ")
        );
        let mut q = sqlx::query(&sql)
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(now_ms)
            .bind(now_ms);
        for c in channels {
            q = q.bind(c);
        }
        q.fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// Records a delivery attempt of a held event. `false` if the lease was lost.
    pub async fn finish_webhook_attempt(
        &self,
        event_id: &str,
        owner: &str,
        attempt: WebhookAttempt<'_>,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let (state, next, status, error) = match attempt {
            WebhookAttempt::Delivered { status } => ("delivered", now_ms, Some(status), None),
            WebhookAttempt::Retry {
                status,
                error,
                at_ms,
            } => ("pending", at_ms, status, Some(error)),
            WebhookAttempt::Failed { status, error } => ("failed", now_ms, status, Some(error)),
        };
        let n = sqlx::query(
            "UPDATE webhook_events SET state = $1, next_attempt_at_ms = $2, last_status = $3, \
                 last_error = $4, lease_owner = NULL, lease_expires_at_ms = NULL, \
                 updated_at_ms = $5 \
             WHERE id = $6 AND lease_owner = $7 AND state = 'pending'",
        )
        .bind(state)
        .bind(next)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(now_ms)
        .bind(event_id)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn webhook_events(&self, channel_id: &str) -> Result<Vec<WebhookEvent>, DbError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_events WHERE channel_id = $1 \
             ORDER BY created_at_ms, id"
        ))
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }
}
