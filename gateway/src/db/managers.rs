//! Managers: authentication lookup, presence, and the cross-node safe ringing claim that
//! drives automatic assignment.

use super::model::Manager;
use super::{Backend, Db, DbError};

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

/// Candidates fetched when checking whether anyone is still eligible.
const CANDIDATES_PER_ROUND: usize = 8;

/// `$1` is the consultation: its phone meet still rings (not answered, not missed).
const STILL_RINGING: &str = "EXISTS (SELECT 1 FROM meets WHERE meets.consultation_id = $1 \
    AND meets.state = 'ringing')";

enum ClaimOutcome {
    Claimed(Manager),
    /// Nobody eligible, or the pick was lost to another claimer.
    Nothing,
    NotRinging,
}

/// Claims tried before giving up when other nodes keep winning the race for the pick.
const CLAIM_ATTEMPTS: usize = 8;

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
        // One statement picks and claims (on SQLite a round trip is most of a claim's cost):
        // the subquery picks the fairest candidate and the outer WHERE re-checks eligibility
        // on the row itself, so two claimers never get the same manager (PostgreSQL
        // re-evaluates it after waiting for the row lock; SQLite serializes writers).
        let not_in = if exclude.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..exclude.len()).map(|i| format!("${}", i + 4)).collect();
            format!(" AND id NOT IN ({})", list.join(", "))
        };
        let claim_sql = format!(
            "UPDATE managers SET ringing_consultation_id = $1, last_assigned_at_ms = $2 \
             WHERE id = (SELECT id FROM managers WHERE channel_id = $3 AND {ELIGIBLE}{not_in} \
                 ORDER BY CASE WHEN last_assigned_at_ms IS NULL THEN 0 ELSE 1 END, \
                     last_assigned_at_ms, id LIMIT 1) \
               AND {ELIGIBLE} AND {STILL_RINGING} \
             RETURNING {}",
            Manager::COLUMNS
        );
        // Nobody may be rung, or become the assignee, once the call was answered or missed.
        // PostgreSQL: the meet row is locked first, in the order every outcome transaction
        // uses (meets before managers), so a racing `answer_call`/`mark_missed` is waited for
        // and then seen. SQLite: one connection, so statements never interleave, and each
        // statement re-checks that the meet still rings.
        for _ in 0..CLAIM_ATTEMPTS {
            let outcome = if self.backend == Backend::Postgres {
                let mut tx = self.pool.begin().await?;
                let outcome = self
                    .claim_once(
                        &mut tx,
                        &claim_sql,
                        channel_id,
                        consultation_id,
                        exclude,
                        now_ms,
                        true,
                    )
                    .await?;
                // Anything but a claim is rolled back when `tx` drops.
                if matches!(outcome, ClaimOutcome::Claimed(_)) {
                    tx.commit().await?;
                }
                outcome
            } else {
                // Holding the one connection keeps other tasks' statements out in between.
                let mut conn = self.pool.acquire().await?;
                self.claim_once(
                    &mut conn,
                    &claim_sql,
                    channel_id,
                    consultation_id,
                    exclude,
                    now_ms,
                    false,
                )
                .await?
            };
            match outcome {
                ClaimOutcome::Claimed(manager) => return Ok(Some(manager)),
                ClaimOutcome::NotRinging => {
                    return Err(DbError::Conflict(format!(
                        "consultation {consultation_id} is not ringing"
                    )))
                }
                ClaimOutcome::Nothing => {
                    // Nobody eligible, or another node won the race for the pick: retry then.
                    if self
                        .eligible_managers(channel_id, exclude)
                        .await?
                        .is_empty()
                    {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    async fn claim_once(
        &self,
        conn: &mut sqlx::AnyConnection,
        claim_sql: &str,
        channel_id: &str,
        consultation_id: &str,
        exclude: &[&str],
        now_ms: i64,
        lock_meet: bool,
    ) -> Result<ClaimOutcome, DbError> {
        if lock_meet {
            let ringing = sqlx::query(
                "SELECT id FROM meets WHERE consultation_id = $1 AND state = 'ringing' FOR UPDATE",
            )
            .bind(consultation_id)
            .fetch_optional(&mut *conn)
            .await?;
            if ringing.is_none() {
                return Ok(ClaimOutcome::NotRinging);
            }
        }
        let mut q = sqlx::query(claim_sql)
            .bind(consultation_id)
            .bind(now_ms)
            .bind(channel_id);
        for id in exclude {
            q = q.bind(*id);
        }
        let Some(row) = q.fetch_optional(&mut *conn).await? else {
            let ringing = sqlx::query(&format!("SELECT 1 AS one WHERE {STILL_RINGING}"))
                .bind(consultation_id)
                .fetch_optional(&mut *conn)
                .await?;
            return Ok(if ringing.is_some() {
                ClaimOutcome::Nothing
            } else {
                ClaimOutcome::NotRinging
            });
        };
        let manager = Manager::from_row(&row)?;
        let assigned = sqlx::query(&format!(
            "UPDATE consultations SET assignee_manager_id = $2 \
             WHERE id = $1 AND channel_id = $3 AND state = 'open' AND {STILL_RINGING}"
        ))
        .bind(consultation_id)
        .bind(&manager.id)
        .bind(channel_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if assigned == 0 {
            // Decided between the two statements (SQLite): give the manager back.
            sqlx::query(
                "UPDATE managers SET ringing_consultation_id = NULL \
                 WHERE id = $1 AND ringing_consultation_id = $2",
            )
            .bind(&manager.id)
            .bind(consultation_id)
            .execute(&mut *conn)
            .await?;
            return Ok(ClaimOutcome::NotRinging);
        }
        Ok(ClaimOutcome::Claimed(manager))
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
