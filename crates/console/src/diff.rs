//! `GET /invoices/{subscription}/{period}/diff?from=&to=`: how an invoice changed between two
//! instants and why, meter by meter, and the adjustments that changed: the API's explanation
//! (`stackbill_api::diff`), rendered for people.

#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use stackbill_api::AppState;
use stackbill_core::{Period, SubscriptionId};

use crate::frame::{Layout, error_page, refusal, render, signed_in, store_failure};

#[derive(Deserialize)]
pub(crate) struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

/// One meter's change.
pub(crate) struct MeterRow {
    meter: String,
    quantity: String,
    amount: String,
    why: String,
}

/// One adjustment's change.
pub(crate) struct AdjustmentRow {
    period: String,
    meter: String,
    reason: &'static str,
    quantity: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    layout: Layout,
    subscription: String,
    period: String,
    from: String,
    to: String,
    total_from: String,
    total_to: String,
    final_at_to: bool,
    meters: Vec<MeterRow>,
    adjustments: Vec<AdjustmentRow>,
}

fn named(name: &str, id: &str) -> String {
    if name.is_empty() {
        id.to_owned()
    } else {
        name.to_owned()
    }
}

/// The diff page; `from` defaults to the start of the month, `to` to now.
pub(crate) async fn diff(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((subscription, period)): Path<(String, String)>,
    Query(query): Query<DiffQuery>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let (Ok(id), Ok(month)) = (
        subscription.parse::<SubscriptionId>(),
        period.parse::<Period>(),
    ) else {
        return error_page(
            Some(&session),
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no invoice {subscription} {period}."),
        );
    };
    if let Err(error) =
        stackbill_api::access::check_subscription(&state.store, &session.caller, id).await
    {
        return refusal(&session, error);
    }
    let instant = |text: Option<&str>, default: jiff::Timestamp| match text
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => Ok(default),
        Some(text) => text.parse::<jiff::Timestamp>().map_err(|_| {
            error_page(
                Some(&session),
                StatusCode::BAD_REQUEST,
                "Cannot show this page",
                format!("'{text}' is not an instant: give e.g. 2025-06-01T00:00:00Z"),
            )
        }),
    };
    let (from, to) = match (
        instant(query.from.as_deref(), month.start()),
        instant(query.to.as_deref(), state.store.now()),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let failure = |error| store_failure(&session, error);
    let meters = match state.store.meters_by_id().await {
        Ok(meters) => meters,
        Err(error) => return failure(error),
    };
    let diff = match state.store.invoice_diff(id, month, from, to).await {
        Ok(diff) => stackbill_api::diff::invoice_diff_dto(diff, &meters),
        Err(error) => return failure(error),
    };
    let page = DiffPage {
        layout: Layout::new(Some(&session)),
        subscription: id.to_string(),
        period: month.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        total_from: diff.total_from.clone(),
        total_to: diff.total_to.clone(),
        final_at_to: diff.final_at_to,
        meters: diff
            .meters
            .iter()
            .map(|m| MeterRow {
                meter: named(&m.meter_name, &m.meter_id),
                quantity: format!("{} → {}", m.quantity_from, m.quantity_to),
                amount: format!("{} → {}", m.amount_from, m.amount_to),
                why: m.reasons(diff.final_at_from).join("; "),
            })
            .collect(),
        adjustments: diff
            .adjustments
            .iter()
            .map(|a| AdjustmentRow {
                period: a.period.clone(),
                meter: named(&a.meter_name, &a.meter_id),
                reason: a.reason,
                quantity: format!("{} → {}", a.quantity_from, a.quantity_to),
                amount: format!("{} → {}", a.amount_from, a.amount_to),
            })
            .collect(),
    };
    render(&page, StatusCode::OK)
}
