//! How an invoice changed between two instants, and why:
//! `GET /v1/invoices/{subscriptionId}/{period}/diff?from=&to=`. The explanation is the
//! core's (`stackbill_core::billing::explain_change`); the CLI's `invoice diff --json`
//! prints the same shape.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Serialize;
use stackbill_core::{Meter, MeterId, Period, SubscriptionId};
use stackbill_store::InvoiceDiff;

use crate::access::{Caller, check_subscription};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{QueryParams, param};
use crate::state::AppState;

/// How an invoice changed between two instants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceDiffDto {
    /// The billed subscription.
    pub subscription_id: String,
    /// The month.
    pub period: String,
    /// The first instant.
    pub from: String,
    /// The second instant.
    pub to: String,
    /// The total at the first instant.
    pub total_from: String,
    /// The total at the second instant.
    pub total_to: String,
    /// Whether the invoice was final at the first instant: records accepted since are late.
    pub final_at_from: bool,
    /// Whether the invoice was final at the second instant: a change then is billed as
    /// adjustments on a later invoice.
    pub final_at_to: bool,
    /// The meters that changed.
    pub meters: Vec<MeterDiffDto>,
    /// The adjustments (of earlier final months) that changed.
    pub adjustments: Vec<AdjustmentDiffDto>,
}

/// One adjustment's change: quantity and amount at each instant (0 where it was not there).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentDiffDto {
    /// The final month it corrects.
    pub period: String,
    /// The meter.
    pub meter_id: String,
    /// Its name in the catalog (empty when unknown).
    pub meter_name: String,
    /// `LateUsage`, `Reassignment` or `Repricing`.
    pub reason: &'static str,
    /// Its quantity at the first instant.
    pub quantity_from: String,
    /// At the second.
    pub quantity_to: String,
    /// Its amount at the first instant.
    pub amount_from: String,
    /// At the second.
    pub amount_to: String,
}

/// One meter's change and what explains it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeterDiffDto {
    /// The meter.
    pub meter_id: String,
    /// Its name in the catalog (empty when unknown).
    pub meter_name: String,
    /// The line's quantity at the first instant.
    pub quantity_from: String,
    /// At the second.
    pub quantity_to: String,
    /// The line's amount at the first instant.
    pub amount_from: String,
    /// At the second.
    pub amount_to: String,
    /// Records accepted between the instants (late ones when the month was final at the
    /// first).
    pub new_records: usize,
    /// Their quantity.
    pub new_quantity: String,
    /// Records routed here by registration changes recorded between the instants.
    pub rerouted_in_records: usize,
    /// Their quantity.
    pub rerouted_in_quantity: String,
    /// Records routed away by registration changes recorded between the instants.
    pub rerouted_out_records: usize,
    /// Their quantity.
    pub rerouted_out_quantity: String,
    /// The amount changed and the rate card changed.
    pub price_changed: bool,
}

impl MeterDiffDto {
    /// Why the line changed, in words: records new (late once the month was final at the
    /// first instant), re-routed here or away, and a rate card change.
    pub fn reasons(&self, final_at_from: bool) -> Vec<String> {
        let mut why = Vec::new();
        if self.new_records > 0 {
            let kind = if final_at_from { "late" } else { "new" };
            why.push(format!(
                "{} {kind} records (+{})",
                self.new_records, self.new_quantity
            ));
        }
        if self.rerouted_in_records > 0 {
            why.push(format!(
                "{} records re-routed here (+{})",
                self.rerouted_in_records, self.rerouted_in_quantity
            ));
        }
        if self.rerouted_out_records > 0 {
            why.push(format!(
                "{} records re-routed away (-{})",
                self.rerouted_out_records, self.rerouted_out_quantity
            ));
        }
        if self.price_changed {
            why.push("the rate card changed".to_owned());
        }
        why
    }
}

/// The wire form of an invoice diff, meters named from the catalog.
pub fn invoice_diff_dto(diff: InvoiceDiff, meters: &HashMap<MeterId, Meter>) -> InvoiceDiffDto {
    let name = |id: MeterId| meters.get(&id).map(|m| m.name.clone()).unwrap_or_default();
    InvoiceDiffDto {
        subscription_id: diff.subscription_id.to_string(),
        period: diff.period.to_string(),
        from: diff.from.to_string(),
        to: diff.to.to_string(),
        total_from: diff.total_from.to_string(),
        total_to: diff.total_to.to_string(),
        final_at_from: diff.status_from == Some(stackbill_store::InvoiceStatus::Final),
        final_at_to: diff.status_to == Some(stackbill_store::InvoiceStatus::Final),
        meters: diff
            .meters
            .into_iter()
            .map(|m| MeterDiffDto {
                meter_id: m.meter_id.to_string(),
                meter_name: name(m.meter_id),
                quantity_from: m.quantity.0.to_string(),
                quantity_to: m.quantity.1.to_string(),
                amount_from: m.amount.0.to_string(),
                amount_to: m.amount.1.to_string(),
                new_records: m.added.records,
                new_quantity: m.added.quantity.to_string(),
                rerouted_in_records: m.rerouted_in.records,
                rerouted_in_quantity: m.rerouted_in.quantity.to_string(),
                rerouted_out_records: m.rerouted_out.records,
                rerouted_out_quantity: m.rerouted_out.quantity.to_string(),
                price_changed: m.price_changed,
            })
            .collect(),
        adjustments: diff
            .adjustments
            .into_iter()
            .map(|a| AdjustmentDiffDto {
                period: a.period.to_string(),
                meter_id: a.meter_id.to_string(),
                meter_name: name(a.meter_id),
                reason: a.reason.as_str(),
                quantity_from: a.quantity.0.to_string(),
                quantity_to: a.quantity.1.to_string(),
                amount_from: a.amount.0.to_string(),
                amount_to: a.amount.1.to_string(),
            })
            .collect(),
    }
}

/// How an invoice changed between two instants, meter by meter, and why
#[utoipa::path(
    get,
    path = "/v1/invoices/{subscriptionId}/{period}/diff",
    tag = "billing",
    params(
        ("subscriptionId" = String, Path, description = "GUID"),
        ("period" = String, Path, description = "YYYY-MM"),
        ("from" = String, Query, description = "RFC 3339 instant (required)"),
        ("to" = String, Query, description = "RFC 3339 instant (default: now)"),
    ),
    responses((status = 200, body = InvoiceDiffDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn invoice_diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((subscription, period)): Path<(String, String)>,
    query: QueryParams,
) -> Result<Json<InvoiceDiffDto>, ApiError> {
    let subscription: SubscriptionId = param(&subscription, "subscriptionId")?;
    let period: Period = param(&period, "period")?;
    check_subscription(&state.store, &caller, subscription).await?;
    let from = query.instant("from")?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            "from is required (an RFC 3339 instant)",
        )
        .with_target("from")
    })?;
    let to = query.instant("to")?.unwrap_or_else(|| state.store.now());
    let diff = state
        .store
        .invoice_diff(subscription, period, from, to)
        .await?;
    let meters = state.store.meters_by_id().await?;
    Ok(Json(invoice_diff_dto(diff, &meters)))
}
