//! Consultations and their meets: opening a phone consultation, reading them back, and the
//! missed outcome.

use super::calls::NewPhoneCall;
use super::model::{
    CallRecord, Classification, Consultation, ConsultationState, Direction, Meet, MeetKind,
    MeetScope, MeetState, MissedReason, Source,
};
use super::{new_id, Db, DbError};
use sqlx::Row;

impl Db {
    /// Opens a new call consultation for a phone call, in ONE transaction: the consultation
    /// (source phone, classified as a call, open), its meet (phone, customer scope, ringing)
    /// and the call detail record. Either all three exist or none does, so a crash never
    /// leaves a call without its consultation. For an inbound call the caller is recorded as
    /// the meet's first participant (they are on the line while it rings).
    pub async fn open_phone_consultation(
        &self,
        channel_id: &str,
        customer_id: &str,
        direction: Direction,
        call: &NewPhoneCall<'_>,
        now_ms: i64,
    ) -> Result<(Consultation, Meet, CallRecord), DbError> {
        let consultation = Consultation {
            id: new_id(),
            channel_id: channel_id.to_owned(),
            customer_id: customer_id.to_owned(),
            source: Source::Phone,
            classification: Classification::Call,
            assignee_manager_id: None,
            state: ConsultationState::Open,
            chat_input_open: true,
            missed_reason: None,
            created_at_ms: now_ms,
            closed_at_ms: None,
        };
        let meet = Meet {
            id: new_id(),
            consultation_id: consultation.id.clone(),
            kind: MeetKind::Phone,
            scope: MeetScope::Customer,
            direction,
            state: MeetState::Ringing,
            missed_reason: None,
            started_at_ms: now_ms,
            answered_at_ms: None,
            ended_at_ms: None,
            ended_by: None,
        };

        let mut tx = self.pool.begin().await?;
        // Write first (see the module doc): the insert takes SQLite's write lock.
        sqlx::query(
            "INSERT INTO consultations (id, channel_id, customer_id, source, classification, \
                 assignee_manager_id, state, chat_input_open, missed_reason, created_at_ms, \
                 closed_at_ms) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, 1, NULL, $7, NULL)",
        )
        .bind(&consultation.id)
        .bind(channel_id)
        .bind(customer_id)
        .bind(consultation.source.as_str())
        .bind(consultation.classification.as_str())
        .bind(consultation.state.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO meets (id, consultation_id, kind, scope, direction, state, \
                 started_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&meet.id)
        .bind(&consultation.id)
        .bind(meet.kind.as_str())
        .bind(meet.scope.as_str())
        .bind(direction.as_str())
        .bind(meet.state.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if direction == Direction::Inbound {
            sqlx::query(
                "INSERT INTO meet_participants (id, meet_id, manager_id, customer_id, \
                     joined_at_ms) VALUES ($1, $2, NULL, $3, $4)",
            )
            .bind(new_id())
            .bind(&meet.id)
            .bind(customer_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        let mut record = CallRecord {
            id: new_id(),
            channel_id: channel_id.to_owned(),
            consultation_id: consultation.id.clone(),
            meet_id: meet.id.clone(),
            trunk_id: call.trunk_id.to_owned(),
            direction,
            sip_call_id: call.sip_call_id.to_owned(),
            from_number: call.from_number.to_owned(),
            to_number: call.to_number.to_owned(),
            started_at_ms: now_ms,
            answered_at_ms: None,
            ended_at_ms: None,
            billable_seconds: 0,
            charge_minor: 0,
            currency: String::new(),
            end_reason: None,
            ended_by: None,
            missed_reason: None,
        };
        // The CDR keeps the currency in force when the call started, copied in the same
        // statement (one round trip less per call).
        record.currency = sqlx::query(
            "INSERT INTO calls (id, channel_id, consultation_id, meet_id, trunk_id, direction, \
                 sip_call_id, from_number, to_number, started_at_ms, billable_seconds, \
                 charge_minor, currency) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, currency \
             FROM channels WHERE id = $2 \
             RETURNING currency",
        )
        .bind(&record.id)
        .bind(channel_id)
        .bind(&record.consultation_id)
        .bind(&record.meet_id)
        .bind(&record.trunk_id)
        .bind(direction.as_str())
        .bind(&record.sip_call_id)
        .bind(&record.from_number)
        .bind(&record.to_number)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| DbError::not_found("channel", channel_id))?
        .try_get("currency")?;
        tx.commit().await?;
        Ok((consultation, meet, record))
    }

    /// Records a missed call in one transaction: the consultation becomes `missed` (closed at
    /// `now_ms`), the meet `missed`, the call record ended with the reason and no charge, and
    /// any manager still ringing for this consultation is freed for the next call.
    ///
    /// Fails with `Conflict` when the call was answered or ended, the meet is no longer
    /// ringing or the consultation no longer open (e.g. answered a moment earlier on another
    /// node): the first outcome wins and nothing is changed.
    pub async fn mark_missed(
        &self,
        consultation_id: &str,
        meet_id: &str,
        call_id: &str,
        reason: MissedReason,
        now_ms: i64,
    ) -> Result<(), DbError> {
        // Lock order calls -> meets -> consultations -> managers, as in every other outcome
        // transaction: on PostgreSQL a different order here deadlocked against a concurrent
        // answer (see the `answer_racing_missed_one_wins` test).
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE calls SET ended_at_ms = $1, end_reason = 'missed', ended_by = 'system', \
                 missed_reason = $2, billable_seconds = 0, charge_minor = 0 \
             WHERE id = $3 AND consultation_id = $4 AND ended_at_ms IS NULL \
                 AND answered_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(reason.as_str())
        .bind(call_id)
        .bind(consultation_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            drop(tx);
            return Err(if self.consultation(consultation_id).await?.is_none() {
                DbError::not_found("consultation", consultation_id)
            } else if self.call_record(call_id).await?.is_none() {
                DbError::not_found("call", call_id)
            } else {
                DbError::Conflict(format!(
                    "call {call_id} of consultation {consultation_id} was already answered or ended"
                ))
            });
        }
        let updated = sqlx::query(
            "UPDATE meets SET state = 'missed', missed_reason = $1, ended_at_ms = $2, \
                 ended_by = 'system' \
             WHERE id = $3 AND consultation_id = $4 AND state = 'ringing'",
        )
        .bind(reason.as_str())
        .bind(now_ms)
        .bind(meet_id)
        .bind(consultation_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(DbError::Conflict(format!(
                "meet {meet_id} of consultation {consultation_id} is not ringing"
            )));
        }
        sqlx::query(
            "UPDATE meet_participants SET left_at_ms = $1 WHERE meet_id = $2 AND left_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(meet_id)
        .execute(&mut *tx)
        .await?;
        let updated = sqlx::query(
            "UPDATE consultations SET state = 'missed', missed_reason = $1, closed_at_ms = $2 \
             WHERE id = $3 AND state = 'open'",
        )
        .bind(reason.as_str())
        .bind(now_ms)
        .bind(consultation_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(DbError::Conflict(format!(
                "consultation {consultation_id} is not open"
            )));
        }
        sqlx::query(
            "UPDATE managers SET ringing_consultation_id = NULL \
             WHERE ringing_consultation_id = $1",
        )
        .bind(consultation_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn consultation(&self, id: &str) -> Result<Option<Consultation>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM consultations WHERE id = $1",
            Consultation::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Consultation::from_row(&r))
        .transpose()
    }

    pub async fn meet(&self, id: &str) -> Result<Option<Meet>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM meets WHERE id = $1",
            Meet::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Meet::from_row(&r))
        .transpose()
    }
}
