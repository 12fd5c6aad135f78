//! stackbill's storage adapters.
//!
//! [`Store`] is the one handle the API and the CLI use: async methods over plain core
//! types, each a single transaction. Behind it is either the embedded SQLite file (WAL,
//! `synchronous=FULL`, one writer) or a PostgreSQL server shared by several stackbill
//! processes; each operation is written once over [`db`]'s common SQL surface, and only
//! the usage write path differs (row by row in SQLite, set-based with `COPY` in
//! PostgreSQL). Registration changes load their facts and run the core's rule checks
//! inside the same write transaction, so a rule is never checked against one state and
//! applied to another.

mod backend;
mod billing;
mod check;
mod clock;
mod collector;
mod copy;
mod db;
mod directory;
mod error;
mod finals;
mod migrate;
mod numeric;
mod outbox;
mod profiles;
mod rejections;
mod secrets;
mod store;
mod tokens;
mod usage;
mod usage_events;
mod values;

pub use billing::{CostOwner, Invoice, InvoiceDiff, InvoiceStatus, MarginRow};
pub use clock::SystemClock;
pub use collector::{
    CaSource, ClientCredential, CollectedHour, CollectorConfig, CollectorState, HeldRow,
    InvalidSetting, Subscriber,
};
pub use copy::{CopyProgress, TableCopy};
pub use directory::{AzureRegistration, CustomerSubscription, Written};
pub use error::{StorageFault, StoreError};
pub use outbox::{AttemptOutcome, Delivery, DueDelivery, WebhookEndpoint, random_id};
pub use rejections::RejectionCount;
pub use secrets::{SecretError, SecretKeyring};
pub use stackbill_core::BillingError;
pub use store::Store;
pub use tokens::{NewToken, Role, TokenGrant, TokenRecord};
pub use usage::{Disposition, ReportedUsage, UsageAggregate, UsageScope};
