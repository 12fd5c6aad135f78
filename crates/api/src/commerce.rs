//! The Azure-compatible Microsoft.Commerce API: `UsageAggregates` (the usage billed to a
//! subscription, selected by reported time) and `RateCard` (its prices with its markup), in
//! the shapes azure-mgmt-commerce reads.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::{Number, Value, json};
use stackbill_core::period::hour_start;
use stackbill_core::total::Total;
use stackbill_core::{MeterId, SubscriptionId};

use crate::access::{Caller, check_subscription};
use crate::error::{ApiError, ErrorCode};
use crate::extract::QueryParams;
use crate::state::AppState;
use crate::usage_pages::{Listing, Token};

/// The one api-version of Microsoft.Commerce.
pub const COMMERCE_API_VERSION: &str = "2015-06-01-preview";
/// Usage lines per page, as the Azure docs give it.
pub const USAGE_PAGE_ITEMS: usize = 1000;

fn invalid_property(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidProperty, message).with_target(name)
}

/// Reads an instant as Azure's clients send them: RFC 3339 with or without fractions, with `Z`
/// or an offset, a bare date, or `MM/dd/yyyy`.
fn lenient_instant(text: &str) -> Option<Timestamp> {
    if let Ok(instant) = text.parse::<Timestamp>() {
        return Some(instant);
    }
    if let Ok(date) = text.parse::<Date>() {
        return date.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
    }
    let mut parts = text.split('/');
    let (month, day, year) = (parts.next()?, parts.next()?, parts.next()?);
    let date = Date::new(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?).ok()?;
    date.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

fn required_instant(query: &QueryParams, name: &str) -> Result<Timestamp, ApiError> {
    let text = parameter(query, name)
        .ok_or_else(|| invalid_property(name, format!("{name} is required")))?;
    lenient_instant(text)
        .ok_or_else(|| invalid_property(name, format!("{name} '{text}' is not a date-time")))
}

fn parameter<'a>(query: &'a QueryParams, name: &str) -> Option<&'a str> {
    query
        .0
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// An exact decimal written as a JSON number with its digits as they are (no binary
/// float on the way), trailing zeros removed.
#[derive(Debug, Clone)]
struct JsonDecimal(String);

impl From<Decimal> for JsonDecimal {
    fn from(value: Decimal) -> Self {
        Self(value.normalize().to_string())
    }
}

impl From<Total> for JsonDecimal {
    fn from(value: Total) -> Self {
        Self(value.to_string())
    }
}

impl Serialize for JsonDecimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = &self.0;
        match text.parse::<Number>() {
            Ok(number) => number.serialize(serializer),
            Err(_) => serializer.serialize_str(text),
        }
    }
}

fn overflow(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AmountOverflow,
        format!("{what} does not fit in 28 significant digits"),
    )
}

/// A page of `UsageAggregates` (fields in the order Azure's answers have them sorted).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageAggregatesPage {
    #[serde(skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Vec<UsageAggregateDto>,
}

/// One meter's usage in one hour or day.
#[derive(Debug, Serialize)]
struct UsageAggregateDto {
    id: String,
    name: String,
    properties: UsageAggregateProperties,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageAggregateProperties {
    /// Azure's form: a JSON string holding `{"Microsoft.Resources": {...}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_data: Option<String>,
    meter_category: String,
    meter_id: String,
    meter_name: String,
    meter_region: &'static str,
    quantity: JsonDecimal,
    subscription_id: String,
    unit: String,
    usage_end_time: String,
    usage_start_time: String,
}

/// The answer of `RateCard`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RateCardDto {
    currency: String,
    is_tax_included: bool,
    locale: String,
    meters: Vec<RateCardMeterDto>,
    offer_terms: Vec<String>,
}

/// One meter of a `RateCard`: its tiers' prices with the subscription's markup.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RateCardMeterDto {
    effective_date: String,
    included_quantity: JsonDecimal,
    meter_category: String,
    meter_id: String,
    meter_name: String,
    /// Price per unit from each tier's first quantity on.
    meter_rates: BTreeMap<String, JsonDecimal>,
    meter_region: &'static str,
    meter_sub_category: String,
    meter_tags: Vec<String>,
    unit: String,
}

const METER_REGION: &str = "Azure Stack";

