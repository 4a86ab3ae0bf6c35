//! Durable state: sqlx repositories over SQLite (embedded default) or PostgreSQL (scale-out).
//!
//! One code path serves both backends through sqlx's `Any` driver, with runtime queries
//! (no `query!` macros: there is no database at build time). Portable SQL only:
//! `$1`-style placeholders (PostgreSQL requires them; sqlx's SQLite driver maps `$N` to the
//! N-th argument), BIGINT for integers and 0/1 flags, TEXT ids and enums. The schema lives in
//! `schemas/migrations/`.
//!
//! Concurrency rules that hold on both backends (several gateway nodes may share one
//! PostgreSQL; one node has many tasks on one SQLite file):
//! * uniqueness is enforced by constraints, and "find or create" retries on conflict;
//! * claims are conditional `UPDATE ... WHERE <still free>` statements whose affected-row
//!   count says who won;
//! * a transaction that reads and then writes starts with its write, so SQLite takes the
//!   write lock up front (waiting on `busy_timeout`) instead of failing with `SQLITE_BUSY`
//!   when upgrading a read snapshot that another writer made stale.

mod admin_queries;
mod batch;
mod calls;
mod consultations;
mod customers;
mod jobs;
mod managers;
mod model;
mod numbers;
mod recordings;
mod seed;
#[cfg(test)]
mod tests;
mod webhooks;

use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub use admin_queries::ListFilter;
pub use calls::NewPhoneCall;
pub use jobs::{ClaimedJob, NewTranscript, Transcript};
pub use model::{
    CallRecord, Channel, Classification, Consultation, ConsultationState, Customer, Direction,
    Manager, ManagerSeed, Meet, MeetKind, MeetScope, MeetState, MissedReason, PhoneNumber, Plan,
    Presence, Role, Source, Team, TranscriptionLanguage, Trunk, UnknownValue,
};
pub use recordings::{NewRecording, Recording};
pub use webhooks::{NewWebhookEvent, WebhookAttempt, WebhookEvent};

/// How long a SQLite connection waits for the write lock before giving up. Writes here are
/// a few rows each, so waiting this long means something is badly wrong.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{entity} {id:?} not found")]
    NotFound { entity: &'static str, id: String },
    /// A uniqueness rule or a state precondition was violated (e.g. the number is already
    /// used by another channel, the call has already ended).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A foreign key pointed at nothing (e.g. a phone number for an unknown channel).
    #[error("invalid reference: {0}")]
    InvalidReference(String),
    #[error("invalid value {value:?} in column {column}")]
    InvalidValue { column: &'static str, value: String },
    #[error("unsupported database url (expected sqlite: or postgres://): {0}")]
    UnsupportedUrl(String),
}

impl DbError {
    /// Stable machine-readable code for logs and the HTTP layer's `{code, message}`.
    pub fn code(&self) -> &'static str {
        match self {
            DbError::Sqlx(_) => "db.error",
            DbError::Migrate(_) => "db.migration_failed",
            DbError::NotFound { .. } => "db.not_found",
            DbError::Conflict(_) => "db.conflict",
            DbError::InvalidReference(_) => "db.invalid_reference",
            DbError::InvalidValue { .. } => "db.invalid_value",
            DbError::UnsupportedUrl(_) => "db.unsupported_url",
        }
    }

    pub(crate) fn not_found(entity: &'static str, id: &str) -> Self {
        DbError::NotFound {
            entity,
            id: id.to_owned(),
        }
    }
}

/// Constraint violations become typed errors so callers can tell "already exists" from an
/// outage without parsing backend-specific messages.
impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            if db.is_unique_violation() {
                return DbError::Conflict(db.message().to_owned());
            }
            if db.is_foreign_key_violation() {
                return DbError::InvalidReference(db.message().to_owned());
            }
        }
        DbError::Sqlx(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle: cheap to clone (the pool is reference-counted).
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

static INSTALL_DRIVERS: Once = Once::new();

impl Db {
    /// Connects to `sqlite:PATH` (file created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        // `Any` needs its drivers registered once per process before the first connect.
        INSTALL_DRIVERS.call_once(sqlx::any::install_default_drivers);

        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Db {
                pool,
                backend: Backend::Postgres,
            })
        } else {
            Err(DbError::UnsupportedUrl(redact(url)))
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Db, DbError> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // `mode=rwc` makes SQLite create the file when missing (the default is `rw`, which
        // fails on a fresh install).
        let url = if in_memory || url.contains("mode=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };

        // WAL is a property of the database file and switching to it needs an exclusive lock
        // that busy_timeout does not wait for, so set it once here on a lone connection rather
        // than in every pooled connection's setup (where simultaneous connects could fail).
        let opts: AnyConnectOptions = url.parse()?;
        let mut conn = opts.connect().await?;
        if !in_memory {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;

        let mut pool_opts = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            // A local file cannot drop the connection under us: skip the ping per acquire.
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Per-connection settings (SQLite forgets them on close). sqlx's SQLite
                    // driver already enables foreign keys by default; say it anyway so the
                    // guarantee does not hang on a library default.
                    (&mut *conn).execute("PRAGMA foreign_keys = ON").await?;
                    (&mut *conn)
                        .execute(&*format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
                        .await?;
                    // NORMAL is durable in WAL mode except for the last transactions before a
                    // power loss, and avoids an fsync per commit.
                    (&mut *conn).execute("PRAGMA synchronous = NORMAL").await?;
                    // Every write by another pooled connection invalidates this connection's
                    // page cache; memory-mapped reads make the refill a memory copy instead of
                    // a pread per page (measured: most of the per-call cost without it).
                    (&mut *conn).execute("PRAGMA mmap_size = 268435456").await?;
                    // Checkpoint every ~16 MiB of WAL instead of 4 MiB: pages rewritten by
                    // many calls (indexes, the managers table) are copied back once, not four
                    // times (checkpoints were ~4% of the database thread at 400 calls/s).
                    (&mut *conn)
                        .execute("PRAGMA wal_autocheckpoint = 4000")
                        .await?;
                    Ok(())
                })
            });
        pool_opts = if in_memory {
            // Through `Any`, every new connection to `:memory:` would open a *different* empty
            // database, so an in-memory pool must be exactly one connection that never closes.
            pool_opts
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            // SQLite has one writer at a time. With several connections, writers collide and
            // wait in SQLite's busy handler, which sleeps in steps of up to 100 ms (measured:
            // 1.5 s statements at 300 calls/s); one connection queues them in the pool instead,
            // first come first served, and keeps its page cache warm.
            pool_opts.max_connections(1)
        };
        let pool = pool_opts.connect(&url).await?;
        Ok(Db {
            pool,
            backend: Backend::Sqlite,
        })
    }

    /// Applies `schemas/migrations` (idempotent: applied versions are skipped; on PostgreSQL
    /// sqlx holds an advisory lock so several nodes starting together migrate once).
    pub async fn migrate(&self) -> Result<(), DbError> {
        sqlx::migrate!("../schemas/migrations")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for queries this module does not cover yet.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Hides a password in a URL before it goes into an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A fresh id for a new row (UUID v4 as text: portable, and unique across nodes).
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
