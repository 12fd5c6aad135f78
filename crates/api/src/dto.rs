//! The native API's wire shapes (SPEC §8): camelCase, GUIDs lowercase, decimals as strings,
//! instants RFC 3339 UTC. Request bodies refuse unknown fields, so a misspelt
//! `effectiveFrom` is an error instead of a silent "now".

use serde::{Deserialize, Serialize};
use stackbill_core::{MappingEvent, Meter, Partner, Registration, Subscription};
use stackbill_store::{CaSource, ClientCredential, CustomerSubscription};

/// Body of `PUT /v1/partners/{partnerId}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerBody {
    /// Must match the path when given.
    pub partner_id: Option<String>,
    /// Display name.
    pub name: String,
}

/// A partner.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerDto {
    partner_id: String,
    name: String,
}

impl From<Partner> for PartnerDto {
    fn from(partner: Partner) -> Self {
        Self {
            partner_id: partner.id.to_string(),
            name: partner.name,
        }
    }
}

/// Body of `PUT /v1/subscriptions/{subscriptionId}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionBody {
    /// Must match the path when given.
    pub subscription_id: Option<String>,
    /// `CSP`, `CSPSS`, `EA` or `PAYG`.
    pub offer_type: String,
    /// Who a CSP or CSPSS subscription rolls up to.
    pub partner_id: Option<String>,
    /// A CSP subscription's customer directory.
    pub customer_tenant_id: Option<String>,
    /// A human name.
    pub display_name: Option<String>,
    /// The rate card (default `default`).
    pub rate_card: Option<String>,
    /// Markup in percent, a decimal string or number (default 0).
    #[schema(value_type = Option<String>)]
    pub markup_percent: Option<serde_json::Value>,
    /// The first period (`YYYY-MM`) a change of `rateCard` or `markupPercent` applies to;
    /// default: the current period. Final invoices never change: re-pricing a final period
    /// is a `Repricing` adjustment on the next open one.
    pub pricing_from: Option<String>,
}

/// A billing subscription.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDto {
    subscription_id: String,
    offer_type: &'static str,
    partner_id: Option<String>,
    customer_tenant_id: Option<String>,
    display_name: String,
    rate_card: String,
    markup_percent: String,
}

impl From<Subscription> for SubscriptionDto {
    fn from(s: Subscription) -> Self {
        Self {
            subscription_id: s.id.to_string(),
            offer_type: s.offer_type.as_str(),
            partner_id: s.partner_id.map(|p| p.to_string()),
            customer_tenant_id: s.customer_tenant_id.map(|t| t.to_string()),
            display_name: s.display_name,
            rate_card: s.rate_card.to_string(),
            markup_percent: s.markup_percent.normalize().to_string(),
        }
    }
}

/// Body of `PUT /v1/registrations/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationBody {
    /// Must match the path when given.
    pub name: Option<String>,
    /// The stack.
    pub cloud_id: String,
    /// The default subscription.
    pub subscription_id: String,
    /// `PayAsYouUse` (default), `Capacity` or `Development`.
    pub billing_model: Option<String>,
}

/// A registration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationDto {
    name: String,
    cloud_id: String,
    subscription_id: String,
    billing_model: &'static str,
}

impl From<Registration> for RegistrationDto {
    fn from(r: Registration) -> Self {
        Self {
            name: r.name.to_string(),
            cloud_id: r.cloud_id.to_string(),
            subscription_id: r.default_subscription.to_string(),
            billing_model: r.billing_model.as_str(),
        }
    }
}

/// Body of `PUT /v1/registrations/{name}/customerSubscriptions/{subscriptionId}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerSubscriptionBody {
    /// The tenant (directory) to map.
    pub tenant_id: String,
    /// From when (default: now); may be in the past or the future.
    pub effective_from: Option<String>,
}

/// A tenant mapping in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerSubscriptionDto {
    registration: String,
    subscription_id: String,
    tenant_id: String,
    effective_from: String,
    recorded_at: String,
}

impl From<CustomerSubscription> for CustomerSubscriptionDto {
    fn from(c: CustomerSubscription) -> Self {
        Self {
            registration: c.registration.to_string(),
            subscription_id: c.subscription.to_string(),
            tenant_id: c.tenant_id.to_string(),
            effective_from: c.effective_from.to_string(),
            recorded_at: c.recorded_at.to_string(),
        }
    }
}

/// One change in a registration's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItemDto {
    tenant_id: String,
    subscription_id: Option<String>,
    effective_from: String,
    recorded_at: String,
}

impl From<MappingEvent> for HistoryItemDto {
    fn from(e: MappingEvent) -> Self {
        Self {
            tenant_id: e.tenant_id.to_string(),
            subscription_id: e.subscription.map(|s| s.to_string()),
            effective_from: e.effective_from.to_string(),
            recorded_at: e.recorded_at.to_string(),
        }
    }
}

/// Body of `PUT /v1/meters/{meterId}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterBody {
    /// Must match the path when given.
    pub meter_id: Option<String>,
    /// Display name.
    pub name: String,
    /// What one unit is.
    pub unit: String,
    /// The service it belongs to.
    pub category: String,
}