/// The externally visible base URL of this server.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// `GET /subscriptions/{sub}/providers/Microsoft.Commerce/UsageAggregates`.
pub(crate) async fn usage_aggregates(
    state: &AppState,
    caller: &Caller,
    subscription: SubscriptionId,
    path: &str,
    query: &QueryParams,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    query.api_version(&[COMMERCE_API_VERSION])?;
    check_subscription(&state.store, caller, subscription).await?;
    let start = required_instant(query, "reportedStartTime")?;
    let end = required_instant(query, "reportedEndTime")?;
    let granularity = parameter(query, "aggregationGranularity").unwrap_or("Daily");
    let (name, bucket_hours) = if granularity.eq_ignore_ascii_case("daily") {
        ("Daily", 24)
    } else if granularity.eq_ignore_ascii_case("hourly") {
        ("Hourly", 1)
    } else {
        return Err(ApiError::new(
            ErrorCode::InvalidAggregationGranularity,
            format!(
                "aggregationGranularity '{granularity}' is not valid; \
                 valid values are Daily and Hourly"
            ),
        )
        .with_target("aggregationGranularity"));
    };
    for (instant, field) in [(start, "reportedStartTime"), (end, "reportedEndTime")] {
        let aligned = instant.subsec_nanosecond() == 0
            && instant.as_second().rem_euclid(3600 * bucket_hours) == 0;
        if !aligned {
            let unit = if bucket_hours == 1 {
                "a whole hour"
            } else {
                "midnight UTC"
            };
            return Err(invalid_property(
                field,
                format!("{field} must be on {unit} for {name} granularity"),
            ));
        }
    }
    if end <= start {
        return Err(invalid_property(
            "reportedEndTime",
            "reportedEndTime must be after reportedStartTime",
        ));
    }
    if end > state.store.now() {
        return Err(ApiError::new(
            ErrorCode::RequestEndTimeIsInFuture,
            "reportedEndTime is in the future",
        )
        .with_target("reportedEndTime"));
    }
    let details = parameter(query, "showDetails").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let token = match parameter(query, "continuationToken") {
        Some(text) => Token::parse(text).ok_or_else(|| {
            invalid_property(
                "continuationToken",
                "continuationToken is not one this server issued",
            )
        })?,
        None => Token {
            listing: None,
            skip: 0,
        },
    };
    let listing = Listing {
        subscription,
        start,
        end,
        bucket_hours,
        details,
    };
    let kept = (token.listing).and_then(|id| Some((id, state.pages.get(id, &listing)?)));
    let (listing_id, lines) = match kept {
        Some((id, lines)) => (Some(id), lines),
        None => {
            let sums = state
                .store
                .reported_usage(subscription, start, end, bucket_hours, details)
                .await?;
            state.pages.keep(listing, sums)
        }
    };
    let skip = token.skip;
    let meters = state.store.meters_by_id().await?;
    let total = lines.len();
    let mut value = Vec::new();
    for (index, ((bucket, meter_id, instance), quantity)) in (lines.iter().cloned())
        .enumerate()
        .skip(skip)
        .take(USAGE_PAGE_ITEMS)
    {
        let from = hour_start(bucket).unwrap_or(Timestamp::UNIX_EPOCH);
        let to = from + SignedDuration::from_hours(bucket_hours);
        let id_name = format!("{name}_{meter_id}_{}_{index}", from.strftime("%Y%m%d_%H%M"));
        let meter = meters.get(&meter_id);
        let about = |field: fn(&stackbill_core::Meter) -> &String| {
            meter.map(|m| field(m).clone()).unwrap_or_default()
        };
        let instance_data = instance.map(|instance| {
            let inner: Value = serde_json::from_str(&instance).unwrap_or(Value::Null);
            json!({"Microsoft.Resources": inner}).to_string()
        });
        value.push(UsageAggregateDto {
            id: format!(
                "/subscriptions/{subscription}/providers/Microsoft.Commerce/\
                 UsageAggregates/{id_name}"
            ),
            name: id_name,
            properties: UsageAggregateProperties {
                instance_data,
                meter_category: about(|m| &m.category),
                meter_id: meter_id.to_string(),
                meter_name: about(|m| &m.name),
                meter_region: METER_REGION,
                quantity: quantity.into(),
                subscription_id: subscription.to_string(),
                unit: about(|m| &m.unit),
                usage_end_time: to.to_string(),
                usage_start_time: from.to_string(),
            },
            kind: "Microsoft.Commerce/UsageAggregate",
        });
    }
    let next = Token {
        listing: listing_id,
        skip: skip + USAGE_PAGE_ITEMS,
    };
    if next.skip >= total
        && let Some(id) = listing_id
    {
        state.pages.done(id);
    }
    let next_link = (next.skip < total).then(|| {
        let query = query.next_page("continuationToken", next);
        format!("{}{path}?{query}", base_url(state, headers))
    });
    Ok(Json(UsageAggregatesPage { next_link, value }).into_response())
}

