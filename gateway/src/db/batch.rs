//! Several statements run as one transaction in as few round trips as the backend allows.
//!
//! On SQLite every statement is a round trip to sqlx's connection thread (~35–55 µs measured
//! here, more than the statement itself), and a call's outcome is five or six statements.
//! SQLite accepts several statements in one prepared string, so there the whole transaction
//! (`BEGIN IMMEDIATE; …; COMMIT`) is one round trip. PostgreSQL's extended protocol does not, so
//! there the statements run one by one inside a transaction.
//!
//! Each statement is written with its own `$1..$n`; for SQLite they are renumbered into one
//! shared argument list. The SQL must not contain `$` elsewhere (no string literals with it).

use sqlx::Executor;

use super::{Backend, Db, DbError};

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Null,
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Arg::Null, Arg::from)
    }
}

struct Statement {
    sql: String,
    args: Vec<Arg>,
    /// Affecting no row means the transaction's premise failed (e.g. the call was already
    /// decided): the batch is rolled back with this message as a `Conflict`.
    must_affect: Option<String>,
}

#[derive(Default)]
pub(crate) struct Batch {
    statements: Vec<Statement>,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch::default()
    }

    pub(crate) fn push(&mut self, sql: &str, args: Vec<Arg>) -> &mut Self {
        self.statements.push(Statement {
            sql: sql.to_owned(),
            args,
            must_affect: None,
        });
        self
    }

    /// Like [`Batch::push`], but the batch fails with `Conflict(conflict)` unless this
    /// statement changes a row.
    pub(crate) fn push_must_affect(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
        conflict: String,
    ) -> &mut Self {
        self.statements.push(Statement {
            sql: sql.to_owned(),
            args,
            must_affect: Some(conflict),
        });
        self
    }
}

/// `$k` → `$(k + offset)`.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut digits = String::new();
        while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&digits),
        }
    }
    out
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &[Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s.clone()),
            Arg::Int(i) => q.bind(*i),
            Arg::Null => q.bind(Option::<String>::None),
        };
    }
    q
}

impl Db {
    /// Runs the batch atomically. Fails with `Conflict` (and changes nothing) when a
    /// `must_affect` statement changed no row. On SQLite only the first statement's premise is
    /// checked (see [`run_sqlite`]): put the deciding statement first.
    pub(crate) async fn run_batch(&self, batch: Batch) -> Result<(), DbError> {
        match self.backend {
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                for st in &batch.statements {
                    let affected = bind_all(sqlx::query(&st.sql), &st.args)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if let (0, Some(conflict)) = (affected, &st.must_affect) {
                        return Err(DbError::Conflict(conflict.clone()));
                    }
                }
                tx.commit().await?;
                Ok(())
            }
            Backend::Sqlite => {
                let mut conn = self.pool.acquire().await?;
                let result = run_sqlite(&mut conn, &batch).await;
                if result.is_err() {
                    // A failed statement or a refused premise leaves the transaction open on
                    // this connection.
                    let _ = conn.execute("ROLLBACK").await;
                }
                result
            }
        }
    }
}

/// One round trip when no statement has a premise, else two: `BEGIN IMMEDIATE` with the
/// first statement (whose row count decides), then the rest with `COMMIT`. Only the first
/// statement's `must_affect` is checked here; later statements must follow from it.
async fn run_sqlite(conn: &mut sqlx::AnyConnection, batch: &Batch) -> Result<(), DbError> {
    let gated = batch.statements.first().and_then(|s| s.must_affect.clone());
    // IMMEDIATE takes the write lock at once (no lock upgrade between reads and writes).
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut args: Vec<Arg> = Vec::new();
    let mut rest = batch.statements.iter();
    if let Some((conflict, first)) = gated.zip(batch.statements.first()) {
        rest.next();
        // Count the rows RETURNING gives back: after BEGIN, sqlite3_changes() still holds
        // the previous statement's count, so a summed rows_affected would lie.
        sql.push_str(&first.sql);
        sql.push_str(" RETURNING 1");
        let affected = bind_all(sqlx::query(&sql), &first.args)
            .fetch_all(&mut *conn)
            .await?
            .len();
        if affected == 0 {
            return Err(DbError::Conflict(conflict));
        }
        sql.clear();
    }
    for st in rest {
        sql.push_str(&renumber(&st.sql, args.len()));
        sql.push_str(";\n");
        args.extend(st.args.iter().cloned());
    }
    sql.push_str("COMMIT;");
    bind_all(sqlx::query(&sql), &args)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::renumber;

    #[test]
    fn renumbers_placeholders_only() {
        assert_eq!(
            renumber("UPDATE t SET a = $1 WHERE b = $2 AND c = $10", 3),
            "UPDATE t SET a = $4 WHERE b = $5 AND c = $13"
        );
        assert_eq!(renumber("SELECT 1", 5), "SELECT 1");
        assert_eq!(renumber("x = $", 2), "x = $");
    }
}
