//! Repository tests, each run on BOTH backends: SQLite in a fresh temp file, and PostgreSQL
//! from `GATEWAY_TEST_PG_URL` (start one with `eval "$(tests/scripts/start-postgres.sh)"`),
//! in a fresh database per test so tests run in parallel without seeing each other's rows.
//! Without the variable the PostgreSQL half prints "skipped" and passes, unless
//! `GATEWAY_REQUIRE_PG=1` (CI), where it fails.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use sqlx::{Connection, Executor};

use super::calls::call_charge;
use super::*;

// ---- harness -----------------------------------------------------------------------------

struct TestDb {
    db: Db,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

impl TestDb {
    async fn sqlite() -> Result<TestDb> {
        let path =
            std::env::temp_dir().join(format!("gateway-db-test-{}.sqlite", uuid::Uuid::new_v4()));
        let db = Db::connect(&format!("sqlite:{}", path.display())).await?;
        db.migrate().await?;
        Ok(TestDb {
            db,
            cleanup: Cleanup::SqliteFile(path),
        })
    }

    /// `None` when PostgreSQL is not configured and not required.
    async fn postgres() -> Result<Option<TestDb>> {
        let Ok(admin_url) = std::env::var("GATEWAY_TEST_PG_URL") else {
            if std::env::var("GATEWAY_REQUIRE_PG").as_deref() == Ok("1") {
                anyhow::bail!("GATEWAY_REQUIRE_PG=1 but GATEWAY_TEST_PG_URL is unset");
            }
            eprintln!("skipped: GATEWAY_TEST_PG_URL unset");
            return Ok(None);
        };
        let name = format!("gw_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connecting to GATEWAY_TEST_PG_URL {admin_url}"))?;
        admin
            .execute(&*format!("CREATE DATABASE \"{name}\""))
            .await?;
        admin.close().await?;
        let db = Db::connect(&with_database(&admin_url, &name)).await?;
        db.migrate().await?;
        Ok(Some(TestDb {
            db,
            cleanup: Cleanup::PgDatabase { admin_url, name },
        }))
    }

    async fn cleanup(self) -> Result<()> {
        self.db.close().await;
        match self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::PgDatabase { admin_url, name } => {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin
                    .execute(&*format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                admin.close().await?;
            }
        }
        Ok(())
    }
}

/// `postgres://u@h:p/db?x=y` with the database replaced by `name` (query kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn run_sqlite<F, Fut>(test: F) -> Result<()>
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let setup = std::time::Instant::now();
    let t = TestDb::sqlite().await?;
    let started = std::time::Instant::now();
    let result = test(t.db.clone()).await;
    let body = started.elapsed();
    t.cleanup().await?;
    eprintln!(
        "timing sqlite: setup {:?} body {body:?} cleanup {:?}",
        started - setup,
        started.elapsed() - body
    );
    result
}

async fn run_postgres<F, Fut>(test: F) -> Result<()>
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let setup = std::time::Instant::now();
    let Some(t) = TestDb::postgres().await? else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let result = test(t.db.clone()).await;
    let body = started.elapsed();
    // Keep a failed test's database for inspection.
    if result.is_ok() {
        t.cleanup().await?;
    }
    eprintln!(
        "timing postgres: setup {:?} body {body:?} cleanup {:?}",
        started - setup,
        started.elapsed() - body
    );
    result
}

/// Declares `mod $name { sqlite, postgres }`, both running `$body(db)`.
/// Multi-threaded runtimes so the concurrency tests really race.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() -> anyhow::Result<()> {
                super::run_sqlite(super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() -> anyhow::Result<()> {
                super::run_postgres(super::$name).await
            }
        }
    )+};
}

both_backends!(
    migrations_apply_twice,
    upserts_are_idempotent_and_update,
    e164_lookup,
    concurrent_find_or_create_makes_one_customer,
    open_phone_consultation_writes_three_rows,
    claim_is_fair_least_recently_assigned_first,
    claim_skips_unavailable_managers,
    claim_honours_exclusion_list,
    concurrent_claims_never_share_a_manager,
    release_only_clears_own_consultation,
    missed_outcome_rows,
    end_call_charges_started_minutes,
    ring_all_phone_team_claims_members,
    answer_racing_missed_one_wins,
    recordings_come_with_their_job_and_list_by_channel,
    transcription_jobs_are_leased_retried_and_done_once,
    concurrent_workers_never_share_a_job,
    webhook_events_are_claimed_once_and_retried,
);

// ---- connection settings (SQLite only: PostgreSQL is used as given) -------------------------

#[tokio::test]
async fn sqlite_file_is_created_with_wal_and_pragmas() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("gateway-db-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("gateway.sqlite");
    ensure!(!path.exists());
    let db = Db::connect(&format!("sqlite:{}", path.display())).await?;
    ensure!(db.backend() == Backend::Sqlite);
    ensure!(path.exists(), "connect creates the file");
    db.migrate().await?;
    // One connection: writers queue in the pool instead of sleeping in SQLite's busy
    // handler. Its settings are read back below.
    ensure!(db.pool().options().get_max_connections() == 1);
    let mut conns = vec![db.pool().acquire().await?];
    for conn in &mut conns {
        let pragma = |name: &'static str| format!("PRAGMA {name}");
        let journal: String = sqlx::Row::try_get(
            &sqlx::query(&pragma("journal_mode"))
                .fetch_one(&mut **conn)
                .await?,
            0,
        )?;
        ensure!(journal == "wal", "journal_mode {journal}");
        let fk: i64 = sqlx::Row::try_get(
            &sqlx::query(&pragma("foreign_keys"))
                .fetch_one(&mut **conn)
                .await?,
            0,
        )?;
        ensure!(fk == 1, "foreign_keys {fk}");
        let sync: i64 = sqlx::Row::try_get(
            &sqlx::query(&pragma("synchronous"))
                .fetch_one(&mut **conn)
                .await?,
            0,
        )?;
        ensure!(sync == 1, "synchronous {sync} (1 = NORMAL)");
        let busy: i64 = sqlx::Row::try_get(
            &sqlx::query(&pragma("busy_timeout"))
                .fetch_one(&mut **conn)
                .await?,
            0,
        )?;
        ensure!(
            busy == i64::from(SQLITE_BUSY_TIMEOUT_MS),
            "busy_timeout {busy}"
        );
        let mmap: i64 = sqlx::Row::try_get(
            &sqlx::query(&pragma("mmap_size"))
                .fetch_one(&mut **conn)
                .await?,
            0,
        )?;
        ensure!(mmap > 0, "mmap_size {mmap}");
    }
    drop(conns);
    db.close().await;
    // Reopening an existing file works and keeps the data (the migration is not re-run).
    let db = Db::connect(&format!("sqlite://{}", path.display())).await?;
    db.migrate().await?;
    db.close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test]