/// `GET /subscriptions/{sub}/providers/Microsoft.Commerce/RateCard?$filter=...`: the
/// subscription's rate card, each meter's current price with the subscription's markup.
pub(crate) async fn rate_card(
    state: &AppState,
    caller: &Caller,
    subscription: SubscriptionId,
    query: &QueryParams,
) -> Result<Response, ApiError> {
    query.api_version(&[COMMERCE_API_VERSION])?;
    check_subscription(&state.store, caller, subscription).await?;
    let filter = parameter(query, "$filter")
        .ok_or_else(|| invalid_property("$filter", "$filter is required"))?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for clause in filter.split(" and ").flat_map(|c| c.split(" AND ")) {
        let Some((key, value)) = clause.split_once(" eq ") else {
            return Err(invalid_property(
                "$filter",
                format!("'{clause}' is not 'Field eq 'value''; only eq and and are supported"),
            ));
        };
        fields.insert(
            key.trim().to_ascii_lowercase(),
            value.trim().trim_matches('\'').to_owned(),
        );
    }
    for required in ["offerdurableid", "currency", "locale", "regioninfo"] {
        if !fields.contains_key(required) {
            return Err(invalid_property(
                "$filter",
                "OfferDurableId, Currency, Locale and RegionInfo are all required in $filter",
            ));
        }
    }
    let sub = state
        .store
        .subscription(subscription)
        .await?
        .ok_or_else(|| crate::access::subscription_not_found(subscription))?;
    let card = (state.store)
        .rate_card_for(sub.partner_id.clone(), sub.rate_card.clone(), None)
        .await?;
    let meters = state.store.meters_by_id().await?;
    let now = state.store.now();
    let factor = (Decimal::ONE_HUNDRED.checked_add(sub.markup_percent))
        .and_then(|percent| percent.checked_div(Decimal::ONE_HUNDRED))
        .ok_or_else(|| overflow("the markup"))?;
    let mut meters_out = Vec::new();
    let currency = card
        .as_ref()
        .map_or_else(|| "USD".to_owned(), |c| c.currency.to_string());
    if let Some(card) = &card {
        let mut ids: Vec<MeterId> = card.rates.iter().map(|r| r.meter_id).collect();
        ids.sort();
        ids.dedup();
        for meter_id in ids {
            let Some(rate) = card.rate_for(meter_id, now) else {
                continue;
            };
            let meter = meters.get(&meter_id);
            let about = |field: fn(&stackbill_core::Meter) -> &String| {
                meter.map(|m| field(m).clone()).unwrap_or_default()
            };
            let mut meter_rates = BTreeMap::new();
            for tier in rate.tiers() {
                let price = (tier.unit_price.checked_mul(factor))
                    .ok_or_else(|| overflow(&format!("the price of meter {meter_id}")))?;
                meter_rates.insert(tier.from_quantity.normalize().to_string(), price.into());
            }
            meters_out.push(RateCardMeterDto {
                effective_date: rate.effective_date.to_string(),
                included_quantity: rate.included_quantity.into(),
                meter_category: about(|m| &m.category),
                meter_id: meter_id.to_string(),
                meter_name: about(|m| &m.name),
                meter_rates,
                meter_region: METER_REGION,
                meter_sub_category: String::new(),
                meter_tags: Vec::new(),
                unit: about(|m| &m.unit),
            });
        }
    }
    Ok(Json(RateCardDto {
        currency,
        is_tax_included: false,
        locale: fields.get("locale").cloned().unwrap_or_default(),
        meters: meters_out,
        offer_terms: Vec::new(),
    })
    .into_response())
}
