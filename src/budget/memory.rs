//! The in-process store: for one replica (the local gateway, tests). A map
//! of counters with their window's end, swept of ended windows as it
//! grows; at most `max` live buckets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::store::{CheckItem, DebitItem, Standing, StoreError};

#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max: usize,
}

#[derive(Debug, Default)]
struct Inner {
    counters: HashMap<String, (u64, Instant)>,
    /// Operations since the last sweep.
    ops: usize,
}

impl Inner {
    /// The live counter of `key` (an ended window reads as none).
    fn get(&self, key: &str, now: Instant) -> Option<(u64, Instant)> {
        self.counters
            .get(key)
            .copied()
            .filter(|(_, end)| *end > now)
    }

    fn sweep(&mut self, now: Instant) {
        self.counters.retain(|_, (_, end)| *end > now);
        self.ops = 0;
    }

    /// Adds `amount` to `key`, opening its window if it has none.
    fn add(
        &mut self,
        key: &str,
        amount: u64,
        window: Duration,
        now: Instant,
        max: usize,
    ) -> Result<u64, StoreError> {
        self.ops += 1;
        if self.ops >= 4096 {
            self.sweep(now);
        }
        match self.counters.get_mut(key) {
            Some((v, end)) if *end > now => {
                *v = v.saturating_add(amount);
                Ok(*v)
            }
            _ => {
                if self.counters.len() >= max {
                    self.sweep(now);
                    if self.counters.len() >= max {
                        return Err(StoreError::Full);
                    }
                }
                self.counters.insert(key.to_owned(), (amount, now + window));
                Ok(amount)
            }
        }
    }
}

impl MemoryStore {
    pub fn new(max: usize) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn check(&self, items: &[CheckItem]) -> Result<Standing, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(items.len());
        let mut exhausted = None;
        for (i, item) in items.iter().enumerate() {
            let (used, left) = match inner.get(&item.key, now) {
                Some((v, end)) => (v, end - now),
                None => (0, item.window),
            };
            // A request needs room for one more; an amount is spent when
            // its cap is reached.
            if used >= item.cap && exhausted.is_none() {
                exhausted = Some(i);
            }
            out.push((used, left));
        }
        if exhausted.is_none() {
            for (i, item) in items.iter().enumerate().filter(|(_, it)| it.reserve) {
                let used = inner.add(&item.key, 1, item.window, now, self.max)?;
                let left = inner
                    .get(&item.key, now)
                    .map_or(item.window, |(_, end)| end - now);
                out[i] = (used, left);
            }
        }
        Ok(Standing {
            items: out,
            exhausted,
        })
    }

    pub fn debit(&self, items: &[DebitItem]) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock();
        for item in items.iter().filter(|i| i.amount > 0) {
            inner.add(&item.key, item.amount, item.window, now, self.max)?;
        }
        Ok(())
    }

    pub fn read(&self, keys: &[String]) -> Vec<(u64, Option<Duration>)> {
        let now = Instant::now();
        let inner = self.lock();
        keys.iter()
            .map(|k| match inner.get(k, now) {
                Some((v, end)) => (v, Some(end - now)),
                None => (0, None),
            })
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().counters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, cap: u64, window_ms: u64) -> CheckItem {
        CheckItem {
            key: key.into(),
            cap,
            window: Duration::from_millis(window_ms),
            reserve: true,
        }
    }

    #[test]
    fn requests_are_reserved_up_to_the_cap_then_the_window_resets() {
        let s = MemoryStore::new(10);
        for n in 1..=3 {
            let st = s.check(&[req("r:a", 3, 200)]).unwrap();
            assert_eq!(st.exhausted, None);
            assert_eq!(st.items[0].0, n);
        }
        let st = s.check(&[req("r:a", 3, 200)]).unwrap();
        assert_eq!(st.exhausted, Some(0));
        assert_eq!(st.items[0].0, 3, "a refused request reserves nothing");
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(s.check(&[req("r:a", 3, 200)]).unwrap().exhausted, None);
    }

    #[test]
    fn an_exhausted_amount_reserves_no_request() {
        let s = MemoryStore::new(10);
        let tokens = CheckItem {
            key: "t:a".into(),
            cap: 100,
            window: Duration::from_secs(60),
            reserve: false,
        };
        s.debit(&[DebitItem {
            key: "t:a".into(),
            amount: 100,
            window: Duration::from_secs(60),
        }])
        .unwrap();
        let st = s.check(&[req("r:a", 5, 60_000), tokens]).unwrap();
        assert_eq!(st.exhausted, Some(1));
        assert_eq!(st.items[0].0, 0, "the request cap was not reserved");
        assert_eq!(st.items[1].0, 100);
    }

    #[test]
    fn the_store_is_bounded_and_swept() {
        let s = MemoryStore::new(3);
        for k in ["a", "b", "c"] {
            s.check(&[req(k, 9, 30)]).unwrap();
        }
        assert_eq!(s.check(&[req("d", 9, 30)]), Err(StoreError::Full));
        std::thread::sleep(Duration::from_millis(40));
        s.check(&[req("d", 9, 30)]).unwrap();
        assert_eq!(s.len(), 1, "ended windows were swept");
    }
}
