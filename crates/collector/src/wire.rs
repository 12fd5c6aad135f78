//! The stack's admin API answers, read as real stacks write them (SPEC §10,
//! `tests/fixtures/`), and turned into SPEC §3 records. No IO: the client hands bytes in.
//!
//! A usage row's `quantity` is read from its JSON text, never through a float; its
//! `instanceData` is a JSON string (whose `tags` and `additionalInfo` may be JSON strings
//! themselves, `""` or `"null"`), kept as the stack sent it once canonical. The record id is
//! derived from the reported hour and what makes a row unique inside one reported window, so
//! that re-collecting a window yields duplicates and the same usage hour reported in two
//! windows is two records.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use stackbill_core::usage::RawUsage;
use stackbill_core::{CloudId, SubscriptionId, TenantId};

/// Why an answer of the stack could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct WireError {
    what: &'static str,
    #[source]
    source: serde_json::Error,
}

fn read<'a, T: Deserialize<'a>>(what: &'static str, body: &'a [u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|source| WireError { what, source })
}

/// `GET {adminEndpoint}/metadata/endpoints?api-version=2015-01-01`: where to get a token,
/// and for which audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `authentication.loginEndpoint`, with a trailing `/`.
    pub login_endpoint: String,
    /// `authentication.audiences[0]`: the token's resource.
    pub audience: String,
}

impl Metadata {
    /// Reads the metadata answer.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Authentication {
            login_endpoint: String,
            audiences: Vec<String>,
        }
        #[derive(Deserialize)]
        struct Endpoints {
            authentication: Authentication,
        }
        let endpoints: Endpoints = read("the metadata endpoints", body)?;
        let mut login_endpoint = endpoints.authentication.login_endpoint;
        if !login_endpoint.ends_with('/') {
            login_endpoint.push('/');
        }
        let audience =
            (endpoints.authentication.audiences.into_iter().next()).ok_or_else(|| WireError {
                what: "the metadata endpoints",
                source: serde::de::Error::custom("authentication.audiences is empty"),
            })?;
        Ok(Self {
            login_endpoint,
            audience,
        })
    }
}

/// A client-credentials token answer (Entra ID v1 or AD FS): numbers arrive as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token.
    pub token: String,
    /// Seconds it lives from when it was issued.
    pub expires_in: u64,
}

impl AccessToken {
    /// Reads a token answer.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: Option<Box<RawValue>>,
        }
        let answer: Answer = read("the token answer", body)?;
        let expires_in = answer
            .expires_in
            .map(|raw| raw.get().trim_matches('"').parse::<u64>().unwrap_or(3599))
            .unwrap_or(3599);
        Ok(Self {
            token: answer.access_token,
            expires_in,
        })
    }
}

/// One of the stack's user subscriptions (`Microsoft.Subscriptions.Admin/subscriptions`:
/// flat objects, no `properties`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSubscription {
    /// The user subscription: the `subscriberId` of the usage API.
    pub subscription_id: SubscriptionId,
    /// Its directory: the tenant usage is routed by.
    pub tenant_id: TenantId,
    /// `Enabled`, `Disabled`, `Deleted`, …
    pub state: String,
    /// Its display name.
    pub display_name: String,
}

