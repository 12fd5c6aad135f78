//! The reconciliation export: a month's invoices in the shape of Partner Center's daily-rated
//! usage file (`GET /v1/reconciliation`, `stackbill invoice export --format partner-center`).
//!
//! One row per (billed subscription, meter, usage day, resource) and one per adjustment, with
//! every column of the reference's file in its order (`docs/reconciliation.md` says what each
//! holds). An invoice line is rated once a month; its amount is spread over the line's rows
//! by quantity with the largest-remainder rule (`stackbill_core::apportion`), so the rows of
//! an invoice add up to its total (before tax) exactly.
//!
//! A final invoice is explained by the records it was computed from (accepted and routed by
//! its finalization); drafts by the records as of one instant taken when the export starts.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use stackbill_core::apportion::apportion;
use stackbill_core::total::Total;
use stackbill_core::{CloudId, MeterId, PartnerId, Period, UsageRecord};
use stackbill_store::{Invoice, Store, StoreError};

use crate::names::InvoiceNames;

/// The columns of Partner Center's daily-rated usage file, in its order.
pub const RECONCILIATION_COLUMNS: [&str; 55] = [
    "PartnerId",
    "PartnerName",
    "CustomerId",
    "CustomerName",
    "CustomerDomainName",
    "CustomerCountry",
    "MpnId",
    "Tier2MpnId",
    "InvoiceNumber",
    "ProductId",
    "SkuId",
    "AvailabilityId",
    "SkuName",
    "ProductName",
    "PublisherName",
    "PublisherId",
    "SubscriptionDescription",
    "SubscriptionId",
    "ChargeStartDate",
    "ChargeEndDate",
    "UsageDate",
    "MeterType",
    "MeterCategory",
    "MeterId",
    "MeterSubCategory",
    "MeterName",
    "MeterRegion",
    "Unit",
    "ResourceLocation",
    "ConsumedService",
    "ResourceGroup",
    "ResourceURI",
    "ChargeType",
    "UnitPrice",
    "Quantity",
    "UnitType",
    "BillingPreTaxTotal",
    "BillingCurrency",
    "PricingPreTaxTotal",
    "PricingCurrency",
    "ServiceInfo1",
    "ServiceInfo2",
    "Tags",
    "AdditionalInfo",
    "EffectiveUnitPrice",
    "PCToBCExchangeRate",
    "PCToBCExchangeRateDate",
    "EntitlementId",
    "EntitlementDescription",
    "PartnerEarnedCreditPercentage",
    "CreditPercentage",
    "CreditType",
    "BenefitOrderId",
    "BenefitId",
    "BenefitType",
];

/// The position of a column.
fn at(name: &str) -> usize {
    RECONCILIATION_COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or(RECONCILIATION_COLUMNS.len())
}

/// A month's invoices, ready to be written out invoice by invoice.
pub struct MonthExport {
    /// The month.
    pub period: Period,
    /// Its invoices as of [`MonthExport::as_of`].
    pub invoices: Vec<Invoice>,
    /// What they name.
    pub names: InvoiceNames,
    /// The instant drafts are explained at.
    pub as_of: Timestamp,
}

/// Why an export cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed, or refused (an invoice that cannot be computed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sum beyond what an amount holds.
    #[error("the reconciliation rows of subscription {0} overflow")]
    Overflow(stackbill_core::SubscriptionId),
}

impl MonthExport {
    /// Loads `period`'s invoices (optionally one partner's) as of now. An invoice that
    /// cannot be computed refuses the whole export: a file must never leave one out.
    pub async fn load(
        store: &Store,
        period: Period,
        partner: Option<PartnerId>,
    ) -> Result<Self, ExportError> {
        let as_of = store.settled_now().await?;
        let (invoices, failed) = store.invoice_list(period, partner, Some(as_of)).await?;
        if let Some((_, error)) = failed.into_iter().next() {
            return Err(error.into());
        }
        Ok(Self {
            period,
            invoices,
            names: InvoiceNames::load(store).await?,
            as_of,
        })
    }

    /// The header line.
    pub fn header() -> Vec<u8> {
        let mut csv = csv::Writer::from_writer(Vec::new());
        let _ = csv.write_record(RECONCILIATION_COLUMNS);
        csv.into_inner().unwrap_or_default()
    }

