//! The store's error type: domain refusals, bad stored data, and database failures.

use stackbill_core::directory::SubscriptionError;
use stackbill_core::{ErrorCode, PartnerId, RegistryError};

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
    Billing(#[from] stackbill_core::BillingError),
    /// A subscription names a partner that does not exist.
    #[error("partner '{0}' does not exist; create it first")]
    UnknownPartner(PartnerId),
    /// A subscription that does not exist.
    #[error("subscription {0} does not exist")]
    UnknownSubscription(stackbill_core::SubscriptionId),
    /// A rate card named that is not one the partner can use.
    #[error(
        "rate card '{0}' does not exist; create it first (a shared card, or the partner's own)"
    )]
    UnknownRateCard(stackbill_core::RateCardName),
    /// A billing profile's field breaks a rule.
    #[error(transparent)]
    InvalidProfile(#[from] stackbill_core::profile::InvalidProfile),
    /// A sum does not fit in 28 significant digits.
    #[error("arithmetic overflow: {0}")]
    Overflow(String),
    /// The database holds a value this version cannot read.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database was migrated by a newer stackbill, or a migration was altered.
    #[error("database schema mismatch: {0}")]
    Schema(String),
    /// The embedded database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The PostgreSQL server failed or could not be reached.
    #[error("PostgreSQL error: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No database connection could be had in time.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database location or its settings are invalid.
    #[error("{0}")]
    Config(String),
    /// The store's worker thread went away (shutdown or a panic).
    #[error("store worker failed: {0}")]
    Worker(String),
}

impl StoreError {
    /// A sum of usage quantities beyond 28 significant digits.
    pub(crate) fn usage_sum_overflow() -> Self {
        Self::Overflow("a usage sum exceeds 28 significant digits".to_owned())
    }

    /// The error code of a refusal (a rule, a field, a billing condition), or `None` for a
    /// failure of ours or of the database.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Rule(rule) => Some(rule.code()),
            Self::InvalidSubscription(invalid) => Some(invalid.code()),
            Self::Billing(billing) => Some(billing.code()),
            Self::UnknownPartner(_) => Some(ErrorCode::UnknownPartner),
            Self::UnknownSubscription(_) => Some(ErrorCode::SubscriptionNotFound),
            Self::UnknownRateCard(_) => Some(ErrorCode::RateCardNotFound),
            Self::InvalidProfile(invalid) => Some(invalid.code()),
            Self::Overflow(_) => Some(ErrorCode::AmountOverflow),
            _ => None,
        }
    }

    /// The request field a refusal is about, when it is about one.
    pub fn target(&self) -> Option<&'static str> {
        match self {
            Self::Rule(rule) => Some(rule.target()),
            Self::InvalidSubscription(invalid) => Some(invalid.target()),
            Self::Billing(billing) => billing.target(),
            Self::UnknownPartner(_) => Some("partnerId"),
            Self::UnknownSubscription(_) => Some("subscriptionId"),
            Self::UnknownRateCard(_) => Some("rateCard"),
            Self::InvalidProfile(invalid) => Some(invalid.field),
            _ => None,
        }
    }

    /// A storage fault behind the failure, if it is one: the disk is full or the database
    /// cannot be written. Both may pass (space freed, the file made writable again).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            Self::Database(error) => match error.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DiskFull) => Some(StorageFault::Full),
                Some(rusqlite::ErrorCode::ReadOnly) => Some(StorageFault::ReadOnly),
                _ => None,
            },
            Self::Postgres(error) => match error.code().map(|code| code.code()) {
                Some("53100") => Some(StorageFault::Full),
                Some("25006") => Some(StorageFault::ReadOnly),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the failure is passing (the database is busy or unreachable), so that the
    /// same call may succeed if retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            Self::Postgres(error) => match error.code() {
                // No SQL state: the connection broke or could not be made.
                None => true,
                // Connection exceptions, resource shortages, an operator or crash shutdown,
                // the write lock not had in time, a session ended for idling in a transaction.
                Some(code) => {
                    let code = code.code();
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code == "55P03"
                        || code == "25P03"
                }
            },
            Self::Unavailable(_) => true,
            _ => false,
        }
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

/// Why the database cannot take a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// The disk (or the server's storage) is full.
    Full,
    /// The database is read-only (file permissions, a read-only mount, a standby server).
    ReadOnly,
}

impl StorageFault {
    /// The error code.
    pub const fn code(self) -> ErrorCode {
        match self {
            Self::Full => ErrorCode::StorageFull,
            Self::ReadOnly => ErrorCode::DatabaseReadOnly,
        }
    }

    /// What `/healthz` says of the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read-only",
        }
    }
}

/// A PostgreSQL error with the server's message and detail, when it sent them.
fn postgres_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        // A connection failure: say why (refused, timed out, name not found...).
        None => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                message = format!("{message}: {cause}");
                source = cause.source();
            }
            message
        }
    }
}

/// The store's result type.
pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;
