//! stackbill's pure domain core.
//!
//! Identifiers, the directory (partners, subscriptions, registrations), the registration
//! rules, the effective-dated tenant mapping timeline, routing, and the meter catalog.
//! Nothing here does IO, reads a clock, or knows about SQL, HTTP or serialization: time and
//! state come in as arguments, so every rule is a plain function that tests call directly.

pub mod apportion;
pub mod billing;
pub mod clock;
pub mod currency;
pub mod directory;
pub mod error_code;
pub mod events;
pub mod ids;
pub mod ingest;
pub mod invoice;
pub mod margin;
pub mod meters;
pub mod period;
pub mod profile;
pub mod rating;
pub mod routing;
pub mod rules;
pub mod sum;
pub mod timeline;
pub mod total;
pub mod usage;

pub use billing::BillingError;
pub use clock::Clock;
pub use directory::{BillingModel, OfferType, Partner, Registration, Subscription};
pub use error_code::ErrorCode;
pub use ids::{
    CloudId, IdError, MeterId, PartnerId, RateCardName, RegistrationName, SubscriptionId, TenantId,
};
pub use ingest::{Disposition, IngestTally, Rejection};
pub use meters::Meter;
pub use period::Period;
pub use rating::{Currency, RateCard};
pub use rules::RegistryError;
pub use timeline::{MappingEvent, Timeline};
pub use usage::{Quantity, RecordId, UsageError, UsageErrorCode, UsageRecord};