    /// The rows of the `index`-th invoice, as CSV lines.
    pub async fn invoice_csv(&self, store: &Store, index: usize) -> Result<Vec<u8>, ExportError> {
        let Some(invoice) = self.invoices.get(index) else {
            return Ok(Vec::new());
        };
        let at = invoice.finalized_at.unwrap_or(self.as_of);
        let records = store
            .invoice_records(
                invoice.subscription_id,
                invoice.period,
                None,
                Some(at),
                Some(at),
            )
            .await?;
        let country = store
            .profile(
                stackbill_core::profile::ProfileOwner::Subscription,
                invoice.subscription_id.to_string(),
                Some(at),
            )
            .await?
            .and_then(|p| p.country);
        let tenant = store
            .subscription(invoice.subscription_id)
            .await?
            .and_then(|s| s.customer_tenant_id);
        let rows = invoice_rows(invoice, &records, &self.names, country.as_deref(), tenant)
            .ok_or(ExportError::Overflow(invoice.subscription_id))?;
        let mut csv = csv::Writer::from_writer(Vec::new());
        for row in rows {
            let _ = csv.write_record(&row);
        }
        Ok(csv.into_inner().unwrap_or_default())
    }
}

/// The resource fields of a record's `instanceData`.
#[derive(Debug, Default, Clone)]
struct Resource {
    uri: String,
    location: String,
    tags: String,
    additional: Value,
}

/// A JSON object, or a string holding one (stacks send both); `None` for `""`, `"null"`.
fn object_in(value: Option<&Value>) -> Option<Map<String, Value>> {
    match value? {
        Value::Object(map) => Some(map.clone()),
        Value::String(text) => match serde_json::from_str::<Value>(text).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        },
        _ => None,
    }
}

fn resource_of(record: &UsageRecord) -> Resource {
    let Some(value) =
        (record.instance_data.as_deref()).and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return Resource::default();
    };
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Resource {
        uri: text("resourceUri").replace('\\', "/"),
        location: text("location"),
        tags: object_in(value.get("tags"))
            .map(|tags| Value::Object(tags).to_string())
            .unwrap_or_default(),
        additional: object_in(value.get("additionalInfo")).map_or(Value::Null, Value::Object),
    }
}

/// The segment after `key` in an ARM id (`resourceGroups`, `providers`), any case.
fn segment_after(uri: &str, key: &str) -> String {
    let parts: Vec<&str> = uri.split('/').collect();
    parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case(key))
        .and_then(|i| parts.get(i + 1))
        .map(|s| (*s).to_owned())
        .unwrap_or_default()
}

/// The day of an instant, `YYYY-MM-DD` (UTC).
fn date(instant: Timestamp) -> String {
    instant.to_zoned(TimeZone::UTC).date().to_string()
}

/// One group of a line: a meter's usage on one day of one resource of one stack.
#[derive(Debug, Default)]
struct Group {
    quantity: Total,
    resource: Resource,
    stack_subscriptions: std::collections::BTreeSet<String>,
}

