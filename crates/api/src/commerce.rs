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
use serde_json::{Map, Number, Value, json};
use stackbill_core::period::{hour_number, hour_start};
use stackbill_core::{MeterId, SubscriptionId};

use crate::access::{Caller, check_subscription};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::extract::QueryParams;

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

fn decimal_number(value: Decimal) -> Value {
    let text = value.normalize().to_string();
    text.parse::<Number>()
        .map_or(Value::String(text), Value::Number)
}

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
    let skip: usize = match parameter(query, "continuationToken") {
        Some(token) => token.parse().map_err(|_| {
            invalid_property(
                "continuationToken",
                "continuationToken is not one this server issued",
            )
        })?,
        None => 0,
    };

    let records = state
        .store
        .records_reported_between(subscription, start, end)
        .await?;
    let mut lines: BTreeMap<(i64, MeterId, Option<String>), Decimal> = BTreeMap::new();
    for record in records {
        let hour = hour_number(record.usage_start);
        let bucket = hour - hour.rem_euclid(bucket_hours);
        let instance = if details { record.instance_data } else { None };
        *lines
            .entry((bucket, record.meter_id, instance))
            .or_insert(Decimal::ZERO) += record.quantity.value();
    }
    let meters = state.store.meters_by_id().await?;
    let total = lines.len();
    let mut value = Vec::new();
    for (index, ((bucket, meter_id, instance), quantity)) in lines
        .into_iter()
        .enumerate()
        .skip(skip)
        .take(USAGE_PAGE_ITEMS)
    {
        let from = hour_start(bucket).unwrap_or(Timestamp::UNIX_EPOCH);
        let to = from + SignedDuration::from_hours(bucket_hours);
        let id_name = format!("{name}_{meter_id}_{}_{index}", from.strftime("%Y%m%d_%H%M"));
        let meter = meters.get(&meter_id);
        let mut properties = Map::new();
        properties.insert("subscriptionId".into(), json!(subscription.to_string()));
        properties.insert("meterId".into(), json!(meter_id.to_string()));
        properties.insert("usageStartTime".into(), json!(from.to_string()));
        properties.insert("usageEndTime".into(), json!(to.to_string()));
        properties.insert("quantity".into(), decimal_number(quantity));
        properties.insert(
            "unit".into(),
            json!(meter.map(|m| m.unit.clone()).unwrap_or_default()),
        );
        properties.insert(
            "meterName".into(),
            json!(meter.map(|m| m.name.clone()).unwrap_or_default()),
        );
        properties.insert(
            "meterCategory".into(),
            json!(meter.map(|m| m.category.clone()).unwrap_or_default()),
        );
        properties.insert("meterRegion".into(), json!("Azure Stack"));
        if let Some(instance) = instance {
            // Azure's form: a JSON string holding {"Microsoft.Resources": {...}}.
            let inner: Value = serde_json::from_str(&instance).unwrap_or(Value::Null);
            properties.insert(
                "instanceData".into(),
                json!(json!({"Microsoft.Resources": inner}).to_string()),
            );
        }
        value.push(json!({
            "id": format!(
                "/subscriptions/{subscription}/providers/Microsoft.Commerce/\
                 UsageAggregates/{id_name}"
            ),
            "name": id_name,
            "type": "Microsoft.Commerce/UsageAggregate",
            "properties": Value::Object(properties),
        }));
    }
    let mut body = json!({ "value": value });
    let next = skip + USAGE_PAGE_ITEMS;
    if next < total {
        let query = query.next_page("continuationToken", next);
        body["nextLink"] = json!(format!("{}{path}?{query}", base_url(state, headers)));
    }
    Ok(Json(body).into_response())
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
    let card = state.store.rate_card(sub.rate_card.clone(), None).await?;
    let meters = state.store.meters_by_id().await?;
    let now = state.store.now();
    let factor = (Decimal::ONE_HUNDRED + sub.markup_percent) / Decimal::ONE_HUNDRED;
    let mut rows = Vec::new();
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
            let rates: Map<String, Value> = rate
                .tiers()
                .iter()
                .map(|t| {
                    (
                        t.from_quantity.normalize().to_string(),
                        decimal_number(t.unit_price * factor),
                    )
                })
                .collect();
            rows.push(json!({
                "MeterId": meter_id.to_string(),
                "MeterName": meter.map(|m| m.name.clone()).unwrap_or_default(),
                "MeterCategory": meter.map(|m| m.category.clone()).unwrap_or_default(),
                "MeterSubCategory": "",
                "Unit": meter.map(|m| m.unit.clone()).unwrap_or_default(),
                "MeterTags": [],
                "MeterRegion": "Azure Stack",
                "MeterRates": Value::Object(rates),
                "EffectiveDate": rate.effective_date.to_string(),
                "IncludedQuantity": decimal_number(rate.included_quantity),
            }));
        }
    }
    Ok(Json(json!({
        "Currency": currency,
        "Locale": fields.get("locale").cloned().unwrap_or_default(),
        "IsTaxIncluded": false,
        "OfferTerms": [],
        "Meters": rows,
    }))
    .into_response())
}
