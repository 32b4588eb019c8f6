//! Prices: USD per million tokens by model glob, and the cost of one
//! response's usage in nano-USD (10⁻⁹ USD, an integer the store adds).
//!
//! The longest matching glob wins, the policy's rows before the default
//! table's. A model no row matches is charged at the most expensive row
//! (the strict side), and logged; give a `"*"` row to choose otherwise.

use std::collections::BTreeMap;

use globset::{Glob, GlobBuilder, GlobSet};

use crate::policy::config::PriceSpec;
use crate::provider::Usage;

/// USD per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

impl Price {
    /// The cost of `usage`, in nano-USD: tokens × USD per million × 1000,
    /// rounded to the nearest nano-USD.
    pub fn cost_nanos(&self, usage: &Usage) -> u64 {
        let part = |n: Option<u64>, usd_per_m: f64| n.unwrap_or(0) as f64 * usd_per_m * 1000.0;
        let total = part(usage.input, self.input)
            + part(usage.output, self.output)
            + part(usage.cache_read, self.cache_read)
            + part(usage.cache_creation, self.cache_write);
        total.round() as u64
    }

    fn highest(&self) -> f64 {
        self.input
            .max(self.output)
            .max(self.cache_read)
            .max(self.cache_write)
    }
}

/// The table shipped: list prices (USD per million tokens) of the
/// Anthropic and OpenAI models, as published; `cacheWrite` is the 5-minute
/// cache write.
pub const DEFAULT_PRICES: &[(&str, Price)] = &[
    ("claude-opus-4-5*", p(5.0, 25.0, 0.50, 6.25)),
    ("claude-opus-4*", p(15.0, 75.0, 1.50, 18.75)),
    ("claude-3-opus*", p(15.0, 75.0, 1.50, 18.75)),
    ("claude-sonnet-*", p(3.0, 15.0, 0.30, 3.75)),
    ("claude-3-7-sonnet*", p(3.0, 15.0, 0.30, 3.75)),
    ("claude-3-5-sonnet*", p(3.0, 15.0, 0.30, 3.75)),
    ("claude-haiku-4*", p(1.0, 5.0, 0.10, 1.25)),
    ("claude-3-5-haiku*", p(0.80, 4.0, 0.08, 1.0)),
    ("claude-3-haiku*", p(0.25, 1.25, 0.03, 0.30)),
    ("gpt-5*", p(1.25, 10.0, 0.125, 1.25)),
    ("gpt-5-mini*", p(0.25, 2.0, 0.025, 0.25)),
    ("gpt-4.1*", p(2.0, 8.0, 0.50, 2.0)),
    ("gpt-4.1-mini*", p(0.40, 1.60, 0.10, 0.40)),
    ("gpt-4o*", p(2.5, 10.0, 1.25, 2.5)),
    ("gpt-4o-mini*", p(0.15, 0.60, 0.075, 0.15)),
    ("o3*", p(2.0, 8.0, 0.50, 2.0)),
    ("o4-mini*", p(1.10, 4.40, 0.275, 1.10)),
];

const fn p(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Price {
    Price {
        input,
        output,
        cache_read,
        cache_write,
    }
}

/// Rows in the order they are tried, and one matcher for all of them:
/// a `GlobSet` tells every row that matches in one pass (its globs are
/// mostly literal prefixes, matched without a regex), where trying each
/// row's own matcher in turn ran up to ~30 regexes per response (3.8 % of
/// promptgate's CPU with budgets under load, `perf`).
#[derive(Debug, Clone)]
pub struct PriceTable {
    rows: Vec<(String, Price)>,
    set: GlobSet,
}

fn glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map_err(|e| format!("`{pattern}` is not a glob: {e}"))
}

