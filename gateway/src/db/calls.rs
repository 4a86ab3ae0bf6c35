//! Call detail records: answering and ending a phone call, and the charge.

use sqlx::Row;

use super::model::{CallRecord, Direction};
use super::recordings::NewRecording;
use super::webhooks::NewWebhookEvent;
use super::{new_id, Db, DbError};

/// The SIP facts of a new call, stored in its call detail record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewPhoneCall<'a> {
    pub sip_call_id: &'a str,
    pub from_number: &'a str,
    pub to_number: &'a str,
    pub trunk_id: &'a str,
    /// The channel's currency when the call starts, kept on the record.
    pub currency: &'a str,
}

/// `(billable_seconds, charge_minor)` of a call: the answered duration rounded up to the
/// whole second, charged per started minute (61 s = 2 minutes), as carriers bill. An
/// unanswered call (or a clock that went backwards) costs nothing.
pub fn call_charge(
    answered_at_ms: Option<i64>,
    ended_at_ms: i64,
    rate_per_minute_minor: i64,
) -> (i64, i64) {
    let Some(answered) = answered_at_ms else {
        return (0, 0);
    };
    let duration_ms = u64::try_from(ended_at_ms.saturating_sub(answered)).unwrap_or(0);
    let seconds = duration_ms.div_ceil(1000);
    let minutes = seconds.div_ceil(60);
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    let minutes = i64::try_from(minutes).unwrap_or(i64::MAX);
    (
        seconds,
        minutes.saturating_mul(rate_per_minute_minor.max(0)),
    )
}

impl Db {
    /// A manager answered: the call and its meet become active, the manager joins the meet
    /// (and becomes the consultation's assignee: with ring-all, it may not be the one first
    /// assigned), and every manager still ringing for this consultation is freed.
    ///
    /// `Conflict` when the call was already answered or has ended (e.g. the caller hung up,
    /// or a colleague answered first on another node): the first answer wins.
    pub async fn answer_call(
        &self,
        call_id: &str,
        manager_id: &str,
        now_ms: i64,
    ) -> Result<CallRecord, DbError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE calls SET answered_at_ms = $1 \
             WHERE id = $2 AND answered_at_ms IS NULL AND ended_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(call_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            drop(tx);
            return Err(match self.call_record(call_id).await? {
                None => DbError::not_found("call", call_id),
                Some(_) => {
                    DbError::Conflict(format!("call {call_id} was already answered or ended"))
                }
            });
        }
        let row = sqlx::query(
            "SELECT c.consultation_id, c.meet_id, c.direction, k.customer_id \
             FROM calls c JOIN consultations k ON k.id = c.consultation_id WHERE c.id = $1",
        )
        .bind(call_id)
        .fetch_one(&mut *tx)
        .await?;
        let consultation_id: String = row.try_get("consultation_id")?;
        let meet_id: String = row.try_get("meet_id")?;
        let direction: Direction = super::model::get_enum(&row, "direction")?;
        let customer_id: String = row.try_get("customer_id")?;

