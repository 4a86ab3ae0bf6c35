//! What the admin API reads: a channel's calls and recordings, filtered and paged newest
//! first with a keyset cursor (`started_at_ms`, `id`), so a page never shifts when new calls
//! arrive. Every query is bounded to one channel: ids of other channels are simply not found.

use sqlx::Row;

use super::model::CallRecord;
use super::recordings::Recording;
use super::{Db, DbError};

/// Filters of a list request; all optional but the channel and the page size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Started at or after (unix ms).
    pub from_ms: Option<i64>,
    /// Started before (unix ms).
    pub to_ms: Option<i64>,
    /// The customer's number, E.164: the caller of an inbound call or the callee of an
    /// outbound one.
    pub number_e164: Option<String>,
    /// A manager who took part in the call.
    pub manager_id: Option<String>,
    /// Items older than this `(started_at_ms, id)` (the cursor of the previous page).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

enum Bind {
    Int(i64),
    Text(String),
}

/// `WHERE` conditions for `filter` over `c` (calls), with `started_col` the time that orders
/// the list and `id_col` its tie-breaker; parameters are numbered in bind order (positional
/// on SQLite through sqlx's Any driver, so a value used twice is bound twice).
fn conditions(
    channel_id: &str,
    filter: &ListFilter,
    started_col: &str,
    id_col: &str,
) -> (String, Vec<Bind>) {
    let mut sql = Vec::new();
    let mut binds = Vec::new();
    let bind = |b: Bind, binds: &mut Vec<Bind>| {
        binds.push(b);
        binds.len()
    };
    let ch = bind(Bind::Text(channel_id.to_string()), &mut binds);
    sql.push(format!("c.channel_id = ${ch}"));
    if let Some(from) = filter.from_ms {
        let p = bind(Bind::Int(from), &mut binds);
        sql.push(format!("{started_col} >= ${p}"));
    }
    if let Some(to) = filter.to_ms {
        let p = bind(Bind::Int(to), &mut binds);
        sql.push(format!("{started_col} < ${p}"));
    }
    if let Some(n) = &filter.number_e164 {
        let a = bind(Bind::Text(n.clone()), &mut binds);
        let b = bind(Bind::Text(n.clone()), &mut binds);
        sql.push(format!(
            "((c.direction = 'inbound' AND c.from_number = ${a}) OR \
              (c.direction = 'outbound' AND c.to_number = ${b}))"
        ));
    }
    if let Some(m) = &filter.manager_id {
        let p = bind(Bind::Text(m.clone()), &mut binds);
        sql.push(format!(
            "EXISTS (SELECT 1 FROM meet_participants p WHERE p.meet_id = c.meet_id \
             AND p.manager_id = ${p})"
        ));
    }
    if let Some((at, id)) = &filter.before {
        let a = bind(Bind::Int(*at), &mut binds);
        let b = bind(Bind::Int(*at), &mut binds);
        let i = bind(Bind::Text(id.clone()), &mut binds);
        sql.push(format!(
            "({started_col} < ${a} OR ({started_col} = ${b} AND {id_col} < ${i}))"
        ));
    }
    (sql.join(" AND "), binds)
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Int(v) => q.bind(v),
            Bind::Text(v) => q.bind(v),
        };
    }
    q
}

fn prefixed(columns: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{prefix}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Db {
    /// A channel's calls, newest first.
    pub async fn list_calls(
        &self,
        channel_id: &str,
        filter: &ListFilter,
    ) -> Result<Vec<CallRecord>, DbError> {
        let (cond, binds) = conditions(channel_id, filter, "c.started_at_ms", "c.id");
        let sql = format!(
            "SELECT {} FROM calls c WHERE {cond} ORDER BY c.started_at_ms DESC, c.id DESC LIMIT {}",
            prefixed(CallRecord::COLUMNS, "c"),
            filter.limit.clamp(1, 1000)
        );
        bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(CallRecord::from_row)
            .collect()
    }

    /// A channel's recordings with their calls, newest first.
    pub async fn list_recordings(
        &self,
        channel_id: &str,
        filter: &ListFilter,
    ) -> Result<Vec<(Recording, CallRecord)>, DbError> {
        let (cond, binds) = conditions(channel_id, filter, "r.started_at_ms", "r.id");
        let sql = format!(
            "SELECT {} FROM recordings r JOIN calls c ON c.id = r.call_id \
             WHERE r.channel_id = c.channel_id AND {cond} \
             ORDER BY r.started_at_ms DESC, r.id DESC LIMIT {}",
            prefixed(Recording::COLUMNS, "r"),
            filter.limit.clamp(1, 1000)
        );
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let rec = Recording::from_row(row)?;
            let call = self
                .call_record(&rec.call_id)
                .await?
                .ok_or_else(|| DbError::not_found("call", &rec.call_id))?;
            out.push((rec, call));
        }
        Ok(out)
    }

    /// A call of this channel (`None` for another channel's).
    pub async fn channel_call(
        &self,
        channel_id: &str,
        call_id: &str,
    ) -> Result<Option<CallRecord>, DbError> {
        Ok(self
            .call_record(call_id)
            .await?
            .filter(|c| c.channel_id == channel_id))
    }

    /// A recording of this channel (`None` for another channel's).
    pub async fn channel_recording(
        &self,
        channel_id: &str,
        recording_id: &str,
    ) -> Result<Option<Recording>, DbError> {
        Ok(self
            .recording(recording_id)
            .await?
            .filter(|r| r.channel_id == channel_id))
    }

    /// Managers who took part in a meet, in order of joining (each once).
    pub async fn meet_manager_ids(&self, meet_id: &str) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT manager_id FROM meet_participants \
             WHERE meet_id = $1 AND manager_id IS NOT NULL ORDER BY joined_at_ms, id",
        )
        .bind(meet_id)
        .fetch_all(&self.pool)
        .await?;
        let mut ids: Vec<String> = Vec::new();
        for r in rows {
            let id: String = r.try_get("manager_id")?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}
