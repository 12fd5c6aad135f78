//! stackbill's HTTP API: the axum router for the native `/v1` API, the ARM error envelope,
//! request extraction and authentication. It knows HTTP and JSON, never SQL: every call
//! goes through the store's typed methods.

pub mod access;
mod app;
pub mod auth;
pub mod azure;
pub mod billing;
mod collector_health;
mod collectors;
pub mod commerce;
pub mod diff;
pub mod documents;
pub mod dto;
pub mod error;
pub mod extract;
pub mod margin;
mod names;
pub mod openapi;
mod page;
pub mod profiles;
pub mod ratecards;
pub mod reconciliation;
mod registrations;
mod routes;
mod state;
pub mod telemetry;
pub mod tokens;
pub mod usage;
mod usage_pages;
pub mod webhook_delivery;
pub mod webhooks;

pub use access::Caller;
pub use app::{MAX_HEADER_BYTES, MAX_URI_BYTES, router, router_with};
pub use auth::hash_secret;
pub use error::{ApiError, ErrorCode};
pub use state::{AppState, AuthConfig};
pub use usage_pages::UsagePages;