async fn sqlite_in_memory_works_on_one_connection() -> Result<()> {
    let db = Db::connect("sqlite::memory:").await?;
    db.migrate().await?;
    seed_channel(&db, 1).await?;
    let (c, m, call) = incoming(&db, CALLER, T0).await?;
    ensure!(claim(&db, &c.id, &[], T0).await?.as_deref() == Some("m-0"));
    db.mark_missed(&c.id, &m.id, &call.id, MissedReason::Declined, T0 + 1)
        .await?;
    ensure!(db.channel_for_number(NUMBER).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn unsupported_url_is_refused_without_its_password() -> Result<()> {
    let err = Db::connect("mysql://user:hunter2@db/x").await;
    let Err(err) = err else {
        anyhow::bail!("mysql must be refused");
    };
    ensure!(err.code() == "db.unsupported_url");
    ensure!(!err.to_string().contains("hunter2"), "{err}");
    Ok(())
}

#[test]
fn pg_url_database_is_replaced() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5/postgres?sslmode=disable", "t"),
        "postgres://u@127.0.0.1:5/t?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:5", "t"), "postgres://u@h:5/t");
}

// ---- fixtures ------------------------------------------------------------------------------

const T0: i64 = 1_700_000_000_000;
const CHANNEL: &str = "ch-1";
const TRUNK: &str = "trunk-1";
const NUMBER: &str = "+827012345678";
const CALLER: &str = "+821098765432";

fn channel(id: &str) -> Channel {
    Channel {
        id: id.to_owned(),
        name: "Acme".to_owned(),
        plan: Plan::Paid,
        business_verified: true,
        meet_voice_video_enabled: true,
        call_rate_per_minute_minor: 50,
        currency: "KRW".to_owned(),
        ring_all_phone_team: false,
        transcription_language: TranscriptionLanguage::Ko,
        created_at_ms: T0,
    }
}

fn trunk(id: &str, channel_id: &str) -> Trunk {
    Trunk {
        id: id.to_owned(),
        channel_id: channel_id.to_owned(),
        name: "carrier".to_owned(),
        allowed_cidrs: vec!["192.0.2.0/24".to_owned(), "198.51.100.7/32".to_owned()],
        auth_username: Some("acme".to_owned()),
        auth_password: Some("secret".to_owned()),
        auth_realm: Some("carrier.example".to_owned()),
        max_calls_per_second: 5,
        max_concurrent_calls: 30,
        outbound_proxy: None,
        registrar_uri: None,
        register_username: None,
        register_password: None,
        register_expires_s: None,
    }
}

fn manager_seed(id: &str, seat: bool) -> ManagerSeed {
    ManagerSeed {
        id: id.to_owned(),
        channel_id: CHANNEL.to_owned(),
        name: format!("Manager {id}"),
        token_sha256: format!("{:0>64}", id.replace('-', "")),
        role: Role::Manager,
        operator_seat: seat,
    }
}

