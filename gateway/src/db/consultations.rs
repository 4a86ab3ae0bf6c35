//! Consultations and their meets: opening a phone consultation, reading them back, and the
//! missed outcome.

use super::batch::Batch;
use super::calls::NewPhoneCall;
use super::model::{
    CallRecord, Classification, Consultation, ConsultationState, Direction, Meet, MeetKind,
    MeetScope, MeetState, MissedReason, Source,
};
use super::{new_id, Db, DbError};

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

        let record = CallRecord {
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
            // The CDR keeps the currency in force when the call started.
            currency: call.currency.to_owned(),
            end_reason: None,
            ended_by: None,
            missed_reason: None,
        };
        let mut batch = Batch::new();
        batch.push(
            "INSERT INTO consultations (id, channel_id, customer_id, source, classification, \
                 assignee_manager_id, state, chat_input_open, missed_reason, created_at_ms, \
                 closed_at_ms) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, 1, NULL, $7, NULL)",
            vec![
                (&consultation.id).into(),
                channel_id.into(),
                customer_id.into(),
                consultation.source.as_str().into(),
                consultation.classification.as_str().into(),
                consultation.state.as_str().into(),
                now_ms.into(),
            ],
        );
        batch.push(
            "INSERT INTO meets (id, consultation_id, kind, scope, direction, state, \
                 started_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                (&meet.id).into(),
                (&consultation.id).into(),
                meet.kind.as_str().into(),
                meet.scope.as_str().into(),
                direction.as_str().into(),
                meet.state.as_str().into(),
                now_ms.into(),
            ],
        );
        if direction == Direction::Inbound {
            // The caller is on the line while it rings: the meet's first participant.
            batch.push(
                "INSERT INTO meet_participants (id, meet_id, manager_id, customer_id, \
                     joined_at_ms) VALUES ($1, $2, NULL, $3, $4)",
                vec![
                    new_id().as_str().into(),
                    (&meet.id).into(),
                    customer_id.into(),
                    now_ms.into(),
                ],
            );
        }
        batch.push(
            "INSERT INTO calls (id, channel_id, consultation_id, meet_id, trunk_id, direction, \
                 sip_call_id, from_number, to_number, started_at_ms, billable_seconds, \
                 charge_minor, currency) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, $11)",
            vec![
                (&record.id).into(),
                channel_id.into(),
                (&record.consultation_id).into(),
                (&record.meet_id).into(),
                (&record.trunk_id).into(),
                direction.as_str().into(),
                (&record.sip_call_id).into(),
                (&record.from_number).into(),
                (&record.to_number).into(),
                now_ms.into(),
                (&record.currency).into(),
            ],
        );
        // One transaction: either all rows exist or none, so a crash never leaves a call
        // without its consultation.
        self.run_batch(batch).await?;
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
        // answer (see the `answer_racing_missed_one_wins` test). Every statement is
        // conditioned on the call being undecided, so a second outcome changes nothing.
        let mut batch = Batch::new();
        batch.push_must_affect(
            "UPDATE calls SET ended_at_ms = $1, end_reason = 'missed', ended_by = 'system', \
                 missed_reason = $2, billable_seconds = 0, charge_minor = 0 \
             WHERE id = $3 AND consultation_id = $4 AND ended_at_ms IS NULL \
                 AND answered_at_ms IS NULL",
            vec![
                now_ms.into(),
                reason.as_str().into(),
                call_id.into(),
                consultation_id.into(),
            ],
            format!(
                "call {call_id} of consultation {consultation_id} was already answered or ended"
            ),
        );
        batch.push_must_affect(
            "UPDATE meets SET state = 'missed', missed_reason = $1, ended_at_ms = $2, \
                 ended_by = 'system' \
             WHERE id = $3 AND consultation_id = $4 AND state = 'ringing'",
            vec![
                reason.as_str().into(),
                now_ms.into(),
                meet_id.into(),
                consultation_id.into(),
            ],
            format!("meet {meet_id} of consultation {consultation_id} is not ringing"),
        );
        batch.push(
            "UPDATE meet_participants SET left_at_ms = $1 WHERE meet_id = $2 AND left_at_ms IS NULL",
            vec![now_ms.into(), meet_id.into()],
        );
        batch.push_must_affect(
            "UPDATE consultations SET state = 'missed', missed_reason = $1, closed_at_ms = $2 \
             WHERE id = $3 AND state = 'open'",
            vec![
                reason.as_str().into(),
                now_ms.into(),
                consultation_id.into(),
            ],
            format!("consultation {consultation_id} is not open"),
        );
        batch.push(
            "UPDATE managers SET ringing_consultation_id = NULL WHERE ringing_consultation_id = $1",
            vec![consultation_id.into()],
        );
        match self.run_batch(batch).await {
            Err(DbError::Conflict(conflict)) => {
                Err(if self.consultation(consultation_id).await?.is_none() {
                    DbError::not_found("consultation", consultation_id)
                } else if self.call_record(call_id).await?.is_none() {
                    DbError::not_found("call", call_id)
                } else {
                    DbError::Conflict(conflict)
                })
            }
            other => other,
        }
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
