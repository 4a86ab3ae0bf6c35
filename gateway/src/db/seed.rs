//! Idempotent upserts for what the configuration file declares (channels, numbers, trunks,
//! managers, teams). Run at every start: inserting when new, updating config columns when
//! changed, never touching runtime state (presence, ringing, fairness).
//!
//! `INSERT ... ON CONFLICT (id) DO UPDATE SET col = excluded.col` is accepted by both
//! PostgreSQL and SQLite (3.24+), and is atomic on both, so two nodes seeding at once are fine.

use super::model::{flag, Channel, ManagerSeed, PhoneNumber, Team, Trunk};
use super::{Db, DbError};

impl Db {
    pub async fn upsert_channel(&self, c: &Channel) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO channels (id, name, plan, business_verified, meet_voice_video_enabled, \
                 call_rate_per_minute_minor, currency, ring_all_phone_team, \
                 transcription_language, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, plan = excluded.plan, \
                 business_verified = excluded.business_verified, \
                 meet_voice_video_enabled = excluded.meet_voice_video_enabled, \
                 call_rate_per_minute_minor = excluded.call_rate_per_minute_minor, \
                 currency = excluded.currency, \
                 ring_all_phone_team = excluded.ring_all_phone_team, \
                 transcription_language = excluded.transcription_language",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(c.plan.as_str())
        .bind(flag(c.business_verified))
        .bind(flag(c.meet_voice_video_enabled))
        .bind(c.call_rate_per_minute_minor)
        .bind(&c.currency)
        .bind(flag(c.ring_all_phone_team))
        .bind(c.transcription_language.as_str())
        .bind(c.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fails with `Conflict` when the number already belongs to another row (numbers are
    /// globally unique: a number routes to exactly one channel).
    pub async fn upsert_phone_number(&self, n: &PhoneNumber) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO phone_numbers (id, channel_id, number_e164, label) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET channel_id = excluded.channel_id, \
                 number_e164 = excluded.number_e164, label = excluded.label",
        )
        .bind(&n.id)
        .bind(&n.channel_id)
        .bind(&n.number_e164)
        .bind(n.label.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn upsert_trunk(&self, t: &Trunk) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO trunks (id, channel_id, name, allowed_cidrs, auth_username, \
                 auth_password, auth_realm, max_calls_per_second, max_concurrent_calls, \
                 outbound_proxy, registrar_uri, register_username, register_password, \
                 register_expires_s) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET channel_id = excluded.channel_id, \
                 name = excluded.name, allowed_cidrs = excluded.allowed_cidrs, \
                 auth_username = excluded.auth_username, auth_password = excluded.auth_password, \
                 auth_realm = excluded.auth_realm, \
                 max_calls_per_second = excluded.max_calls_per_second, \
                 max_concurrent_calls = excluded.max_concurrent_calls, \
                 outbound_proxy = excluded.outbound_proxy, \
                 registrar_uri = excluded.registrar_uri, \
                 register_username = excluded.register_username, \
                 register_password = excluded.register_password, \
                 register_expires_s = excluded.register_expires_s",
        )
        .bind(&t.id)
        .bind(&t.channel_id)
        .bind(&t.name)
        .bind(t.allowed_cidrs.join(","))
        .bind(t.auth_username.as_deref())
        .bind(t.auth_password.as_deref())
        .bind(t.auth_realm.as_deref())
        .bind(t.max_calls_per_second)
        .bind(t.max_concurrent_calls)
        .bind(t.outbound_proxy.as_deref())
        .bind(t.registrar_uri.as_deref())
        .bind(t.register_username.as_deref())
        .bind(t.register_password.as_deref())
        .bind(t.register_expires_s)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Inserts a new manager offline (presence comes from the browser connection, not the
    /// config file) or updates the configured columns of an existing one.
    pub async fn upsert_manager(&self, m: &ManagerSeed, now_ms: i64) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO managers (id, channel_id, name, token_sha256, role, operator_seat, \
                 presence, do_not_disturb, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'offline', 0, $7) \
             ON CONFLICT (id) DO UPDATE SET channel_id = excluded.channel_id, \
                 name = excluded.name, token_sha256 = excluded.token_sha256, \
                 role = excluded.role, operator_seat = excluded.operator_seat",
        )
        .bind(&m.id)
        .bind(&m.channel_id)
        .bind(&m.name)
        // Lower-case so lookups by a hash printed in either case match.
        .bind(m.token_sha256.to_ascii_lowercase())
        .bind(m.role.as_str())
        .bind(flag(m.operator_seat))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn upsert_team(&self, t: &Team) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO teams (id, channel_id, name, phone_team) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET channel_id = excluded.channel_id, \
                 name = excluded.name, phone_team = excluded.phone_team",
        )
        .bind(&t.id)
        .bind(&t.channel_id)
        .bind(&t.name)
        .bind(flag(t.phone_team))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the team's member list with exactly `manager_ids` (one transaction, so a
    /// reader never sees a half-updated team).
    pub async fn set_team_members(
        &self,
        team_id: &str,
        manager_ids: &[&str],
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM team_members WHERE team_id = $1")
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        for manager_id in manager_ids {
            sqlx::query(
                "INSERT INTO team_members (team_id, manager_id) VALUES ($1, $2) \
                 ON CONFLICT (team_id, manager_id) DO NOTHING",
            )
            .bind(team_id)
            .bind(*manager_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