/// Every row of one invoice; `None` on an overflow.
fn invoice_rows(
    invoice: &Invoice,
    records: &[UsageRecord],
    names: &InvoiceNames,
    country: Option<&str>,
    tenant: Option<stackbill_core::TenantId>,
) -> Option<Vec<Vec<String>>> {
    let currency = invoice.currency;
    let start = invoice.period.start();
    let last_day = invoice.period.end() - jiff::SignedDuration::from_secs(1);
    let partner_name = (invoice.partner_id.as_ref())
        .and_then(|p| names.partners.get(p).cloned())
        .unwrap_or_default();
    let customer_name = (names.subscriptions.get(&invoice.subscription_id))
        .cloned()
        .unwrap_or_default();
    // Grouped by meter, then (day, stack, resource).
    let mut groups: BTreeMap<MeterId, BTreeMap<(String, CloudId, String), Group>> = BTreeMap::new();
    for record in records {
        let resource = resource_of(record);
        let group = groups
            .entry(record.meter_id)
            .or_default()
            .entry((
                date(record.usage_start),
                record.cloud_id,
                resource.uri.clone(),
            ))
            .or_default();
        group.quantity = group
            .quantity
            .checked_add(Total::from_decimal(record.quantity.value()))?;
        group
            .stack_subscriptions
            .insert(record.subscription_id.to_string());
        if group.resource.uri.is_empty() && group.resource.location.is_empty() {
            group.resource = resource;
        }
    }
    let base = |meter_id: MeterId| {
        let mut row = vec![String::new(); RECONCILIATION_COLUMNS.len()];
        let meter = names.meters.get(&meter_id);
        let mut set = |name: &str, value: String| {
            if let Some(cell) = row.get_mut(at(name)) {
                *cell = value;
            }
        };
        set(
            "PartnerId",
            invoice
                .partner_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
        set("PartnerName", partner_name.clone());
        set(
            "CustomerId",
            tenant.map(|t| t.to_string()).unwrap_or_default(),
        );
        set("CustomerName", customer_name.clone());
        set("CustomerCountry", country.unwrap_or_default().to_owned());
        set("InvoiceNumber", invoice.number.clone().unwrap_or_default());
        set("SkuName", meter.map(|m| m.name.clone()).unwrap_or_default());
        set("ProductName", "Azure Stack Hub".to_owned());
        set("PublisherName", partner_name.clone());
        set("SubscriptionDescription", "Azure Stack Hub".to_owned());
        set("SubscriptionId", invoice.subscription_id.to_string());
        set("ChargeStartDate", date(start));
        set("ChargeEndDate", date(last_day));
        set(
            "MeterCategory",
            meter.map(|m| m.category.clone()).unwrap_or_default(),
        );
        set("MeterId", meter_id.to_string());
        set(
            "MeterName",
            meter.map(|m| m.name.clone()).unwrap_or_default(),
        );
        set("Unit", meter.map(|m| m.unit.clone()).unwrap_or_default());
        set(
            "UnitType",
            meter.map(|m| m.unit.clone()).unwrap_or_default(),
        );
        set("BillingCurrency", currency.code().to_owned());
        set("PricingCurrency", currency.code().to_owned());
        set("PCToBCExchangeRate", "1".to_owned());
        set("PCToBCExchangeRateDate", date(start));
        set("EntitlementId", invoice.subscription_id.to_string());
        set("EntitlementDescription", customer_name.clone());
        set("PartnerEarnedCreditPercentage", "0".to_owned());
        row
    };
    let set = |row: &mut Vec<String>, name: &str, value: String| {
        if let Some(cell) = row.get_mut(at(name)) {
            *cell = value;
        }
    };
    let mut rows = Vec::new();
    for line in &invoice.lines {
        let empty = BTreeMap::new();
        let line_groups = groups.get(&line.meter_id).unwrap_or(&empty);
        let weights: Vec<Total> = line_groups.values().map(|g| g.quantity).collect();
        let unit_price = line.price.as_ref().map(|p| p.unit_price);
        let effective = unit_price.and_then(|price| {
            let factor = (Decimal::ONE_HUNDRED + line.markup_percent.unwrap_or_default())
                .checked_div(Decimal::ONE_HUNDRED)?;
            price.checked_mul(factor).map(|p| p.normalize())
        });
        let priced = |row: &mut Vec<String>| {
            set(row, "ChargeType", "Usage".to_owned());
            set(
                row,
                "UnitPrice",
                unit_price
                    .map(|p| p.normalize().to_string())
                    .unwrap_or_default(),
            );
            set(
                row,
                "EffectiveUnitPrice",
                effective.map(|p| p.to_string()).unwrap_or_default(),
            );
        };
        match apportion(line.amount, currency.minor_units(), &weights) {
            Some(amounts) if !weights.is_empty() => {
                for (((day, cloud, uri), group), amount) in line_groups.iter().zip(amounts) {
                    let mut row = base(line.meter_id);
                    priced(&mut row);
                    set(&mut row, "UsageDate", day.clone());
                    set(
                        &mut row,
                        "ResourceLocation",
                        group.resource.location.clone(),
                    );
                    set(&mut row, "ConsumedService", segment_after(uri, "providers"));
                    set(
                        &mut row,
                        "ResourceGroup",
                        segment_after(uri, "resourceGroups"),
                    );
                    set(&mut row, "ResourceURI", uri.clone());
                    set(&mut row, "Quantity", group.quantity.to_string());
                    set(&mut row, "BillingPreTaxTotal", amount.to_string());
                    set(&mut row, "PricingPreTaxTotal", amount.to_string());
                    set(&mut row, "Tags", group.resource.tags.clone());
                    let mut info = json!({
                        "cloudId": cloud.to_string(),
                        "stackSubscriptionIds": group.stack_subscriptions,
                    });
                    if !group.resource.additional.is_null() {
                        info["additionalInfo"] = group.resource.additional.clone();
                    }
                    set(&mut row, "AdditionalInfo", info.to_string());
                    rows.push(row);
                }
            }
            // No record explains the line (it cannot happen with consistent data): one row
            // for the month keeps the total exact.
            _ => {
                let mut row = base(line.meter_id);
                priced(&mut row);
                set(&mut row, "Quantity", line.quantity.to_string());
                set(&mut row, "BillingPreTaxTotal", line.amount.to_string());
                set(&mut row, "PricingPreTaxTotal", line.amount.to_string());
                rows.push(row);
            }
        }
    }
    for adjustment in &invoice.adjustments {
        let mut row = base(adjustment.meter_id);
        set(&mut row, "ChargeType", "Adjustment".to_owned());
        set(&mut row, "Quantity", adjustment.quantity.to_string());
        set(
            &mut row,
            "BillingPreTaxTotal",
            adjustment.amount.to_string(),
        );
        set(
            &mut row,
            "PricingPreTaxTotal",
            adjustment.amount.to_string(),
        );
        let info = json!({
            "adjustedPeriod": adjustment.period.to_string(),
            "reason": adjustment.reason.as_str(),
        });
        set(&mut row, "AdditionalInfo", info.to_string());
        rows.push(row);
    }
    Some(rows)
}

/// Where an export's bytes go, compressed or not.
pub struct ExportWriter {
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl ExportWriter {
    /// A writer that gzips (`true`) or passes bytes through.
    pub fn new(gzip: bool) -> Self {
        Self {
            gzip: gzip
                .then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default())),
        }
    }

    /// `bytes`, as they go out: compressed so far, or as they are.
    pub fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<Vec<u8>> {
        match &mut self.gzip {
            Some(encoder) => {
                std::io::Write::write_all(encoder, &bytes)?;
                Ok(std::mem::take(encoder.get_mut()))
            }
            None => Ok(bytes),
        }
    }

    /// The last bytes (the gzip trailer).
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self.gzip {
            Some(encoder) => encoder.finish(),
            None => Ok(Vec::new()),
        }
    }
}