/// A channel with its number, trunk and `n` online managers with seats (`m-0`, `m-1`, ...).
async fn seed_channel(db: &Db, n: usize) -> Result<Vec<String>> {
    db.upsert_channel(&channel(CHANNEL)).await?;
    db.upsert_phone_number(&PhoneNumber {
        id: "num-1".to_owned(),
        channel_id: CHANNEL.to_owned(),
        number_e164: NUMBER.to_owned(),
        label: Some("main".to_owned()),
    })
    .await?;
    db.upsert_trunk(&trunk(TRUNK, CHANNEL)).await?;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("m-{i}");
        db.upsert_manager(&manager_seed(&id, true), T0).await?;
        db.set_presence(&id, true).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// An open inbound phone consultation from `caller`.
async fn incoming(db: &Db, caller: &str, now: i64) -> Result<(Consultation, Meet, CallRecord)> {
    let customer = db
        .find_or_create_customer_by_phone(CHANNEL, caller, now)
        .await?;
    let call_id = format!("sip-{}", uuid::Uuid::new_v4());
    Ok(db
        .open_phone_consultation(
            CHANNEL,
            &customer.id,
            Direction::Inbound,
            &NewPhoneCall {
                sip_call_id: &call_id,
                from_number: caller,
                to_number: NUMBER,
                trunk_id: TRUNK,
                currency: "KRW",
            },
            now,
        )
        .await?)
}

async fn claim(db: &Db, consultation: &str, exclude: &[&str], now: i64) -> Result<Option<String>> {
    Ok(db
        .claim_next_manager(CHANNEL, consultation, exclude, now)
        .await?
        .map(|m| m.id))
}

// ---- tests ---------------------------------------------------------------------------------

async fn migrations_apply_twice(db: Db) -> Result<()> {
    // The harness migrated once already.
    db.migrate().await?;
    db.migrate().await?;
    let rows = sqlx::query("SELECT code FROM missed_reasons ORDER BY code")
        .fetch_all(db.pool())
        .await?;
    let codes: Vec<String> = rows
        .iter()
        .map(|r| sqlx::Row::try_get(r, "code"))
        .collect::<Result<_, _>>()?;
    let mut expected: Vec<&str> = MissedReason::ALL.iter().map(|r| r.as_str()).collect();
    expected.sort_unstable();
    ensure!(codes == expected, "seeded reasons {codes:?}");
    // Every enum value the Rust side can write is accepted by the CHECK constraints, and a
    // value outside them is refused.
    db.upsert_channel(&channel(CHANNEL)).await?;
    let bad = sqlx::query("UPDATE channels SET plan = 'gold' WHERE id = $1")
        .bind(CHANNEL)
        .execute(db.pool())
        .await;
    ensure!(bad.is_err(), "CHECK constraint on plan must refuse 'gold'");
    Ok(())
}

async fn upserts_are_idempotent_and_update(db: Db) -> Result<()> {
    seed_channel(&db, 1).await?;
    seed_channel(&db, 1).await?; // second run: no error, no duplicates

    let mut c = channel(CHANNEL);
    c.name = "Acme Korea".to_owned();
    c.call_rate_per_minute_minor = 70;
    c.transcription_language = TranscriptionLanguage::Auto;
    c.created_at_ms = T0 + 99; // creation time is kept from the first insert
    db.upsert_channel(&c).await?;
    let got = db.channel(CHANNEL).await?.context("channel")?;
    ensure!(got.name == "Acme Korea" && got.call_rate_per_minute_minor == 70);
    ensure!(got.transcription_language == TranscriptionLanguage::Auto);
    ensure!(got.created_at_ms == T0);

    let mut t = trunk(TRUNK, CHANNEL);
    t.auth_password = None;
    t.registrar_uri = Some("sip:reg.carrier.example".to_owned());
    db.upsert_trunk(&t).await?;
    let trunks = db.trunks().await?;
    ensure!(trunks == vec![t.clone()], "trunks {trunks:?}");

    // Runtime state survives a re-seed; configured columns follow the config.
    db.set_do_not_disturb("m-0", true).await?;
    let mut seed = manager_seed("m-0", false);
    seed.name = "Renamed".to_owned();
    seed.token_sha256 = seed.token_sha256.to_ascii_uppercase();
    db.upsert_manager(&seed, T0 + 5).await?;
    let m = db.manager("m-0").await?.context("manager")?;
    ensure!(m.name == "Renamed" && !m.operator_seat);
    ensure!(m.presence == Presence::Online && m.do_not_disturb);
    ensure!(m.created_at_ms == T0);
    let by_token = db
        .manager_by_token_sha256(&seed.token_sha256)
        .await?
        .context("by token")?;
    ensure!(by_token.id == "m-0");
    ensure!(db.manager_by_token_sha256(&"f".repeat(64)).await?.is_none());

    // A number routes to one channel only.
    db.upsert_channel(&channel("ch-2")).await?;
    let dup = db
        .upsert_phone_number(&PhoneNumber {
            id: "num-2".to_owned(),
            channel_id: "ch-2".to_owned(),
            number_e164: NUMBER.to_owned(),
            label: None,
        })
        .await;
    ensure!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");
    // A number for a channel that does not exist.
    let orphan = db
        .upsert_phone_number(&PhoneNumber {
            id: "num-3".to_owned(),
            channel_id: "nope".to_owned(),
            number_e164: "+827000000000".to_owned(),
            label: None,
        })
        .await;
    ensure!(
        matches!(orphan, Err(DbError::InvalidReference(_))),
        "{orphan:?}"
    );
    // Restart: everyone offline and not ringing, configuration kept.
    let (c, _, _) = incoming(&db, CALLER, T0).await?;
    db.set_do_not_disturb("m-0", false).await?;
    db.upsert_manager(&manager_seed("m-0", true), T0).await?;
    ensure!(claim(&db, &c.id, &[], T0).await?.as_deref() == Some("m-0"));
    db.reset_live_state().await?;
    let m = db.manager("m-0").await?.context("manager")?;
    ensure!(m.presence == Presence::Offline && m.ringing_consultation_id.is_none());
    ensure!(m.operator_seat && m.last_assigned_at_ms == Some(T0));
    // A withheld number: a new customer every time.
    let a = db.create_customer(CHANNEL, T0).await?;
    let b = db.create_customer(CHANNEL, T0).await?;
    ensure!(a.id != b.id && db.customer(&a.id).await? == Some(a));
    ensure!(matches!(
        db.set_presence("nobody", true).await,
        Err(DbError::NotFound { .. })
    ));
    Ok(())
}

async fn e164_lookup(db: Db) -> Result<()> {
    seed_channel(&db, 0).await?;
    let (number, ch) = db
        .channel_for_number(NUMBER)
        .await?
        .context("number routes")?;
    ensure!(number.id == "num-1" && number.label.as_deref() == Some("main"));
    ensure!(ch == channel(CHANNEL));
    ensure!(db.channel_for_number("+827099999999").await?.is_none());
    ensure!(db.phone_numbers(CHANNEL).await?.len() == 1);
    Ok(())
}

async fn concurrent_find_or_create_makes_one_customer(db: Db) -> Result<()> {
    seed_channel(&db, 0).await?;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.find_or_create_customer_by_phone(CHANNEL, CALLER, T0 + i)
                .await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await??.id);
    }
    ensure!(
        ids.len() == 1,
        "20 racing calls made {} customers",
        ids.len()
    );
    let count: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM customers")
            .fetch_one(db.pool())
            .await?,
        "n",
    )?;
    ensure!(count == 1, "{count} customer rows (losers must roll back)");
    let again = db
        .find_or_create_customer_by_phone(CHANNEL, CALLER, T0 + 100)
        .await?;
    ensure!(ids.contains(&again.id));
    // Same number in another channel is another customer.
    db.upsert_channel(&channel("ch-2")).await?;
    let other = db
        .find_or_create_customer_by_phone("ch-2", CALLER, T0)
        .await?;
    ensure!(!ids.contains(&other.id));
    Ok(())
}

async fn open_phone_consultation_writes_three_rows(db: Db) -> Result<()> {
    seed_channel(&db, 0).await?;
    let (c, m, call) = incoming(&db, CALLER, T0).await?;
    let stored = db.consultation(&c.id).await?.context("consultation")?;
    ensure!(stored == c);
    ensure!(c.source == Source::Phone && c.classification == Classification::Call);
    ensure!(c.state == ConsultationState::Open && c.assignee_manager_id.is_none());
    let meet = db.meet(&m.id).await?.context("meet")?;
    ensure!(meet == m);
    ensure!(m.kind == MeetKind::Phone && m.scope == MeetScope::Customer);
    ensure!(m.state == MeetState::Ringing && m.direction == Direction::Inbound);
    let rec = db.call_record(&call.id).await?.context("call")?;
    ensure!(rec == call && rec.currency == "KRW" && rec.trunk_id == TRUNK);
    ensure!(db.calls_for_consultation(&c.id).await? == vec![call]);

    // All or nothing: an unknown trunk fails the last insert and leaves no consultation.
    let customer = db
        .find_or_create_customer_by_phone(CHANNEL, CALLER, T0)
        .await?;
    let failed = db
        .open_phone_consultation(
            CHANNEL,
            &customer.id,
            Direction::Inbound,
            &NewPhoneCall {
                sip_call_id: "x",
                from_number: CALLER,
                to_number: NUMBER,
                trunk_id: "no-such-trunk",
                currency: "KRW",
            },
            T0,
        )
        .await;
    ensure!(failed.is_err());
    let n: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM consultations")
            .fetch_one(db.pool())
            .await?,
        "n",
    )?;
    ensure!(n == 1, "the failed open left {n} consultations");
    Ok(())
}

