//! Managers: authentication lookup, presence, and the cross-node safe ringing claim that
//! drives automatic assignment.

use super::model::Manager;
use super::{Db, DbError};

/// Who may be rung for a new call, written against the `managers` table (no alias: SQLite's
/// UPDATE does not take one portably). Used both to pick candidates and, again, inside the
/// claiming UPDATE, so that a manager who changed state between the two (went offline, set
/// DND, was claimed by another node) is not claimed.
const ELIGIBLE: &str = "managers.operator_seat = 1 \
    AND managers.presence = 'online' \
    AND managers.do_not_disturb = 0 \
    AND managers.ringing_consultation_id IS NULL \
    AND NOT EXISTS (SELECT 1 FROM meet_participants p JOIN meets t ON t.id = p.meet_id \
        WHERE p.manager_id = managers.id AND p.left_at_ms IS NULL \
        AND t.state IN ('ringing', 'active'))";

/// Candidates fetched per round; a round only runs out when every one was lost to another
/// node, which is rare, so a small page keeps the query cheap.
const CANDIDATES_PER_ROUND: usize = 8;

impl Db {
    pub async fn manager(&self, id: &str) -> Result<Option<Manager>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM managers WHERE id = $1",
            Manager::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Manager::from_row(&r))
        .transpose()
    }

    /// The manager whose bearer token hashes to `token_sha256_hex` (hex, either case).
    pub async fn manager_by_token_sha256(
        &self,
        token_sha256_hex: &str,
    ) -> Result<Option<Manager>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM managers WHERE token_sha256 = $1",
            Manager::COLUMNS
        ))
        .bind(token_sha256_hex.to_ascii_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Manager::from_row(&r))
        .transpose()
    }

    pub async fn set_presence(&self, manager_id: &str, online: bool) -> Result<(), DbError> {
        let presence = if online { "online" } else { "offline" };
        let n = sqlx::query("UPDATE managers SET presence = $1 WHERE id = $2")
            .bind(presence)
            .bind(manager_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(DbError::not_found("manager", manager_id));
        }
        Ok(())
    }

    pub async fn set_do_not_disturb(&self, manager_id: &str, dnd: bool) -> Result<(), DbError> {
        let n = sqlx::query("UPDATE managers SET do_not_disturb = $1 WHERE id = $2")
            .bind(i64::from(dnd))
            .bind(manager_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(DbError::not_found("manager", manager_id));
        }
        Ok(())
    }

    /// Picks and claims the next manager to ring for `consultation_id`, or `None` when nobody
    /// is available (the call is then missed with `no_available_manager`).
    ///
    /// Eligible: same channel, operator seat, online, not DND, not ringing, not in a ringing or
    /// active meet, not in `exclude` (e.g. managers who already declined this call).
    /// Fair: least recently assigned first (never-assigned first, ties by id).
    ///
    /// Safe across nodes sharing the database: the claim is
    /// `UPDATE ... WHERE id = ? AND <still eligible>`; exactly one concurrent claimer sees one
    /// affected row (PostgreSQL re-checks the WHERE after waiting for the row lock; SQLite
    /// serializes writers). A lost race moves on to the next candidate. The consultation's
    /// assignee is set in the same transaction. `Conflict` if the consultation is not open or
    /// has no ringing meet (already answered or missed: nobody new may be rung for it).
    pub async fn claim_next_manager(
        &self,
        channel_id: &str,
        consultation_id: &str,
        exclude: &[&str],
        now_ms: i64,
    ) -> Result<Option<Manager>, DbError> {
        let mut lost: Vec<String> = Vec::new();
        loop {
            let excluded: Vec<&str> = exclude
                .iter()
                .copied()
                .chain(lost.iter().map(String::as_str))
                .collect();
            let candidates = self.eligible_managers(channel_id, &excluded).await?;
            if candidates.is_empty() {
                return Ok(None);
            }
            for candidate in candidates {
                let mut tx = self.pool.begin().await?;
                // Rows are locked in the order every outcome transaction uses (calls -> meets
                // -> consultations -> managers), so a claim racing an answer or a missed
                // outcome on PostgreSQL waits for it instead of deadlocking.
                //
                // First the ringing meet, with a no-op UPDATE (portable `SELECT ... FOR
                // UPDATE`): once a call is answered or missed nobody new may be rung for it,
                // and holding this row lock makes that check race-free against `answer_call`
                // and `mark_missed` on another node.
                let ringing = sqlx::query(
                    "UPDATE meets SET state = 'ringing' \
                     WHERE consultation_id = $1 AND state = 'ringing'",
                )
                .bind(consultation_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if ringing == 0 {
                    tx.rollback().await?;
                    return Err(DbError::Conflict(format!(
                        "consultation {consultation_id} has no ringing meet"
                    )));
                }
                let assigned = sqlx::query(
                    "UPDATE consultations SET assignee_manager_id = $1 \
                     WHERE id = $2 AND channel_id = $3 AND state = 'open'",
                )
                .bind(&candidate.id)
                .bind(consultation_id)
                .bind(channel_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if assigned == 0 {
                    tx.rollback().await?;
                    return Err(DbError::Conflict(format!(
                        "consultation {consultation_id} of channel {channel_id} is not open"
                    )));
                }
                let claimed = sqlx::query(&format!(
                    "UPDATE managers SET ringing_consultation_id = $1, last_assigned_at_ms = $2 \
                     WHERE id = $3 AND channel_id = $4 AND {ELIGIBLE}"
                ))
                .bind(consultation_id)
                .bind(now_ms)
                .bind(&candidate.id)
                .bind(channel_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if claimed == 0 {
                    // Another node (or task) got this manager first, or it just became
                    // unavailable: undo the assignee and try the next one.
                    tx.rollback().await?;
                    lost.push(candidate.id);
                    continue;
                }
                tx.commit().await?;
                return Ok(Some(Manager {
                    ringing_consultation_id: Some(consultation_id.to_owned()),
                    last_assigned_at_ms: Some(now_ms),
                    ..candidate
                }));
            }
        }
    }

    /// Claims, for ringing alongside the assignee, every other eligible member of the
    /// channel's phone team(s) (channel setting "ring all phone team"). Same conditional
    /// UPDATE as [`Db::claim_next_manager`], but fairness is not touched: being rung along is
    /// not an assignment. Returns the managers claimed, by id. `Conflict` if the consultation
    /// has no ringing meet.
    pub async fn claim_phone_team(
        &self,
        channel_id: &str,
        consultation_id: &str,
    ) -> Result<Vec<Manager>, DbError> {
        let members = sqlx::query(&format!(
            "SELECT {} FROM managers WHERE channel_id = $1 AND {ELIGIBLE} \
             AND EXISTS (SELECT 1 FROM team_members tm JOIN teams tt ON tt.id = tm.team_id \
                 WHERE tm.manager_id = managers.id AND tt.phone_team = 1 \
                 AND tt.channel_id = $1) \
             ORDER BY id",
            Manager::COLUMNS
        ))
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(Manager::from_row)
        .collect::<Result<Vec<_>, _>>()?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        // One transaction holding the ringing meet's row, as in `claim_next_manager`, so
        // nobody is rung along for a call that was answered or missed meanwhile.
        let mut tx = self.pool.begin().await?;
        let ringing = sqlx::query(
            "UPDATE meets SET state = 'ringing' WHERE consultation_id = $1 AND state = 'ringing'",
        )
        .bind(consultation_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if ringing == 0 {
            tx.rollback().await?;
            return Err(DbError::Conflict(format!(
                "consultation {consultation_id} has no ringing meet"
            )));
        }
        let mut claimed = Vec::new();
        for m in members {
            let n = sqlx::query(&format!(
                "UPDATE managers SET ringing_consultation_id = $1 \
                 WHERE id = $2 AND channel_id = $3 AND {ELIGIBLE}"
            ))
            .bind(consultation_id)
            .bind(&m.id)
            .bind(channel_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                claimed.push(Manager {
                    ringing_consultation_id: Some(consultation_id.to_owned()),
                    ..m
                });
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Forgets live state at process start: every manager offline, nobody ringing. Browser
    /// sessions and rings live in the process, so after a restart none of them exists.
    ///
    /// Correct while ONE node uses the database. With several nodes this would also take
    /// offline the managers connected to the other nodes: presence then needs the owning node
    /// in the schema (a `presence_node_id` column reset per node), which is not there yet.
    pub async fn reset_live_state(&self) -> Result<(), DbError> {
        sqlx::query("UPDATE managers SET presence = 'offline', ringing_consultation_id = NULL")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stops ringing `manager_id` for `consultation_id` (declined, timed out, rung elsewhere).
    /// A no-op returning `false` if the manager is meanwhile ringing for something else, so a
    /// late release can never free a manager claimed for another call.
    pub async fn release_ringing(
        &self,
        manager_id: &str,
        consultation_id: &str,
    ) -> Result<bool, DbError> {
        let n = sqlx::query(
            "UPDATE managers SET ringing_consultation_id = NULL \
             WHERE id = $1 AND ringing_consultation_id = $2",
        )
        .bind(manager_id)
        .bind(consultation_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Eligible managers of the channel in fairness order, at most one round's worth.
    async fn eligible_managers(
        &self,
        channel_id: &str,
        excluded: &[&str],
    ) -> Result<Vec<Manager>, DbError> {
        // `NOT IN ($2, $3, ...)`: one placeholder per excluded id (no array binds in `Any`).
        let not_in = if excluded.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..excluded.len()).map(|i| format!("${}", i + 2)).collect();
            format!(" AND id NOT IN ({})", list.join(", "))
        };
        // NULLs first must be spelled out: PostgreSQL sorts NULL last, SQLite first.
        let sql = format!(
            "SELECT {} FROM managers WHERE channel_id = $1 AND {ELIGIBLE}{not_in} \
             ORDER BY CASE WHEN last_assigned_at_ms IS NULL THEN 0 ELSE 1 END, \
                 last_assigned_at_ms, id \
             LIMIT {CANDIDATES_PER_ROUND}",
            Manager::COLUMNS
        );
        let mut q = sqlx::query(&sql).bind(channel_id);
        for id in excluded {
            q = q.bind(*id);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(Manager::from_row)
            .collect()
    }
}
