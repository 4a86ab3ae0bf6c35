//! Dialled number → channel, cached briefly. Every INVITE asks it; the answer changes only when
//! an operator edits numbers or plans, so a few seconds of staleness buys two database round
//! trips per call (most of a call's database cost on SQLite is round trips).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::{Channel, Db, DbError};

/// How long an answer (including "unknown number") is reused.
pub const NUMBER_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; the cache is emptied when full (numbers are few; floods of unknown
/// numbers must not grow memory without bound).
pub const NUMBER_CACHE_MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct NumberDirectory {
    entries: Mutex<HashMap<String, (Instant, Option<Channel>)>>,
}

impl NumberDirectory {
    pub async fn channel_for(
        &self,
        db: &Db,
        e164: &str,
        now: Instant,
    ) -> Result<Option<Channel>, DbError> {
        if let Some(hit) = self.cached(e164, now) {
            return Ok(hit);
        }
        let channel = db.channel_for_number(e164).await?.map(|(_, c)| c);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= NUMBER_CACHE_MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(e164.to_string(), (now, channel.clone()));
        Ok(channel)
    }

    fn cached(&self, e164: &str, now: Instant) -> Option<Option<Channel>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (at, channel) = entries.get(e164)?;
        (now.saturating_duration_since(*at) < NUMBER_CACHE_TTL).then(|| channel.clone())
    }
}