async fn claim_is_fair_least_recently_assigned_first(db: Db) -> Result<()> {
    let managers = seed_channel(&db, 3).await?;
    // m-1 was assigned long ago, the others never: never-assigned first (by id), then m-1.
    let mut order = Vec::new();
    let mut now = T0;
    for _ in 0..6 {
        now += 1000;
        let (c, _, _) = incoming(&db, CALLER, now).await?;
        let who = claim(&db, &c.id, &[], now).await?.context("someone free")?;
        ensure!(
            db.consultation(&c.id)
                .await?
                .context("c")?
                .assignee_manager_id
                == Some(who.clone())
        );
        let m = db.manager(&who).await?.context("m")?;
        ensure!(
            m.ringing_consultation_id == Some(c.id.clone()) && m.last_assigned_at_ms == Some(now)
        );
        // The call went unanswered on this manager: free them for the next one.
        ensure!(db.release_ringing(&who, &c.id).await?);
        order.push(who);
    }
    ensure!(
        order == ["m-0", "m-1", "m-2", "m-0", "m-1", "m-2"],
        "order {order:?}"
    );
    // Ties on last_assigned_at_ms break by id; an older assignment goes first.
    sqlx::query("UPDATE managers SET last_assigned_at_ms = $1")
        .bind(T0)
        .execute(db.pool())
        .await?;
    sqlx::query("UPDATE managers SET last_assigned_at_ms = $1 WHERE id = 'm-2'")
        .bind(T0 - 1)
        .execute(db.pool())
        .await?;
    let (c, _, _) = incoming(&db, CALLER, now + 1).await?;
    ensure!(claim(&db, &c.id, &[], now + 1).await?.as_deref() == Some("m-2"));
    let (c, _, _) = incoming(&db, CALLER, now + 2).await?;
    ensure!(claim(&db, &c.id, &[], now + 2).await?.as_deref() == Some("m-0"));
    ensure!(managers.len() == 3);
    Ok(())
}

async fn claim_skips_unavailable_managers(db: Db) -> Result<()> {
    seed_channel(&db, 6).await?;
    db.set_do_not_disturb("m-0", true).await?; // DND
    db.set_presence("m-1", false).await?; // offline
    db.upsert_manager(&manager_seed("m-2", false), T0).await?; // no operator seat
                                                               // m-3 is in an active meet (answered another call).
    let (busy, _, busy_call) = incoming(&db, "+821000000001", T0).await?;
    ensure!(claim(&db, &busy.id, &["m-4", "m-5"], T0).await?.as_deref() == Some("m-3"));
    db.answer_call(&busy_call.id, "m-3", T0 + 1).await?;
    ensure!(db
        .manager("m-3")
        .await?
        .context("m-3")?
        .ringing_consultation_id
        .is_none());
    // m-4 is ringing for another consultation.
    let (ringing, _, _) = incoming(&db, "+821000000002", T0).await?;
    ensure!(claim(&db, &ringing.id, &["m-5"], T0).await?.as_deref() == Some("m-4"));
    // A manager of another channel is never a candidate.
    db.upsert_channel(&channel("ch-2")).await?;
    let mut other = manager_seed("other", true);
    other.channel_id = "ch-2".to_owned();
    db.upsert_manager(&other, T0).await?;
    db.set_presence("other", true).await?;

    let (c, _, _) = incoming(&db, CALLER, T0 + 10).await?;
    ensure!(claim(&db, &c.id, &[], T0 + 10).await?.as_deref() == Some("m-5"));
    let (c2, _, _) = incoming(&db, CALLER, T0 + 11).await?;
    ensure!(
        claim(&db, &c2.id, &[], T0 + 11).await?.is_none(),
        "nobody left"
    );

    // When m-3's call ends they are free again (left the meet).
    db.end_call(&busy_call.id, "bye", Some("customer"), None, &[], T0 + 20)
        .await?;
    ensure!(claim(&db, &c2.id, &[], T0 + 21).await?.as_deref() == Some("m-3"));
    // DND off and back online: eligible again.
    db.set_do_not_disturb("m-0", false).await?;
    db.set_presence("m-1", true).await?;
    let (c3, _, _) = incoming(&db, CALLER, T0 + 30).await?;
    ensure!(claim(&db, &c3.id, &[], T0 + 30).await?.as_deref() == Some("m-0"));
    Ok(())
}

async fn claim_honours_exclusion_list(db: Db) -> Result<()> {
    seed_channel(&db, 4).await?;
    let (c, _, _) = incoming(&db, CALLER, T0).await?;
    // m-0 and m-1 declined this call already.
    let who = claim(&db, &c.id, &["m-0", "m-1"], T0).await?;
    ensure!(who.as_deref() == Some("m-2"), "{who:?}");
    db.release_ringing("m-2", &c.id).await?;
    let who = claim(&db, &c.id, &["m-0", "m-1", "m-2", "m-3"], T0 + 1).await?;
    ensure!(who.is_none(), "{who:?}");
    // Excluding more ids than one page of candidates still works.
    let many: Vec<String> = (0..50).map(|i| format!("x-{i}")).collect();
    let mut exclude: Vec<&str> = many.iter().map(String::as_str).collect();
    exclude.push("m-3");
    let who = claim(&db, &c.id, &exclude, T0 + 2).await?;
    ensure!(who.as_deref() == Some("m-0"), "{who:?}");
    Ok(())
}