/// A month's reconciliation file
#[utoipa::path(
    get,
    path = "/v1/reconciliation",
    tag = "billing",
    params(
        ("period" = String, Query, description = "YYYY-MM"),
        ("partnerId" = String, Query, description = "only this partner's"),
        ("compression" = String, Query, description = "gzip: a .csv.gz file"),
    ),
    responses(
        (status = 200, description = "CSV in Partner Center's daily-rated usage shape", content_type = "text/csv"),
        crate::error::ArmError
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_reconciliation(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    axum::Extension(caller): axum::Extension<crate::access::Caller>,
    query: crate::extract::QueryParams,
) -> Result<axum::response::Response, crate::error::ApiError> {
    use crate::error::{ApiError, ErrorCode};
    use axum::http::HeaderValue;
    use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};

    let period = crate::access::period_param(&query)?;
    let partner = crate::access::partner_param(
        &caller,
        &query,
        "a partner token exports its own invoices only",
    )?;
    let gzip = match query.0.get("compression").map(String::as_str) {
        None | Some("") | Some("none") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("compression '{other}' is not known; use gzip, or leave it out"),
            )
            .with_target("compression"));
        }
    };
    let export = MonthExport::load(&state.store, period, partner)
        .await
        .map_err(|err| match err {
            ExportError::Store(store) => ApiError::from(store),
            overflow @ ExportError::Overflow(_) => {
                ApiError::new(ErrorCode::AmountOverflow, overflow.to_string())
            }
        })?;
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        let mut writer = ExportWriter::new(gzip);
        let send = async |bytes: std::io::Result<Vec<u8>>| {
            if let Err(error) = &bytes {
                // The response ends broken, so that no client takes it for a whole file.
                tracing::error!(%error, "the reconciliation export stopped");
            }
            let failed = bytes.is_err();
            sender
                .send(bytes.map(axum::body::Bytes::from))
                .await
                .is_ok()
                && !failed
        };
        if !send(writer.write(MonthExport::header())).await {
            return;
        }
        for index in 0..export.invoices.len() {
            let rows = export.invoice_csv(&store, index).await;
            let out = rows
                .map_err(std::io::Error::other)
                .and_then(|rows| writer.write(rows));
            if !send(out).await {
                return;
            }
        }
        send(writer.finish()).await;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let mut response = axum::response::Response::new(axum::body::Body::from_stream(stream));
    let name = format!(
        "reconciliation-{period}.csv{}",
        if gzip { ".gz" } else { "" }
    );
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if gzip {
            "application/gzip"
        } else {
            "text/csv; charset=utf-8"
        }),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
