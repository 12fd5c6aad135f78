//! The margin report: each invoice line of a month against what its usage cost, totals per
//! partner and currency, and a bar per customer (revenue beside cost) drawn as SVG on the
//! server.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use stackbill_api::AppState;
use stackbill_api::billing::InvoiceNames;
use stackbill_api::margin::{MarginReportDto, margin_csv, margin_dto};

use crate::frame::{
    Layout, PeriodQuery, period_of, refusal, render, scope, signed_in, store_failure,
};

/// One bar pair of the chart: a customer's revenue and cost, in one currency.
pub(crate) struct Bar {
    label: String,
    revenue: String,
    cost: String,
    revenue_width: String,
    cost_width: String,
    y: usize,
}

/// The bars of one partner in one currency.
pub(crate) struct Chart {
    title: String,
    bars: Vec<Bar>,
    height: usize,
}

#[derive(Template)]
#[template(path = "margin.html")]
struct MarginPage {
    layout: Layout,
    period: String,
    report: MarginReportDto,
    charts: Vec<Chart>,
}

/// Bar width for `value` of `max`, on a 360-unit scale.
fn width(value: Decimal, max: Decimal) -> String {
    if max.is_zero() || value.is_sign_negative() {
        return "0".to_owned();
    }
    (value.checked_mul(Decimal::from(360)))
        .and_then(|v| v.checked_div(max))
        .map_or_else(|| "0".to_owned(), |w| w.round_dp(1).to_string())
}

fn charts(report: &MarginReportDto) -> Vec<Chart> {
    // Per (partner, currency), per customer: revenue and cost of the lines with a margin.
    let mut sums: BTreeMap<(String, String), BTreeMap<String, (Decimal, Decimal)>> =
        BTreeMap::new();
    for row in report.rows.iter().filter(|r| r.margin.is_some()) {
        let parse = |text: &str| text.parse::<Decimal>().unwrap_or_default();
        let entry = sums
            .entry((
                row.partner_id.clone().unwrap_or_default(),
                row.currency.clone(),
            ))
            .or_default()
            .entry(if row.customer_name.is_empty() {
                row.subscription_id.clone()
            } else {
                row.customer_name.clone()
            })
            .or_default();
        // A sum too large for the chart leaves that bar as it was; the table has the figures.
        if let (Some(revenue), Some(cost)) = (
            entry.0.checked_add(parse(&row.revenue)),
            entry.1.checked_add(parse(&row.cost)),
        ) {
            *entry = (revenue, cost);
        }
    }
    sums.into_iter()
        .map(|((partner, currency), customers)| {
            let max = customers
                .values()
                .map(|(revenue, cost)| (*revenue).max(*cost))
                .max()
                .unwrap_or_default();
            let bars: Vec<Bar> = customers
                .into_iter()
                .enumerate()
                .map(|(index, (label, (revenue, cost)))| Bar {
                    label,
                    revenue: revenue.to_string(),
                    cost: cost.to_string(),
                    revenue_width: width(revenue, max),
                    cost_width: width(cost, max),
                    y: index * 34,
                })
                .collect();
            Chart {
                title: format!("{partner}, {currency}"),
                height: bars.len() * 34 + 4,
                bars,
            }
        })
        .collect()
}

async fn report(
    state: &AppState,
    headers: &HeaderMap,
    query: &PeriodQuery,
) -> Result<(crate::session::Session, MarginReportDto), Response> {
    let session = signed_in(state, headers).await?;
    let partner = scope(&session)?;
    let period = period_of(state, &session, query)?;
    let rows = (state.store.margin_report(period, partner).await)
        .map_err(|error| store_failure(&session, error))?;
    let names =
        (InvoiceNames::load(&state.store).await).map_err(|error| store_failure(&session, error))?;
    let report = margin_dto(period, rows, &names).map_err(|error| refusal(&session, error))?;
    Ok((session, report))
}

/// `GET /reports/margin[?period=]`.
pub(crate) async fn margin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PeriodQuery>,
) -> Response {
    match report(&state, &headers, &query).await {
        Ok((session, report)) => render(
            &MarginPage {
                layout: Layout::new(Some(&session)),
                period: report.period.clone(),
                charts: charts(&report),
                report,
            },
            StatusCode::OK,
        ),
        Err(response) => response,
    }
}

/// `GET /reports/margin/csv[?period=]`: the rows as the API's CSV, to download.
pub(crate) async fn margin_csv_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PeriodQuery>,
) -> Response {
    match report(&state, &headers, &query).await {
        Ok((_, report)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"margin-{}.csv\"", report.period),
                ),
            ],
            margin_csv(&report),
        )
            .into_response(),
        Err(response) => response,
    }
}