async fn concurrent_claims_never_share_a_manager(db: Db) -> Result<()> {
    // 12 calls race for 8 managers, as if from several gateway nodes.
    seed_channel(&db, 8).await?;
    let mut consultations = Vec::new();
    for i in 0..12 {
        let (c, _, _) = incoming(&db, &format!("+82100000{i:04}"), T0).await?;
        consultations.push(c.id);
    }
    let mut tasks = Vec::new();
    for (i, c) in consultations.iter().enumerate() {
        let db = db.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            db.claim_next_manager(CHANNEL, &c, &[], T0 + i as i64).await
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        if let Some(m) = t.await?? {
            claimed.push(m.id);
        }
    }
    let distinct: HashSet<&String> = claimed.iter().collect();
    ensure!(
        distinct.len() == claimed.len(),
        "a manager was claimed twice: {claimed:?}"
    );
    ensure!(
        claimed.len() == 8,
        "all 8 managers should ring, got {claimed:?}"
    );
    // The database agrees: each manager rings for a different consultation.
    let rows = sqlx::query(
        "SELECT ringing_consultation_id FROM managers WHERE ringing_consultation_id IS NOT NULL",
    )
    .fetch_all(db.pool())
    .await?;
    let ringing: HashSet<String> = rows
        .iter()
        .map(|r| sqlx::Row::try_get(r, "ringing_consultation_id"))
        .collect::<Result<_, _>>()?;
    ensure!(ringing.len() == 8);
    Ok(())
}

async fn release_only_clears_own_consultation(db: Db) -> Result<()> {
    seed_channel(&db, 1).await?;
    let (a, _, _) = incoming(&db, CALLER, T0).await?;
    let (b, _, _) = incoming(&db, CALLER, T0).await?;
    ensure!(claim(&db, &a.id, &[], T0).await?.as_deref() == Some("m-0"));
    // A late release for another consultation must not free the manager.
    ensure!(!db.release_ringing("m-0", &b.id).await?);
    ensure!(claim(&db, &b.id, &[], T0 + 1).await?.is_none());
    ensure!(db.release_ringing("m-0", &a.id).await?);
    ensure!(claim(&db, &b.id, &[], T0 + 2).await?.as_deref() == Some("m-0"));
    Ok(())
}

async fn missed_outcome_rows(db: Db) -> Result<()> {
    seed_channel(&db, 1).await?;
    let (c, m, call) = incoming(&db, CALLER, T0).await?;
    ensure!(claim(&db, &c.id, &[], T0).await?.is_some());
    let t_end = T0 + 120_000;
    db.mark_missed(&c.id, &m.id, &call.id, MissedReason::NoAnswer, t_end)
        .await?;

    let c2 = db.consultation(&c.id).await?.context("c")?;
    ensure!(c2.state == ConsultationState::Missed);
    ensure!(c2.missed_reason == Some(MissedReason::NoAnswer) && c2.closed_at_ms == Some(t_end));
    ensure!(
        c2.assignee_manager_id.as_deref() == Some("m-0"),
        "the assignee who missed it stays"
    );
    let m2 = db.meet(&m.id).await?.context("m")?;
    ensure!(m2.state == MeetState::Missed && m2.missed_reason == Some(MissedReason::NoAnswer));
    ensure!(m2.ended_at_ms == Some(t_end));
    let r = db.call_record(&call.id).await?.context("call")?;
    ensure!(r.ended_at_ms == Some(t_end) && r.answered_at_ms.is_none());
    ensure!(r.end_reason.as_deref() == Some("missed"));
    ensure!(r.missed_reason == Some(MissedReason::NoAnswer));
    ensure!(r.billable_seconds == 0 && r.charge_minor == 0);
    // Nobody new may be rung for a missed call.
    let late_claim = db.claim_next_manager(CHANNEL, &c.id, &[], t_end + 1).await;
    ensure!(
        matches!(late_claim, Err(DbError::Conflict(_))),
        "{late_claim:?}"
    );
    // The ringing manager is free again.
    ensure!(db
        .manager("m-0")
        .await?
        .context("m-0")?
        .ringing_consultation_id
        .is_none());

    // A second outcome for the same call is refused, and changes nothing.
    let again = db
        .mark_missed(&c.id, &m.id, &call.id, MissedReason::Declined, t_end + 1)
        .await;
    ensure!(matches!(again, Err(DbError::Conflict(_))), "{again:?}");
    ensure!(db
        .end_call(&call.id, "bye", None, None, &[], t_end + 1)
        .await
        .is_err());
    ensure!(
        db.consultation(&c.id).await?.context("c")?.missed_reason == Some(MissedReason::NoAnswer)
    );

    // Every reason is accepted by the foreign key.
    for reason in MissedReason::ALL {
        let (c, m, call) = incoming(&db, CALLER, T0).await?;
        db.mark_missed(&c.id, &m.id, &call.id, *reason, T0 + 1)
            .await?;
    }
    // Missed after being answered: refused, the answer won.
    let (c, m, call) = incoming(&db, CALLER, T0).await?;
    db.answer_call(&call.id, "m-0", T0 + 1).await?;
    let late = db
        .mark_missed(
            &c.id,
            &m.id,
            &call.id,
            MissedReason::CallerCancelled,
            T0 + 2,
        )
        .await;
    ensure!(matches!(late, Err(DbError::Conflict(_))), "{late:?}");
    ensure!(db.consultation(&c.id).await?.context("c")?.state == ConsultationState::Open);
    ensure!(matches!(
        db.mark_missed("nope", &m.id, &call.id, MissedReason::NoAnswer, T0)
            .await,
        Err(DbError::NotFound { .. })
    ));
    Ok(())
}