        sqlx::query(
            "UPDATE meets SET state = 'active', answered_at_ms = $1 \
             WHERE id = $2 AND state = 'ringing'",
        )
        .bind(now_ms)
        .bind(&meet_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO meet_participants (id, meet_id, manager_id, customer_id, joined_at_ms) \
             VALUES ($1, $2, $3, NULL, $4)",
        )
        .bind(new_id())
        .bind(&meet_id)
        .bind(manager_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if direction == Direction::Outbound {
            // On an outgoing call "answered" means the customer picked up.
            sqlx::query(
                "INSERT INTO meet_participants (id, meet_id, manager_id, customer_id, \
                     joined_at_ms) VALUES ($1, $2, NULL, $3, $4)",
            )
            .bind(new_id())
            .bind(&meet_id)
            .bind(&customer_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE consultations SET assignee_manager_id = $1 WHERE id = $2")
            .bind(manager_id)
            .bind(&consultation_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE managers SET ringing_consultation_id = NULL \
             WHERE ringing_consultation_id = $1",
        )
        .bind(&consultation_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.call_record(call_id)
            .await?
            .ok_or_else(|| DbError::not_found("call", call_id))
    }

    /// A manager joined a live meet (invited into a call).
    pub async fn join_meet(
        &self,
        meet_id: &str,
        manager_id: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO meet_participants (id, meet_id, manager_id, customer_id, joined_at_ms) \
             VALUES ($1, $2, $3, NULL, $4)",
        )
        .bind(new_id())
        .bind(meet_id)
        .bind(manager_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A manager left a meet that goes on without them ("leave only me").
    pub async fn leave_meet(
        &self,
        meet_id: &str,
        manager_id: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE meet_participants SET left_at_ms = $1 \
             WHERE meet_id = $2 AND manager_id = $3 AND left_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(meet_id)
        .bind(manager_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a call normally (BYE, CANCEL, failure) in one transaction: the call record gets
    /// its end, billable seconds and charge (see [`call_charge`], at the channel's current
    /// rate), the meet ends, its participants leave, and managers still ringing for the
    /// consultation are freed. The consultation itself stays open: managers follow up on it.
    ///
    /// `ended_by`: who hung up (`"customer"`, `"manager:<id>"`, `"system"`).
    /// `recording`: the call's finished recording, stored with a queued transcription job in
    /// the same transaction (the outbox the transcription worker reads); `events`: webhook
    /// events announcing it, in the same transaction too.
    /// `Conflict` if the call has already ended.
    pub async fn end_call(
        &self,
        call_id: &str,
        end_reason: &str,
        ended_by: Option<&str>,
        recording: Option<&NewRecording>,
        events: &[NewWebhookEvent],
        now_ms: i64,
    ) -> Result<CallRecord, DbError> {
        let mut tx = self.pool.begin().await?;
        // Write first: it takes SQLite's write lock before the reads below.
        let updated = sqlx::query(
            "UPDATE calls SET ended_at_ms = $1, end_reason = $2, ended_by = $3 \
             WHERE id = $4 AND ended_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(end_reason)
        .bind(ended_by)
        .bind(call_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            drop(tx);
            return Err(match self.call_record(call_id).await? {
                None => DbError::not_found("call", call_id),
                Some(_) => DbError::Conflict(format!("call {call_id} has already ended")),
            });
        }
        let row = sqlx::query(
            "SELECT c.answered_at_ms, c.meet_id, c.consultation_id, \
                 ch.call_rate_per_minute_minor \
             FROM calls c JOIN channels ch ON ch.id = c.channel_id WHERE c.id = $1",
        )
        .bind(call_id)
        .fetch_one(&mut *tx)
        .await?;
        let answered_at_ms: Option<i64> = row.try_get("answered_at_ms")?;
        let meet_id: String = row.try_get("meet_id")?;
        let consultation_id: String = row.try_get("consultation_id")?;
        let rate: i64 = row.try_get("call_rate_per_minute_minor")?;
        let (billable_seconds, charge_minor) = call_charge(answered_at_ms, now_ms, rate);

        sqlx::query("UPDATE calls SET billable_seconds = $1, charge_minor = $2 WHERE id = $3")
            .bind(billable_seconds)
            .bind(charge_minor)
            .bind(call_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE meets SET state = 'ended', ended_at_ms = $1, ended_by = $2 \
             WHERE id = $3 AND state IN ('ringing', 'active')",
        )
        .bind(now_ms)
        .bind(ended_by)
        .bind(&meet_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE meet_participants SET left_at_ms = $1 WHERE meet_id = $2 AND left_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(&meet_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE managers SET ringing_consultation_id = NULL \
             WHERE ringing_consultation_id = $1",
        )
        .bind(&consultation_id)
        .execute(&mut *tx)
        .await?;
        if let Some(r) = recording {
            super::recordings::insert_with_job(&mut tx, r, now_ms).await?;
        }
        super::webhooks::insert_events(&mut tx, events, now_ms).await?;
        tx.commit().await?;
        self.call_record(call_id)
            .await?
            .ok_or_else(|| DbError::not_found("call", call_id))
    }

    pub async fn call_record(&self, id: &str) -> Result<Option<CallRecord>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM calls WHERE id = $1",
            CallRecord::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| CallRecord::from_row(&r))
        .transpose()
    }

    /// The consultation's calls, oldest first.
    pub async fn calls_for_consultation(
        &self,
        consultation_id: &str,
    ) -> Result<Vec<CallRecord>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM calls WHERE consultation_id = $1 ORDER BY started_at_ms, id",
            CallRecord::COLUMNS
        ))
        .bind(consultation_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(CallRecord::from_row)
        .collect()
    }
}
