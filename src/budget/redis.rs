//! The Redis store: every replica counts in the same keys. A check and a
//! debit are each one Lua script (EVALSHA, loaded on first use), so they
//! are atomic and one round trip. Keys are `<prefix><limit>:<bucket>`;
//! each expires with its window (PEXPIRE when opened), so nothing grows.
//!
//! The scripts name every key they touch (KEYS): with Redis Cluster, a
//! request's limits must hash to one slot — give the buckets a hash tag
//! (`keyPrefix: "{promptgate}:"`).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::OnceCell;

use super::store::{CheckItem, DebitItem, Standing, StoreError};

/// ARGV per key: cap, window in ms, 1 to reserve a request. Returns
/// `{exhausted index (1-based, 0 none), used1, pttl1, used2, pttl2, ...}`.
const CHECK: &str = r"
local n = #KEYS
local used, ttl = {}, {}
local exhausted = 0
for i = 1, n do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  ttl[i] = redis.call('PTTL', KEYS[i])
  if exhausted == 0 and used[i] >= tonumber(ARGV[3*i-2]) then exhausted = i end
end
if exhausted == 0 then
  for i = 1, n do
    if ARGV[3*i] == '1' then
      used[i] = redis.call('INCR', KEYS[i])
      if ttl[i] < 0 then
        redis.call('PEXPIRE', KEYS[i], ARGV[3*i-1])
        ttl[i] = tonumber(ARGV[3*i-1])
      end
    end
  end
end
local out = {exhausted}
for i = 1, n do
  out[#out+1] = used[i]
  out[#out+1] = ttl[i]
end
return out
";

/// ARGV per key: amount, window in ms.
const DEBIT: &str = r"
for i = 1, #KEYS do
  local amount = tonumber(ARGV[2*i-1])
  if amount > 0 then
    redis.call('INCRBY', KEYS[i], amount)
    if redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[2*i])
    end
  end
end
return 1
";

pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    url: String,
    conn: OnceCell<ConnectionManager>,
    check: Script,
    debit: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError::Failed(e.to_string())
}

fn millis(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

impl RedisStore {
    pub fn new(url: &str, prefix: &str) -> Result<RedisStore, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("`{}` is not a Redis URL: {e}", redact(url)))?;
        Ok(RedisStore {
            client,
            prefix: prefix.to_owned(),
            url: redact(url),
            conn: OnceCell::new(),
            check: Script::new(CHECK),
            debit: Script::new(DEBIT),
        })
    }

    /// The shared connection (made lazily, reconnecting by itself; a
    /// broken connection fails fast rather than queue).
    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        self.conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(failed)
            })
            .await
            .cloned()
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn check(&self, items: &[CheckItem]) -> Result<Standing, StoreError> {
        let mut conn = self.conn().await?;
        let mut inv = self.check.prepare_invoke();
        for item in items {
            inv.key(self.key(&item.key))
                .arg(item.cap)
                .arg(millis(item.window))
                .arg(if item.reserve { "1" } else { "0" });
        }
        let out: Vec<i64> = inv.invoke_async(&mut conn).await.map_err(failed)?;
        if out.len() != 1 + 2 * items.len() {
            return Err(StoreError::Failed(format!(
                "the check script answered {} values for {} keys",
                out.len(),
                items.len()
            )));
        }
        let exhausted = usize::try_from(out[0])
            .ok()
            .filter(|i| *i > 0)
            .map(|i| i - 1);
        let standing = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let used = out[1 + 2 * i].max(0) as u64;
                let pttl = out[2 + 2 * i];
                let left = if pttl > 0 {
                    Duration::from_millis(pttl as u64)
                } else {
                    item.window
                };
                (used, left)
            })
            .collect();
        Ok(Standing {
            items: standing,
            exhausted,
        })
    }

    pub async fn debit(&self, items: &[DebitItem]) -> Result<(), StoreError> {
        let items: Vec<&DebitItem> = items.iter().filter(|i| i.amount > 0).collect();
        if items.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut inv = self.debit.prepare_invoke();
        for item in items {
            inv.key(self.key(&item.key))
                .arg(item.amount)
                .arg(millis(item.window));
        }
        let _: i64 = inv.invoke_async(&mut conn).await.map_err(failed)?;
        Ok(())
    }

    pub async fn read(&self, keys: &[String]) -> Result<Vec<(u64, Option<Duration>)>, StoreError> {
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.get(self.key(k)).cmd("PTTL").arg(self.key(k));
        }
        let out: Vec<(Option<u64>, i64)> = pipe.query_async(&mut conn).await.map_err(failed)?;
        Ok(out
            .into_iter()
            .map(|(v, pttl)| {
                (
                    v.unwrap_or(0),
                    (pttl > 0).then(|| Duration::from_millis(pttl as u64)),
                )
            })
            .collect())
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