async fn end_call_charges_started_minutes(db: Db) -> Result<()> {
    seed_channel(&db, 1).await?; // rate 50 per minute
                                 // (answered duration ms, expected billable seconds, expected charge)
    let cases = [
        (0, 0, 0),
        (1, 1, 50),
        (59_999, 60, 50),
        (60_000, 60, 50),
        (60_001, 61, 100),
        (61_000, 61, 100),
        (3_600_000, 3600, 3000),
    ];
    for (duration, seconds, charge) in cases {
        let (c, m, call) = incoming(&db, CALLER, T0).await?;
        ensure!(claim(&db, &c.id, &[], T0).await?.as_deref() == Some("m-0"));
        let answered = db.answer_call(&call.id, "m-0", T0 + 5_000).await?;
        ensure!(answered.answered_at_ms == Some(T0 + 5_000));
        let meet = db.meet(&m.id).await?.context("meet")?;
        ensure!(meet.state == MeetState::Active && meet.answered_at_ms == Some(T0 + 5_000));
        let r = db
            .end_call(
                &call.id,
                "bye",
                Some("manager:m-0"),
                None,
                &[],
                T0 + 5_000 + duration,
            )
            .await?;
        ensure!(
            r.billable_seconds == seconds && r.charge_minor == charge,
            "{duration} ms -> {} s, {} (want {seconds} s, {charge})",
            r.billable_seconds,
            r.charge_minor
        );
        ensure!(
            r.end_reason.as_deref() == Some("bye") && r.ended_by.as_deref() == Some("manager:m-0")
        );
        let meet = db.meet(&m.id).await?.context("meet")?;
        ensure!(meet.state == MeetState::Ended && meet.ended_at_ms == r.ended_at_ms);
        let c = db.consultation(&c.id).await?.context("c")?;
        ensure!(
            c.state == ConsultationState::Open,
            "the consultation stays open after the call"
        );
    }
    // Unanswered but ended normally (caller hung up early, before missed): no charge.
    let (_, _, call) = incoming(&db, CALLER, T0).await?;
    let r = db
        .end_call(&call.id, "cancel", Some("customer"), None, &[], T0 + 9_000)
        .await?;
    ensure!(r.billable_seconds == 0 && r.charge_minor == 0);
    // Answering twice, or ending twice: the first wins.
    let (_, _, call) = incoming(&db, CALLER, T0).await?;
    db.answer_call(&call.id, "m-0", T0 + 1).await?;
    ensure!(matches!(
        db.answer_call(&call.id, "m-0", T0 + 2).await,
        Err(DbError::Conflict(_))
    ));
    db.end_call(&call.id, "bye", None, None, &[], T0 + 3)
        .await?;
    ensure!(matches!(
        db.end_call(&call.id, "bye", None, None, &[], T0 + 4).await,
        Err(DbError::Conflict(_))
    ));
    ensure!(matches!(
        db.end_call("nope", "bye", None, None, &[], T0).await,
        Err(DbError::NotFound { .. })
    ));

    // The pure function at its edges.
    ensure!(call_charge(None, T0, 50) == (0, 0));
    ensure!(
        call_charge(Some(T0), T0 - 10, 50) == (0, 0),
        "clock going backwards"
    );
    ensure!(call_charge(Some(0), 120_000, 0) == (120, 0), "free channel");
    Ok(())
}

async fn ring_all_phone_team_claims_members(db: Db) -> Result<()> {
    seed_channel(&db, 4).await?;
    db.upsert_team(&Team {
        id: "team-phone".to_owned(),
        channel_id: CHANNEL.to_owned(),
        name: "Phone".to_owned(),
        phone_team: true,
    })
    .await?;
    db.upsert_team(&Team {
        id: "team-other".to_owned(),
        channel_id: CHANNEL.to_owned(),
        name: "Other".to_owned(),
        phone_team: false,
    })
    .await?;
    db.set_team_members("team-phone", &["m-0", "m-1", "m-2"])
        .await?;
    db.set_team_members("team-phone", &["m-0", "m-1", "m-2"])
        .await?; // idempotent
    db.set_team_members("team-other", &["m-3"]).await?;
    db.set_do_not_disturb("m-2", true).await?;

    let (c, m, call) = incoming(&db, CALLER, T0).await?;
    ensure!(claim(&db, &c.id, &[], T0).await?.as_deref() == Some("m-0"));
    let also: Vec<String> = db
        .claim_phone_team(CHANNEL, &c.id)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    ensure!(also == ["m-1"], "rung along: {also:?}");
    // Being rung along is not an assignment: fairness untouched.
    ensure!(db
        .manager("m-1")
        .await?
        .context("m-1")?
        .last_assigned_at_ms
        .is_none());
    // m-1 answers: becomes the assignee; every ringing manager is freed.
    db.answer_call(&call.id, "m-1", T0 + 1).await?;
    let c2 = db.consultation(&c.id).await?.context("c")?;
    ensure!(c2.assignee_manager_id.as_deref() == Some("m-1"));
    ensure!(db
        .manager("m-0")
        .await?
        .context("m-0")?
        .ringing_consultation_id
        .is_none());
    ensure!(db.meet(&m.id).await?.context("meet")?.state == MeetState::Active);
    Ok(())
}

async fn answer_racing_missed_one_wins(db: Db) -> Result<()> {
    // The ring timer fires on one node while the manager answers on another: exactly one
    // outcome is recorded, and the loser gets a clean `Conflict` (never a deadlock error).
    seed_channel(&db, 2).await?;
    for i in 0..15 {
        let now = T0 + i * 1000;
        let (c, m, call) = incoming(&db, CALLER, now).await?;
        let who = claim(&db, &c.id, &[], now).await?.context("free manager")?;
        let (a, b, d) = {
            let (db1, db2, db3) = (db.clone(), db.clone(), db.clone());
            let (c1, c2) = (c.id.clone(), c.id.clone());
            let (call1, call2) = (call.id.clone(), call.id.clone());
            let m_id = m.id.clone();
            let who2 = who.clone();
            tokio::join!(
                tokio::spawn(
                    async move { db1.answer_call(&call1, &who2, now + 1).await.map(|_| ()) }
                ),
                tokio::spawn(async move {
                    db2.mark_missed(&c1, &m_id, &call2, MissedReason::NoAnswer, now + 1)
                        .await
                }),
                // A claim for the same consultation (e.g. after a decline) joins the race.
                tokio::spawn(async move {
                    db3.claim_next_manager(CHANNEL, &c2, &[], now + 1)
                        .await
                        .map(|_| ())
                }),
            )
        };
        let (a, b, d) = (a?, b?, d?);
        ensure!(a.is_ok() != b.is_ok(), "answer {a:?} vs missed {b:?}");
        for r in [&a, &b, &d] {
            if let Err(e) = r {
                ensure!(matches!(e, DbError::Conflict(_)), "unexpected error {e:?}");
            }
        }
        let c = db.consultation(&c.id).await?.context("c")?;
        let r = db.call_record(&call.id).await?.context("call")?;
        // Whatever the interleaving, nobody is left ringing for a call that was decided.
        let still_ringing =
            sqlx::query("SELECT COUNT(*) AS n FROM managers WHERE ringing_consultation_id = $1")
                .bind(&c.id)
                .fetch_one(db.pool())
                .await?;
        let still_ringing: i64 = sqlx::Row::try_get(&still_ringing, "n")?;
        ensure!(
            still_ringing == 0,
            "{still_ringing} managers ringing for a decided call"
        );
        if a.is_ok() {
            ensure!(
                c.assignee_manager_id.as_deref() == Some(who.as_str()),
                "the answerer is the assignee"
            );
            ensure!(c.state == ConsultationState::Open && r.answered_at_ms.is_some());
            db.end_call(&call.id, "bye", None, None, &[], now + 2)
                .await?;
        } else {
            ensure!(c.state == ConsultationState::Missed && r.answered_at_ms.is_none());
        }
    }
    Ok(())
}

