//! stackbill's storage adapters.
//!
//! [`Store`] is the one handle the API and the CLI use: async methods over plain core
//! types, each a single transaction. Behind it the embedded SQLite file (WAL,
//! `synchronous=FULL`, one writer) runs on blocking threads. Registration changes load
//! their facts and run the core's rule checks inside the same write transaction, so a
//! rule is never checked against one state and applied to another.

mod billing;
mod clock;
mod directory;
mod error;
mod migrate;
mod sqlite;
mod tokens;
mod usage;

pub use billing::{BillingError, Invoice, InvoiceStatus};
pub use clock::SystemClock;
pub use directory::{AzureRegistration, CustomerSubscription, Written};
pub use error::StoreError;
pub use sqlite::Store;
pub use tokens::{NewToken, Role, TokenGrant, TokenRecord};
pub use usage::{Disposition, UsageAggregate, UsageScope};
