//! The store's error type: domain refusals, bad stored data, and database failures.

use stackbill_core::directory::SubscriptionError;
use stackbill_core::{PartnerId, RegistryError};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A registration rule refused the change.
    #[error(transparent)]
    Rule(#[from] RegistryError),
    /// A subscription's fields do not fit its offer type.
    #[error(transparent)]
    InvalidSubscription(#[from] SubscriptionError),
    /// Billing refused the call.
    #[error(transparent)]
    Billing(#[from] crate::billing::BillingError),
    /// A subscription names a partner that does not exist.
    #[error("partner '{0}' does not exist; create it first")]
    UnknownPartner(PartnerId),
    /// The database holds a value this version cannot read.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database was migrated by a newer stackbill, or a migration was altered.
    #[error("database schema mismatch: {0}")]
    Schema(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The store's worker thread went away (shutdown or a panic).
    #[error("store worker failed: {0}")]
    Worker(String),
}

impl StoreError {
    /// Whether the failure is passing (the database is busy or unreachable), so that the
    /// same call may succeed if retried.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database(error) if matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            )
        )
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

/// The store's result type.
pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;