fn new_recording(call: &CallRecord, started_at_ms: i64) -> NewRecording {
    NewRecording {
        id: format!("rec-{}", call.id),
        call_id: call.id.clone(),
        storage_key: format!("{CHANNEL}/rec-{}.wav", call.id),
        content_type: "audio/wav".to_owned(),
        sample_rate_hz: 8000,
        channels: 2,
        duration_ms: 61_000,
        size_bytes: 44 + 61 * 32_000,
        sha256: "ab".repeat(32),
        repaired: false,
        started_at_ms,
    }
}

async fn recordings_come_with_their_job_and_list_by_channel(db: Db) -> Result<()> {
    seed_channel(&db, 2).await?;
    let mut calls = Vec::new();
    for (i, caller) in [CALLER, "+821011112222", CALLER].iter().enumerate() {
        let t = T0 + i as i64 * 100_000;
        let (c, _, call) = incoming(&db, caller, t).await?;
        let manager = claim(&db, &c.id, &[], t).await?.context("a manager")?;
        db.answer_call(&call.id, &manager, t + 1_000).await?;
        let rec = new_recording(&call, t + 1_000);
        let ended = db
            .end_call(
                &call.id,
                "bye",
                Some("customer"),
                Some(&rec),
                &[],
                t + 62_000,
            )
            .await?;
        ensure!(ended.charge_minor == 100, "{ended:?}");
        // The recording and its queued job, written with the call's end.
        let stored = db
            .recording_for_call(&call.id)
            .await?
            .context("recording")?;
        ensure!(stored.channel_id == CHANNEL && stored.consultation_id == c.id);
        ensure!(stored.duration_ms == 61_000 && !stored.repaired);
        ensure!(db.transcription_job_state(&stored.id).await? == Some(("queued".to_owned(), 0)));
        calls.push((call.id.clone(), manager, stored.id));
    }
    // A second recording for a call is refused, and nothing else is written.
    let dup = NewRecording {
        id: "rec-dup".to_owned(),
        ..new_recording(&db.call_record(&calls[0].0).await?.context("call")?, T0)
    };
    ensure!(db.add_recording(&dup, &[], T0).await.is_err());
    ensure!(db.recording("rec-dup").await?.is_none());

    // Lists: newest first, filters, keyset pages.
    let db = &db;
    let all = |f: ListFilter| async move { db.list_recordings(CHANNEL, &f).await };
    let filter = ListFilter {
        limit: 10,
        ..ListFilter::default()
    };
    let ids: Vec<String> = all(filter.clone())
        .await?
        .into_iter()
        .map(|(r, _)| r.id)
        .collect();
    ensure!(ids == [calls[2].2.clone(), calls[1].2.clone(), calls[0].2.clone()]);
    let by_number = all(ListFilter {
        number_e164: Some(CALLER.to_owned()),
        ..filter.clone()
    })
    .await?;
    ensure!(by_number.len() == 2);
    let by_manager = all(ListFilter {
        manager_id: Some(calls[1].1.clone()),
        ..filter.clone()
    })
    .await?;
    ensure!(by_manager.iter().any(|(r, _)| r.id == calls[1].2));
    let window = all(ListFilter {
        from_ms: Some(T0 + 50_000),
        to_ms: Some(T0 + 150_000),
        ..filter.clone()
    })
    .await?;
    ensure!(window.len() == 1 && window[0].0.id == calls[1].2);
    let first_page = all(ListFilter {
        limit: 1,
        ..filter.clone()
    })
    .await?;
    let (last, _) = first_page.last().context("one")?;
    let next = all(ListFilter {
        limit: 5,
        before: Some((last.started_at_ms, last.id.clone())),
        ..filter.clone()
    })
    .await?;
    ensure!(next.len() == 2 && next[0].0.id == calls[1].2);
    let call_list = db.list_calls(CHANNEL, &filter).await?;
    ensure!(call_list.len() == 3 && call_list[0].id == calls[2].0);
    // Another channel sees none of it.
    ensure!(db.list_recordings("other", &filter).await?.is_empty());
    ensure!(db.channel_recording("other", &calls[0].2).await?.is_none());
    ensure!(db.channel_call("other", &calls[0].0).await?.is_none());
    ensure!(db.channel_call(CHANNEL, &calls[0].0).await?.is_some());
    Ok(())
}

/// `n` ended calls with recordings and queued jobs; their recording ids.
async fn recorded_calls(db: &Db, n: usize) -> Result<Vec<String>> {
    seed_channel(db, 1).await?;
    let mut ids = Vec::new();
    for i in 0..n {
        let t = T0 + i as i64 * 1_000;
        let (c, _, call) = incoming(db, CALLER, t).await?;
        claim(db, &c.id, &[], t).await?.context("manager")?;
        db.answer_call(&call.id, "m-0", t + 1).await?;
        let rec = new_recording(&call, t + 1);
        db.end_call(&call.id, "bye", Some("customer"), Some(&rec), &[], t + 500)
            .await?;
        ids.push(rec.id);
    }
    Ok(ids)
}

fn transcript(text: &str) -> NewTranscript {
    NewTranscript {
        language: "ko".to_owned(),
        turns_json: "[]".to_owned(),
        text: text.to_owned(),
        speech_ms: 1_000,
        processing_ms: 100,
    }
}