impl PriceTable {
    /// The policy's rows (longest glob first), then the default table's.
    pub fn with_overrides(
        prices: &BTreeMap<String, PriceSpec>,
    ) -> Result<PriceTable, (String, String)> {
        let mut own: Vec<(String, Glob, Price)> = Vec::new();
        for (pattern, spec) in prices {
            let err = |m: String| (pattern.clone(), m);
            for (field, v) in [
                ("input", Some(spec.input)),
                ("output", Some(spec.output)),
                ("cacheRead", spec.cache_read),
                ("cacheWrite", spec.cache_write),
            ] {
                if let Some(v) = v {
                    if !v.is_finite() || !(0.0..=1e6).contains(&v) {
                        return Err(err(format!(
                            "{field}: {v} is not a price in USD per million tokens"
                        )));
                    }
                }
            }
            own.push((
                pattern.clone(),
                glob(pattern).map_err(err)?,
                Price {
                    input: spec.input,
                    output: spec.output,
                    cache_read: spec.cache_read.unwrap_or(spec.input),
                    cache_write: spec.cache_write.unwrap_or(spec.input),
                },
            ));
        }
        let mut defaults: Vec<(String, Glob, Price)> = DEFAULT_PRICES
            .iter()
            .map(|(g, price)| {
                (
                    (*g).to_owned(),
                    glob(g).expect("default globs compile"),
                    *price,
                )
            })
            .collect();
        own.sort_by_key(|(g, _, _)| std::cmp::Reverse(g.len()));
        defaults.sort_by_key(|(g, _, _)| std::cmp::Reverse(g.len()));
        own.extend(defaults);
        let mut set = globset::GlobSetBuilder::new();
        for (_, g, _) in &own {
            set.add(g.clone());
        }
        let set = set.build().map_err(|e| {
            (
                String::new(),
                format!("the price globs do not compile: {e}"),
            )
        })?;
        let rows = own.into_iter().map(|(p, _, price)| (p, price)).collect();
        Ok(PriceTable { rows, set })
    }

    /// The price of `model`: the first row that matches, else the most
    /// expensive row.
    pub fn price(&self, model: Option<&str>) -> Price {
        if let Some(m) = model {
            // Matches come in ascending order: the first is the row tried first.
            if let Some(&first) = self.set.matches(m).first() {
                return self.rows[first].1;
            }
        }
        if first_unpriced(model) {
            tracing::warn!(
                model,
                "no price for this model: charged at the most expensive row (said once per model)"
            );
        } else {
            tracing::debug!(
                model,
                "no price for this model: charged at the most expensive row"
            );
        }
        self.rows
            .iter()
            .map(|(_, p)| *p)
            .max_by(|a, b| a.highest().total_cmp(&b.highest()))
            .expect("the default table has rows")
    }
}

/// Whether `model` is met unpriced for the first time (at most
/// [`MAX_UNPRICED`] names are remembered; past them every one counts as
/// seen): the warning is then said once per model, not once per request.
fn first_unpriced(model: Option<&str>) -> bool {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let Ok(mut seen) = SEEN.lock() else {
        return false;
    };
    let name = model.unwrap_or("");
    if seen.contains(name) || seen.len() >= MAX_UNPRICED {
        return false;
    }
    seen.insert(name.to_owned());
    true
}

/// How many unpriced model names are remembered.
const MAX_UNPRICED: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_glob_wins_and_policy_rows_come_first() {
        let t = PriceTable::with_overrides(&BTreeMap::new()).unwrap();
        assert_eq!(t.price(Some("claude-opus-4-5-20251101")).input, 5.0);
        assert_eq!(t.price(Some("claude-opus-4-1-20250805")).input, 15.0);
        assert_eq!(t.price(Some("gpt-4o-mini-2024-07-18")).input, 0.15);
        assert_eq!(t.price(Some("gpt-4o-2024-08-06")).input, 2.5);
        // Globs ignore case, as model names are matched.
        assert_eq!(t.price(Some("Claude-Opus-4-5-20251101")).input, 5.0);
        assert_eq!(t.price(Some("GPT-4O-MINI")).input, 0.15);
        // Unknown: the most expensive row.
        assert_eq!(t.price(Some("mystery-1")).output, 75.0);
        let mut own = BTreeMap::new();
        own.insert(
            "claude-sonnet-*".to_owned(),
            PriceSpec {
                input: 1.0,
                output: 2.0,
                cache_read: None,
                cache_write: Some(4.0),
            },
        );
        let t = PriceTable::with_overrides(&own).unwrap();
        let p = t.price(Some("claude-sonnet-4-5"));
        assert_eq!(
            (p.input, p.output, p.cache_read, p.cache_write),
            (1.0, 2.0, 1.0, 4.0)
        );
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let sonnet = p(3.0, 15.0, 0.30, 3.75);
        let usage = Usage {
            input: Some(1200),
            output: Some(800),
            cache_read: Some(50_000),
            cache_creation: Some(2000),
        };
        // 1200×3 + 800×15 + 50000×0.30 + 2000×3.75 = 3600 + 12000 + 15000 + 7500
        // = 38100 µUSD = 38_100_000 nano-USD.
        assert_eq!(sonnet.cost_nanos(&usage), 38_100_000);
        assert_eq!(sonnet.cost_nanos(&Usage::default()), 0);
    }
}
