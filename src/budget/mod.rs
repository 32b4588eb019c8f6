//! Budgets: token, spend and request limits per bucket (a person, a group,
//! a claim, ...), counted in a store every replica shares.
//!
//! * `limits` — `policies.ai.budgets` compiled ([`Budgets`], [`Limit`]).
//! * `price` — USD per million tokens by model glob, and a usage's cost.
//! * `store` — the [`Store`]: the atomic check (reserve a request, see
//!   whether an amount is spent) and debit; `memory` (one process) and
//!   `redis` (every replica; one Lua script per check and per debit).
//!
//! Windows are fixed and opened by a bucket's first use: one counter per
//! (limit, bucket) that expires with its window, so nothing outlives it.
//! The decision of what to check and what a standing means is
//! `decision::budget`'s; this module only counts.

mod limits;
mod memory;
mod price;
mod redis;
mod store;

pub use limits::{compile, parse_window, Budgets, Debit, Limit, LimitKind, OnStoreError};
pub use price::{Price, PriceTable, DEFAULT_PRICES};
pub use store::{
    store_for, CheckItem, DebitItem, Standing, Store, StoreError, StoreSpec, MEMORY_MAX_BUCKETS,
};