async fn transcription_jobs_are_leased_retried_and_done_once(db: Db) -> Result<()> {
    let recs = recorded_calls(&db, 1).await?;
    let now = T0 + 10_000;
    let job = db
        .claim_transcription_job("w1", now, 60_000)
        .await?
        .context("a due job")?;
    ensure!(job.recording_id == recs[0] && job.attempts == 1);
    // Held: nobody else gets it while the lease runs.
    ensure!(db
        .claim_transcription_job("w2", now + 1, 60_000)
        .await?
        .is_none());
    ensure!(
        db.renew_transcription_lease(&job.id, "w1", now + 90_000)
            .await?
    );
    ensure!(
        !db.renew_transcription_lease(&job.id, "w2", now + 90_000)
            .await?
    );
    // w1 dies silently; after its lease, w2 takes the job over.
    ensure!(db
        .claim_transcription_job("w2", now + 89_999, 60_000)
        .await?
        .is_none());
    let again = db
        .claim_transcription_job("w2", now + 90_000, 60_000)
        .await?
        .context("the expired job")?;
    ensure!(again.id == job.id && again.attempts == 2);
    // w1 comes back and tries to finish: refused, nothing written.
    ensure!(db
        .complete_transcription_job(&job, "w1", &transcript("late"), &[], now + 90_001)
        .await
        .is_err());
    ensure!(db.transcript_for_recording(&recs[0]).await?.is_none());
    ensure!(
        !db.fail_transcription_job(&job.id, "w1", "x", None, now)
            .await?
    );
    // w2 fails once, is retried after the backoff, then finishes.
    ensure!(
        db.fail_transcription_job(
            &job.id,
            "w2",
            "model busy",
            Some(now + 200_000),
            now + 100_000
        )
        .await?
    );
    ensure!(db.transcription_job_state(&recs[0]).await? == Some(("queued".to_owned(), 2)));
    ensure!(db
        .claim_transcription_job("w3", now + 199_999, 60_000)
        .await?
        .is_none());
    let third = db
        .claim_transcription_job("w3", now + 200_000, 60_000)
        .await?
        .context("retried job")?;
    ensure!(third.attempts == 3);
    let t = db
        .complete_transcription_job(&third, "w3", &transcript("hello"), &[], now + 200_500)
        .await?;
    ensure!(t.recording_id == recs[0] && t.text == "hello");
    ensure!(db.transcription_job_state(&recs[0]).await? == Some(("done".to_owned(), 3)));
    ensure!(db
        .claim_transcription_job("w4", now + 999_999, 60_000)
        .await?
        .is_none());
    // Done for good: a failure marked final stays failed.
    ensure!(db.transcript_for_recording(&recs[0]).await? == Some(t));
    Ok(())
}

async fn concurrent_workers_never_share_a_job(db: Db) -> Result<()> {
    let recs = recorded_calls(&db, 6).await?;
    let db = std::sync::Arc::new(db);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = db
                .claim_transcription_job(&format!("w{w}"), T0 + 100_000, 60_000)
                .await?
            {
                got.push(job.recording_id);
            }
            Ok::<_, DbError>(got)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    let mut expected = recs;
    expected.sort();
    ensure!(all == expected, "{all:?}");
    Ok(())
}

async fn webhook_events_are_claimed_once_and_retried(db: Db) -> Result<()> {
    seed_channel(&db, 0).await?;
    let event = |n: u32| NewWebhookEvent {
        channel_id: CHANNEL.to_owned(),
        event_type: "recording.ready",
        payload_json: format!("{{\"n\":{n}}}"),
    };
    let ids = db.add_webhook_events(&[event(1), event(2)], T0).await?;
    let channels = [CHANNEL.to_owned()];
    // Only channels with a webhook are dispatched.
    ensure!(db
        .claim_webhook_event(&["other".to_owned()], "d1", T0, 30_000)
        .await?
        .is_none());
    let first = db
        .claim_webhook_event(&channels, "d1", T0, 30_000)
        .await?
        .context("due")?;
    let second = db
        .claim_webhook_event(&channels, "d2", T0, 30_000)
        .await?
        .context("the other one")?;
    ensure!(first.id != second.id && ids.contains(&first.id) && ids.contains(&second.id));
    ensure!(db
        .claim_webhook_event(&channels, "d3", T0, 30_000)
        .await?
        .is_none());
    // The endpoint answered 500: retried later; the lease holder alone may say so.
    ensure!(
        !db.finish_webhook_attempt(
            &first.id,
            "d2",
            WebhookAttempt::Delivered { status: 200 },
            T0 + 1
        )
        .await?
    );
    ensure!(
        db.finish_webhook_attempt(
            &first.id,
            "d1",
            WebhookAttempt::Retry {
                status: Some(500),
                error: "500",
                at_ms: T0 + 10_000,
            },
            T0 + 1
        )
        .await?
    );
    ensure!(
        db.finish_webhook_attempt(
            &second.id,
            "d2",
            WebhookAttempt::Delivered { status: 204 },
            T0 + 1
        )
        .await?
    );
    ensure!(db
        .claim_webhook_event(&channels, "d1", T0 + 9_999, 30_000)
        .await?
        .is_none());
    let retry = db
        .claim_webhook_event(&channels, "d1", T0 + 10_000, 30_000)
        .await?
        .context("retry")?;
    ensure!(retry.id == first.id && retry.attempts == 2);
    // Its dispatcher dies: after the lease another one takes it.
    let taken = db
        .claim_webhook_event(&channels, "d2", T0 + 40_000, 30_000)
        .await?
        .context("after the lease")?;
    ensure!(taken.id == first.id && taken.attempts == 3);
    ensure!(
        db.finish_webhook_attempt(
            &first.id,
            "d2",
            WebhookAttempt::Failed {
                status: None,
                error: "refused",
            },
            T0 + 40_001
        )
        .await?
    );
    let all = db.webhook_events(CHANNEL).await?;
    let state = |id: &str| all.iter().find(|e| e.id == id).map(|e| e.state.clone());
    ensure!(state(&first.id).as_deref() == Some("failed"));
    ensure!(state(&second.id).as_deref() == Some("delivered"));
    ensure!(all.iter().any(|e| e.payload_json == "{\"n\":1}"));
    Ok(())
}
