//! The store of budget counters: one counter per (limit, bucket), opened
//! by the bucket's first use and expiring with its window.
//!
//! Two operations, each atomic and (in Redis) one round trip:
//!
//! * [`Store::check`] — for every item, the amount used in its window and
//!   when that window ends; if none is exhausted, each `requests` item is
//!   reserved (its count goes up by one) in the same step, so concurrent
//!   requests never get past a request cap.
//! * [`Store::debit`] — adds a response's usage to its counters.
//!
//! Stores are process-wide, one per distinct spec, so a policy reload
//! keeps the in-process counts and the Redis connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::memory::MemoryStore;
use super::redis::RedisStore;

/// Most buckets the in-process store holds (live windows); a new bucket
/// beyond that is a store error.
pub const MEMORY_MAX_BUCKETS: usize = 100_000;

/// Which store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreSpec {
    /// This process only.
    Memory,
    Redis {
        url: String,
        prefix: String,
    },
}

/// One counter to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckItem {
    /// The counter's key (without the store's prefix).
    pub key: String,
    pub cap: u64,
    pub window: Duration,
    /// A request cap: reserved by the check.
    pub reserve: bool,
}

/// One counter to add to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitItem {
    pub key: String,
    pub amount: u64,
    pub window: Duration,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Per item: used in its window (for a reserved request, this one
    /// included) and how long until the window ends.
    pub items: Vec<(u64, Duration)>,
    /// The first exhausted item: nothing was reserved.
    pub exhausted: Option<usize>,
}

/// Why the store gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the budget store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the budget store failed: {0}")]
    Failed(String),
    #[error("the in-process budget store is full ({MEMORY_MAX_BUCKETS} live buckets)")]
    Full,
}

/// A store.
#[derive(Debug)]
pub enum Store {
    Memory(MemoryStore),
    Redis(Box<RedisStore>),
}

impl Store {
    /// Checks `items` (see the module docs), giving up after `timeout`.
    pub async fn check(
        &self,
        items: &[CheckItem],
        timeout: Duration,
    ) -> Result<Standing, StoreError> {
        match self {
            Store::Memory(m) => m.check(items),
            Store::Redis(r) => within(timeout, r.check(items)).await,
        }
    }

    /// Adds `items`, giving up after `timeout`.
    pub async fn debit(&self, items: &[DebitItem], timeout: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => m.debit(items),
            Store::Redis(r) => within(timeout, r.debit(items)).await,
        }
    }

    /// The used amounts and time left of `keys` (nothing reserved).
    pub async fn read(
        &self,
        keys: &[String],
        timeout: Duration,
    ) -> Result<Vec<(u64, Option<Duration>)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.read(keys)),
            Store::Redis(r) => within(timeout, r.read(keys)).await,
        }
    }

    /// `memory` or `redis`, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Timeout(timeout)),
    }
}

/// The process-wide store for `spec` (made on first use). A Redis URL is
/// parsed here; the connection is made by the first check.
pub fn store_for(spec: &StoreSpec) -> Result<Arc<Store>, String> {
    static STORES: OnceLock<Mutex<HashMap<StoreSpec, Arc<Store>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = stores.get(spec) {
        return Ok(s.clone());
    }
    let store = Arc::new(match spec {
        StoreSpec::Memory => Store::Memory(MemoryStore::new(MEMORY_MAX_BUCKETS)),
        StoreSpec::Redis { url, prefix } => Store::Redis(Box::new(RedisStore::new(url, prefix)?)),
    });
    stores.insert(spec.clone(), store.clone());
    Ok(store)
}
