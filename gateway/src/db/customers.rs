//! Customers, identified on the phone by the caller's number (per channel).

use super::model::Customer;
use super::{new_id, Db, DbError};

/// A lost race is retried; more than a few in a row means something else is wrong.
const FIND_OR_CREATE_ATTEMPTS: usize = 5;

impl Db {
    /// The customer of `channel_id` who owns `number_e164`, created (nameless) if unknown.
    ///
    /// Safe under concurrency on both backends: the (channel_id, number_e164) primary key
    /// admits one owner; a task that loses the race rolls its new customer back and returns the
    /// winner's. On PostgreSQL the losing `INSERT ... ON CONFLICT DO NOTHING` waits for the
    /// winner's transaction, so the winner's row is visible by the time we read it again.
    pub async fn find_or_create_customer_by_phone(
        &self,
        channel_id: &str,
        number_e164: &str,
        now_ms: i64,
    ) -> Result<Customer, DbError> {
        for _ in 0..FIND_OR_CREATE_ATTEMPTS {
            // Fast path without a write lock: almost every caller is already known.
            if let Some(c) = self.customer_by_phone(channel_id, number_e164).await? {
                return Ok(c);
            }
            let customer = Customer {
                id: new_id(),
                channel_id: channel_id.to_owned(),
                name: None,
                created_at_ms: now_ms,
            };
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO customers (id, channel_id, name, created_at_ms) \
                 VALUES ($1, $2, NULL, $3)",
            )
            .bind(&customer.id)
            .bind(channel_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO customer_phone_numbers (customer_id, channel_id, number_e164) \
                 VALUES ($1, $2, $3) ON CONFLICT (channel_id, number_e164) DO NOTHING",
            )
            .bind(&customer.id)
            .bind(channel_id)
            .bind(number_e164)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                tx.commit().await?;
                return Ok(customer);
            }
            // Another task or node created the customer first: drop ours, read theirs.
            tx.rollback().await?;
        }
        Err(DbError::Conflict(format!(
            "could not find or create the customer for {number_e164} after \
             {FIND_OR_CREATE_ATTEMPTS} attempts"
        )))
    }

    /// A new customer with no phone number to match on (e.g. a caller who withheld their
    /// number: each such call is a new customer).
    pub async fn create_customer(
        &self,
        channel_id: &str,
        now_ms: i64,
    ) -> Result<Customer, DbError> {
        let customer = Customer {
            id: new_id(),
            channel_id: channel_id.to_owned(),
            name: None,
            created_at_ms: now_ms,
        };
        sqlx::query(
            "INSERT INTO customers (id, channel_id, name, created_at_ms) VALUES ($1, $2, NULL, $3)",
        )
        .bind(&customer.id)
        .bind(channel_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(customer)
    }

    pub async fn customer_by_phone(
        &self,
        channel_id: &str,
        number_e164: &str,
    ) -> Result<Option<Customer>, DbError> {
        sqlx::query(
            "SELECT c.id, c.channel_id, c.name, c.created_at_ms \
             FROM customer_phone_numbers p JOIN customers c ON c.id = p.customer_id \
             WHERE p.channel_id = $1 AND p.number_e164 = $2",
        )
        .bind(channel_id)
        .bind(number_e164)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Customer::from_row(&r))
        .transpose()
    }

    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM customers WHERE id = $1",
            Customer::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Customer::from_row(&r))
        .transpose()
    }
}
