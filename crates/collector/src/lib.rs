//! The collector (SPEC §10): pulls a stack's usage from its admin API, hour by reported hour
//! and subscriber by subscriber, into the store exactly once; and `simulate-stack`, a
//! deterministic stack that serves the same API for demos and tests.
//!
//! `wire` reads the stack's answers and turns rows into records (no IO); `client` speaks
//! HTTP to a stack (discovery, tokens, retries, paging); `collect` drives a collection and
//! commits each hour's records with its cursor, into the store or (`forward`) to a server
//! over HTTP with a local state file; `simulator` is the simulated stack.

pub mod client;
pub mod collect;
pub mod forward;
pub mod simulator;
pub mod wire;