/// A meter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeterDto {
    meter_id: String,
    name: String,
    unit: String,
    category: String,
}

impl From<Meter> for MeterDto {
    fn from(m: Meter) -> Self {
        Self {
            meter_id: m.id.to_string(),
            name: m.name,
            unit: m.unit,
            category: m.category,
        }
    }
}

/// A page of a list: `{"value":[...],"nextLink"?}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListDto<T> {
    /// The items of this page.
    pub value: Vec<T>,
    /// Where the next page is, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// The last failure of a collector.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectorErrorDto {
    at: String,
    code: String,
    message: String,
}

/// A registration's collector (SPEC §10): its settings (a secret is never shown: only how it
/// is given, and the path of the file holding it when it is one), the last success and
/// error, how far it got and how far behind it is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectorDto {
    registration: String,
    admin_endpoint: String,
    provider_subscription: String,
    client_id: String,
    /// The Entra ID directory, `adfs`, or empty (found from the stack).
    directory: String,
    /// How the service principal signs in: `clientSecret` or `clientCertificate` (stored
    /// sealed with the server's key), `clientSecretFile` or `clientCertificateFile` (a file on
    /// the server).
    credential: &'static str,
    client_secret_file: Option<String>,
    client_certificate_file: Option<String>,
    ca_file: Option<String>,
    /// Whether CAs were given as PEM text.
    ca_certificates: bool,
    start: String,
    created_at: String,
    last_success: Option<String>,
    last_error: Option<CollectorErrorDto>,
    /// The end of the last reported hour every known subscriber has been collected through.
    collected_through: Option<String>,
    /// Closed reported hours not collected yet for the subscriber furthest behind.
    lag_hours: Option<i64>,
    subscribers: usize,
    held_rows: usize,
}

impl CollectorDto {
    /// The collector as it stands at `now`.
    pub fn new(state: stackbill_store::CollectorState, now: jiff::Timestamp) -> Self {
        let through = state.collected_through.map(|hour| hour + 1);
        let lag_hours = state.lag_hours(now);
        let config = state.config;
        Self {
            registration: config.registration.to_string(),
            admin_endpoint: config.admin_endpoint,
            provider_subscription: config.provider_subscription.to_string(),
            client_id: config.client_id,
            directory: config.directory,
            credential: config.credential.kind(),
            client_secret_file: match &config.credential {
                ClientCredential::SecretFile(path) => Some(path.clone()),
                _ => None,
            },
            client_certificate_file: match &config.credential {
                ClientCredential::CertificateFile(path) => Some(path.clone()),
                _ => None,
            },
            ca_file: match &config.ca {
                Some(CaSource::File(path)) => Some(path.clone()),
                _ => None,
            },
            ca_certificates: matches!(config.ca, Some(CaSource::Pem(_))),
            start: config.start.to_string(),
            created_at: state.created_at.to_string(),
            last_success: state.last_success.map(|t| t.to_string()),
            last_error: state
                .last_error
                .map(|(at, code, message)| CollectorErrorDto {
                    at: at.to_string(),
                    code,
                    message,
                }),
            collected_through: through
                .and_then(|hour| stackbill_core::period::hour_start(hour).ok())
                .map(|t| t.to_string()),
            lag_hours,
            subscribers: state.subscribers,
            held_rows: state.held,
        }
    }
}

/// Body of `PUT /v1/registrations/{name}/collector`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectorBody {
    /// `https://adminmanagement.{region}.{fqdn}` (`http://` for simulators).
    pub admin_endpoint: String,
    /// The stack's Default Provider Subscription.
    pub provider_subscription: String,
    /// The service principal's client id.
    pub client_id: String,
    /// The client secret: stored sealed with the server's key, never shown again.
    pub client_secret: Option<String>,
    /// Instead of a secret: PEM text of the client certificate and its PKCS#8 RSA key,
    /// stored sealed.
    pub client_certificate: Option<String>,
    /// Instead (admin only): a file on the server holding the client secret, read at each
    /// collection.
    pub client_secret_file: Option<String>,
    /// Instead (admin only): a PEM file on the server holding the client certificate and its
    /// PKCS#8 RSA key.
    pub client_certificate_file: Option<String>,
    /// The Entra ID directory (tenant) id, or `adfs`; found from the stack when omitted and
    /// it signs in with AD FS.
    pub directory: Option<String>,
    /// A PEM file on the server of CAs to trust for the stack (admin only).
    pub ca_file: Option<String>,
    /// Instead: PEM text of CAs to trust for the stack.
    pub ca_certificates: Option<String>,
    /// The first reported hour to collect (default: the current hour).
    pub start: Option<String>,
}

impl std::fmt::Debug for CollectorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorBody")
            .field("admin_endpoint", &self.admin_endpoint)
            .field("provider_subscription", &self.provider_subscription)
            .field("client_id", &self.client_id)
            .field("directory", &self.directory)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}
