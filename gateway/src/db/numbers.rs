//! Routing data: which channel a dialled number belongs to, and the carrier trunks.

use super::model::{Channel, PhoneNumber, Trunk};
use super::{Db, DbError};

impl Db {
    /// The number (E.164, e.g. `+827012345678`) and its channel, or `None` when no channel
    /// owns it (the SIP layer answers 404).
    pub async fn channel_for_number(
        &self,
        number_e164: &str,
    ) -> Result<Option<(PhoneNumber, Channel)>, DbError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {} FROM phone_numbers WHERE number_e164 = $1",
            PhoneNumber::COLUMNS
        ))
        .bind(number_e164)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let number = PhoneNumber::from_row(&row)?;
        // The foreign key guarantees the channel exists; a miss means it was deleted between
        // the two reads, which is the same as the number not routing anywhere.
        let channel = self.channel(&number.channel_id).await?;
        Ok(channel.map(|c| (number, c)))
    }

    pub async fn channel(&self, id: &str) -> Result<Option<Channel>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM channels WHERE id = $1",
            Channel::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| Channel::from_row(&r))
        .transpose()
    }

    pub async fn phone_numbers(&self, channel_id: &str) -> Result<Vec<PhoneNumber>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM phone_numbers WHERE channel_id = $1 ORDER BY number_e164",
            PhoneNumber::COLUMNS
        ))
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(PhoneNumber::from_row)
        .collect()
    }

    /// Every trunk of every channel (the SIP layer loads them all to match source addresses).
    pub async fn trunks(&self) -> Result<Vec<Trunk>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM trunks ORDER BY id",
            Trunk::COLUMNS
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(Trunk::from_row)
        .collect()
    }
}