/// The user subscriptions answer; entries whose ids are not GUIDs (real stamps have some)
/// are left out and counted.
pub fn parse_subscriptions(body: &[u8]) -> Result<(Vec<UserSubscription>, usize), WireError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        subscription_id: String,
        tenant_id: Option<String>,
        #[serde(default)]
        state: String,
        #[serde(default)]
        display_name: String,
    }
    #[derive(Deserialize)]
    struct List {
        value: Vec<Entry>,
    }
    let list: List = read("the user subscriptions", body)?;
    let mut skipped = 0;
    let mut out = Vec::with_capacity(list.value.len());
    for entry in list.value {
        let ids = entry
            .subscription_id
            .parse()
            .ok()
            .zip((entry.tenant_id.as_deref()).and_then(|tenant| tenant.parse().ok()));
        match ids {
            Some((subscription_id, tenant_id)) => out.push(UserSubscription {
                subscription_id,
                tenant_id,
                state: entry.state,
                display_name: entry.display_name,
            }),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// One page of `subscriberUsageAggregates`.
#[derive(Debug)]
pub struct UsagePage {
    /// The rows.
    pub rows: Vec<UsageRow>,
    /// The next page's absolute URL, followed byte for byte; `None` when absent, null or
    /// empty.
    pub next_link: Option<String>,
}

/// One usage row, its fields as the stack wrote them (held rows are kept in this form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// The user subscription that emitted the usage.
    pub subscription_id: String,
    /// The meter, in whatever case the resource provider writes it.
    pub meter_id: String,
    /// `…+00:00`, a whole hour.
    pub usage_start_time: String,
    /// One hour after the start.
    pub usage_end_time: String,
    /// The decimal text of the JSON number (or string).
    pub quantity: String,
    /// The JSON string the stack sent, if any.
    pub instance_data: Option<String>,
}

impl UsagePage {
    /// Reads a page.
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Properties<'a> {
            subscription_id: String,
            meter_id: String,
            usage_start_time: String,
            usage_end_time: String,
            #[serde(borrow)]
            quantity: &'a RawValue,
            instance_data: Option<String>,
        }
        #[derive(Deserialize)]
        struct Row<'a> {
            #[serde(borrow)]
            properties: Properties<'a>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page<'a> {
            #[serde(borrow)]
            value: Vec<Row<'a>>,
            next_link: Option<String>,
        }
        let page: Page<'_> = read("the usage page", body)?;
        let rows = page
            .value
            .into_iter()
            .map(|row| {
                let p = row.properties;
                let quantity = p.quantity.get();
                // The spec before 1808 typed it as a string: accept both.
                let quantity = quantity
                    .strip_prefix('"')
                    .and_then(|q| q.strip_suffix('"'))
                    .unwrap_or(quantity);
                UsageRow {
                    subscription_id: p.subscription_id,
                    meter_id: p.meter_id,
                    usage_start_time: p.usage_start_time,
                    usage_end_time: p.usage_end_time,
                    quantity: quantity.to_owned(),
                    instance_data: p.instance_data,
                }
            })
            .collect();
        Ok(Self {
            rows,
            next_link: page.next_link.filter(|link| !link.is_empty()),
        })
    }
}

/// The record id of a row: `azs:{reported hour, yyyymmddhh}:{sha256 of (user subscription,
/// meter, resource URI, usage start), lower-cased}` (79 characters). It sorts by reported
/// hour.
pub fn record_id(reported_hour: Timestamp, row: &UsageRow, resource_uri: &str) -> String {
    let start = (row.usage_start_time.parse::<Timestamp>())
        .map_or_else(|_| row.usage_start_time.clone(), |t| t.to_string());
    let mut hash = Sha256::new();
    for (i, part) in [
        row.subscription_id.as_str(),
        row.meter_id.as_str(),
        resource_uri,
        start.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            hash.update(b"|");
        }
        hash.update(part.to_lowercase().as_bytes());
    }
    let digest = hash.finalize();
    let mut id = format!("azs:{}:", reported_hour.strftime("%Y%m%d%H"));
    for byte in digest {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// The resource URI in canonical instance data, `""` when there is none.
fn resource_uri(instance_data: Option<&str>) -> String {
    let Some(text) = instance_data else {
        return String::new();
    };
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| value.get("resourceUri")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What becomes of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collected {
    /// A record to validate and store, in SPEC §3's fields.
    Record(RawUsage),
    /// A row of a user subscription the stack has not listed (yet): held, not guessed.
    Held(UsageRow),
}

/// Turns a row reported in `[reported_hour, +1h)` into a record of `cloud`, its tenant
/// looked up in `tenants` (user subscription → directory).
pub fn collect_row(
    cloud: CloudId,
    reported_hour: Timestamp,
    tenants: &BTreeMap<SubscriptionId, TenantId>,
    row: UsageRow,
) -> Collected {
    let tenant = (row.subscription_id.parse::<SubscriptionId>().ok())
        .and_then(|subscription| tenants.get(&subscription));
    let Some(tenant) = tenant else {
        return Collected::Held(row);
    };
    // Canonical instance data; a malformed one is kept raw so validation names it.
    let instance_data = match row.instance_data.as_deref() {
        None => None,
        Some(text) => match serde_json::to_string(text)
            .ok()
            .and_then(|quoted| RawValue::from_string(quoted).ok())
            .map(|raw| stackbill_io::canonical::instance_data(&raw))
        {
            Some(Ok(canonical)) => canonical,
            _ => Some(text.to_owned()),
        },
    };
    let uri = resource_uri(instance_data.as_deref());
    let id = record_id(reported_hour, &row, &uri);
    Collected::Record(RawUsage {
        id: Some(id),
        cloud_id: Some(cloud.to_string()),
        tenant_id: Some(tenant.to_string()),
        subscription_id: Some(row.subscription_id),
        meter_id: Some(row.meter_id),
        quantity: Some(row.quantity),
        usage_start_time: Some(row.usage_start_time),
        usage_end_time: Some(row.usage_end_time),
        reported_time: Some(reported_hour.to_string()),
        instance_data,
    })
}
