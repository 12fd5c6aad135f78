//! `GET /`: the month's overview (revenue, usage charts, tenants billed to a default
//! subscription, refused records, collectors), or a customer's registration status.
#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use std::collections::{BTreeMap, HashSet};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use stackbill_api::billing::InvoiceNames;
use stackbill_api::{ApiError, AppState, Caller};
use stackbill_core::{PartnerId, Period};
use stackbill_store::InvoiceStatus;

use crate::chart::DailyUsage;
use crate::frame::{
    Layout, PeriodQuery, period_of, refusal, render, scope, signed_in, store_failure,
};
use crate::session::Session;

use crate::invoices::{InvoiceRow, Total, rows, totals};

/// A tenant whose usage this month went to its stack's default subscription: the CSP's
/// most likely lost revenue, one click from being mapped.
pub(crate) struct UnmappedRow {
    registration: String,
    tenant: String,
    records: usize,
    amount: String,
}

/// At most this many unmapped tenants are listed, the busiest first.
const UNMAPPED_SHOWN: usize = 20;

/// The tenants billed to each visible registration's default subscription in `period`.
async fn unmapped_tenants(
    state: &AppState,
    scope: Option<PartnerId>,
    period: Period,
) -> Result<Vec<UnmappedRow>, stackbill_store::StoreError> {
    let registrations = state.store.registrations(scope).await?;
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for r in &registrations {
        if !seen.insert(r.default_subscription) {
            continue;
        }
        let records = (state.store)
            .invoice_records(r.default_subscription, period, None, None, None)
            .await?;
        let mut by_tenant: BTreeMap<(String, String), usize> = BTreeMap::new();
        for record in &records {
            let stack = registrations
                .iter()
                .find(|x| x.cloud_id == record.cloud_id)
                .map_or_else(|| record.cloud_id.to_string(), |x| x.name.to_string());
            *by_tenant
                .entry((stack, record.tenant_id.to_string()))
                .or_default() += 1;
        }
        let billed = state
            .store
            .invoice(r.default_subscription, period, None)
            .await?;
        let amount = billed.map_or_else(String::new, |i| format!("{} {}", i.total, i.currency));
        rows.extend(
            by_tenant
                .into_iter()
                .map(|((registration, tenant), records)| UnmappedRow {
                    registration,
                    tenant,
                    records,
                    amount: amount.clone(),
                }),
        );
    }
    rows.sort_by(|a, b| {
        b.records
            .cmp(&a.records)
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    rows.truncate(UNMAPPED_SHOWN);
    Ok(rows)
}

/// The month's usage per day and meter on the stacks the session may see, as chart JSON.
async fn usage_chart(
    state: &AppState,
    session: &Session,
    scope: Option<PartnerId>,
    period: Period,
    names: &InvoiceNames,
) -> Result<String, ApiError> {
    let mut usage = DailyUsage::new(period, state.store.now());
    let (first, end) = usage.hours();
    let mut clouds: Vec<stackbill_core::CloudId> = (state.store.registrations(scope).await?)
        .into_iter()
        .map(|r| r.cloud_id)
        .collect();
    clouds.sort_unstable_by_key(ToString::to_string);
    clouds.dedup();
    for cloud in clouds {
        let usage_scope =
            stackbill_api::usage::cloud_scope(&state.store, &session.caller, cloud).await?;
        usage.add(
            state
                .store
                .usage_aggregates(usage_scope, first, end, 24)
                .await?,
        );
    }
    Ok(usage.json(names))
}

/// A collector's row.
pub(crate) struct CollectorRow {
    registration: String,
    last_success: String,
    lag: String,
    error: String,
    failing: bool,
    held: usize,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    period: Period,
    previous: Period,
    totals: Vec<Total>,
    rows: Vec<InvoiceRow>,
    finals: Vec<Total>,
    collectors: Vec<CollectorRow>,
    unmapped: Vec<UnmappedRow>,
    usage_json: String,
    rejections: Option<Vec<RejectionRow>>,
}

/// Records refused in one hour with one code.
pub(crate) struct RejectionRow {
    hour: String,
    code: String,
    records: u64,
}

/// Hours of refusals the overview lists.
const REJECTION_HOURS: i64 = 24;

/// `GET /`: the month's revenue so far, last month's finals and the collectors.
pub(crate) async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if let Caller::Customer(partner, tenant) = &session.caller {
        return crate::customers::registration_status(&state, &session, partner, *tenant).await;
    }
    match overview_page(&state, &session, &query).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}

async fn overview_page(
    state: &AppState,
    session: &Session,
    query: &PeriodQuery,
) -> Result<OverviewPage, Response> {
    let period = period_of(state, session, query)?;
    let scope = scope(session)?;
    let failure = |error| store_failure(session, error);
    let names = InvoiceNames::load(&state.store).await.map_err(failure)?;
    let (invoices, _) = (state.store)
        .invoice_list(period, scope.clone(), None)
        .await
        .map_err(failure)?;
    let previous = period.previous();
    let (last, _) = (state.store)
        .invoice_list(previous, scope.clone(), None)
        .await
        .map_err(failure)?;
    let visible: Option<HashSet<String>> = match &scope {
        None => None,
        Some(partner) => Some(
            (state.store.registrations(Some(partner.clone())).await)
                .map_err(failure)?
                .into_iter()
                .map(|r| r.name.as_str().to_ascii_lowercase())
                .collect(),
        ),
    };
    let now = state.store.now();
    let collectors = (state.store.collectors().await)
        .map_err(failure)?
        .into_iter()
        .filter(|c| {
            visible
                .as_ref()
                .is_none_or(|v| v.contains(&c.config.registration.as_str().to_ascii_lowercase()))
        })
        .map(|c| CollectorRow {
            registration: c.config.registration.to_string(),
            last_success: c
                .last_success
                .map_or_else(|| "never".to_owned(), |t| t.to_string()),
            lag: c
                .lag_hours(now)
                .map_or_else(|| "-".to_owned(), |h| h.to_string()),
            failing: c.last_error.is_some(),
            error: c
                .last_error
                .as_ref()
                .map_or_else(String::new, |(at, code, message)| {
                    format!("{code} at {at}: {message}")
                }),
            held: c.held,
        })
        .collect();
    let unmapped = unmapped_tenants(state, scope.clone(), period)
        .await
        .map_err(failure)?;
    let usage_json = usage_chart(state, session, scope.clone(), period, &names)
        .await
        .map_err(|error| refusal(session, error))?;
    // Refusals name no partner (a record of an unknown stack has none): an admin's only.
    let rejections = if matches!(session.caller, Caller::Admin) {
        let since = stackbill_core::period::hour_number(state.store.now()) - REJECTION_HOURS + 1;
        Some(
            (state.store.rejection_counts(since).await)
                .map_err(failure)?
                .into_iter()
                .map(|r| RejectionRow {
                    hour: stackbill_core::period::hour_start(r.hour)
                        .map_or_else(|_| r.hour.to_string(), |t| t.to_string()),
                    code: r.code,
                    records: r.records,
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(OverviewPage {
        rejections,
        usage_json,
        unmapped,
        layout: Layout::new(Some(session)),
        period,
        previous,
        totals: totals(invoices.iter(), &names),
        rows: rows(&invoices, &names),
        finals: totals(
            last.iter().filter(|i| i.status == InvoiceStatus::Final),
            &names,
        ),
        collectors,
    })
}
