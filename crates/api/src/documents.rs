//! An invoice as the document a partner sends its customer: what it prints, laid out by
//! `stackbill-pdf`. A final invoice prints the billing profiles recorded by its finalization
//! and nothing that depends on when it is rendered, so its PDF is the same bytes every time.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use stackbill_core::invoice::AdjustmentReason;
use stackbill_core::profile::{BillingProfile, ProfileOwner};
use stackbill_core::{MeterId, Subscription};
use stackbill_pdf::{Align, Column, Created, Document, Info, Party, Row, TotalRow};
use stackbill_store::{Invoice, InvoiceStatus, Store, StoreError};

use crate::names::InvoiceNames;

/// The facts an invoice document prints besides the invoice: the parties' profiles as they
/// stood, and the billed subscription.
#[derive(Debug, Default)]
pub struct DocumentFacts {
    /// The partner's profile.
    pub issuer: Option<BillingProfile>,
    /// The subscription's profile.
    pub addressee: Option<BillingProfile>,
    /// The subscription.
    pub subscription: Option<Subscription>,
    /// The instant a draft was computed at (a final invoice prints its finalization).
    pub drafted_at: Timestamp,
}

impl DocumentFacts {
    /// Loads them: a final invoice's profiles as recorded by its finalization, a draft's as of
    /// `as_of` (`None`: now).
    pub async fn load(
        store: &Store,
        invoice: &Invoice,
        as_of: Option<Timestamp>,
    ) -> Result<Self, StoreError> {
        let at = invoice.finalized_at.or(as_of);
        let issuer = match &invoice.partner_id {
            Some(partner) => {
                (store.profile(ProfileOwner::Partner, partner.to_string(), at)).await?
            }
            None => None,
        };
        let addressee = store
            .profile(
                ProfileOwner::Subscription,
                invoice.subscription_id.to_string(),
                at,
            )
            .await?;
        Ok(Self {
            issuer,
            addressee,
            subscription: store.subscription(invoice.subscription_id).await?,
            drafted_at: as_of.unwrap_or_else(|| store.now()),
        })
    }
}

/// The invoice's PDF.
pub fn invoice_pdf(
    invoice: &Invoice,
    names: &InvoiceNames,
    facts: &DocumentFacts,
) -> Result<Vec<u8>, stackbill_pdf::RenderError> {
    stackbill_pdf::render(&invoice_document(invoice, names, facts))
}

fn day(instant: Timestamp) -> String {
    instant
        .to_zoned(TimeZone::UTC)
        .strftime("%-d %B %Y")
        .to_string()
}

fn reason(reason: AdjustmentReason) -> &'static str {
    match reason {
        AdjustmentReason::LateUsage => "late usage",
        AdjustmentReason::Reassignment => "reassigned",
        AdjustmentReason::Repricing => "repriced",
    }
}

/// A party's printed lines: its legal name (or `fallback`), address, country and tax id.
fn party_lines(profile: Option<&BillingProfile>, fallback: &str) -> Vec<String> {
    let empty = BillingProfile::default();
    let profile = profile.unwrap_or(&empty);
    let mut lines = vec![
        profile
            .legal_name
            .clone()
            .unwrap_or_else(|| fallback.to_owned()),
    ];
    lines.extend(profile.address.iter().cloned());
    lines.extend(profile.country.clone());
    lines.extend(profile.tax_id.as_ref().map(|id| format!("Tax id: {id}")));
    lines
}

/// What the invoice's PDF prints.
pub fn invoice_document(
    invoice: &Invoice,
    names: &InvoiceNames,
    facts: &DocumentFacts,
) -> Document {
    let currency = invoice.currency;
    let draft = invoice.status == InvoiceStatus::Draft;
    let month = invoice
        .period
        .start()
        .to_zoned(TimeZone::UTC)
        .strftime("%B %Y")
        .to_string();
    let partner_name = (invoice.partner_id.as_ref()).and_then(|p| {
        names
            .partners
            .get(p)
            .cloned()
            .or_else(|| Some(p.to_string()))
    });
    let customer_name = (names.subscriptions.get(&invoice.subscription_id))
        .filter(|name| !name.is_empty())
        .cloned()
        .unwrap_or_else(|| invoice.subscription_id.to_string());
    let reference = match (&invoice.number, draft) {
        (Some(number), _) => format!("Invoice {number}"),
        (None, true) => format!("Draft invoice {} · {customer_name}", invoice.period),
        (None, false) => format!("Invoice {} · {customer_name}", invoice.period),
    };
    let mut fact_rows = vec![
        (
            "Invoice number".to_owned(),
            invoice.number.clone().unwrap_or_else(|| {
                if draft {
                    "given at finalization".to_owned()
                } else {
                    "none (finalized before numbering)".to_owned()
                }
            }),
        ),
        (
            "Status".to_owned(),
            if draft { "Draft" } else { "Final" }.to_owned(),
        ),
        ("Billing period".to_owned(), month.clone()),
    ];
    match invoice.finalized_at {
        Some(at) => fact_rows.push(("Invoice date".to_owned(), day(at))),
        None => fact_rows.push(("Drafted".to_owned(), day(facts.drafted_at))),
    }
    fact_rows.push((
        "Subscription".to_owned(),
        invoice.subscription_id.to_string(),
    ));
    fact_rows.push((
        "Currency".to_owned(),
        format!("{} ({})", currency.code(), currency.name()),
    ));
    let mut parties = Vec::new();
    if let Some(partner) = &partner_name {
        parties.push(Party {
            heading: "From".to_owned(),
            lines: party_lines(facts.issuer.as_ref(), partner),
        });
    }
    let mut bill_to = party_lines(facts.addressee.as_ref(), &customer_name);
    if let Some(tenant) = (facts.subscription.as_ref()).and_then(|s| s.customer_tenant_id) {
        bill_to.push(format!("Directory: {tenant}"));
    }
    parties.push(Party {
        heading: "Bill to".to_owned(),
        lines: bill_to,
    });
    let meter = |id: MeterId| {
        names
            .meters
            .get(&id)
            .map_or((id.to_string(), String::new()), |m| {
                (m.name.clone(), m.unit.clone())
            })
    };
    let mut rows = vec![Row::Section(format!("Usage in {month}"))];
    for line in &invoice.lines {
        let (name, unit) = meter(line.meter_id);
        let mut description = name;
        if let Some(price) = &line.price {
            if price.tiered {
                description.push_str(" · tiered");
            }
            if !price.included_quantity.is_zero() {
                description.push_str(&format!(
                    " · {} included",
                    price.included_quantity.normalize()
                ));
            }
        }
        if let Some(markup) = line.markup_percent.filter(|m| !m.is_zero()) {
            description.push_str(&format!(" · {:+} %", markup.normalize()));
        }
        if line.unpriced {
            description.push_str(" · no price");
        }
        rows.push(Row::Cells(vec![
            description,
            line.quantity.to_string(),
            unit,
            (line.price.as_ref())
                .map_or_else(|| "–".to_owned(), |p| p.unit_price.normalize().to_string()),
            line.amount.to_string(),
        ]));
    }
    if !invoice.adjustments.is_empty() {
        rows.push(Row::Section("Adjustments of earlier months".to_owned()));
        for adjustment in &invoice.adjustments {
            let (name, unit) = meter(adjustment.meter_id);
            rows.push(Row::Cells(vec![
                format!(
                    "{name} ({}, {})",
                    adjustment.period,
                    reason(adjustment.reason)
                ),
                adjustment.quantity.to_string(),
                unit,
                String::new(),
                adjustment.amount.to_string(),
            ]));
        }
    }
    let mut totals = vec![TotalRow {
        label: "Subtotal".to_owned(),
        value: invoice.total.to_string(),
        strong: false,
    }];
    if let Some(tax) = invoice.tax {
        totals.push(TotalRow {
            label: format!("Tax ({} %)", tax.rate_percent.normalize()),
            value: tax.amount.to_string(),
            strong: false,
        });
    }
    totals.push(TotalRow {
        label: format!("Total due ({})", currency.code()),
        value: invoice.total_due().to_string(),
        strong: true,
    });
    let mut notes = vec![format!(
        "Amounts in {} ({}). Each line is rated from the month's metered quantity and rounded \
         once to {} decimal places, half away from zero{}.",
        currency.code(),
        currency.name(),
        currency.minor_units(),
        invoice.tax.map_or(String::new(), |tax| format!(
            "; tax is {} % of the subtotal, rounded the same way",
            tax.rate_percent.normalize()
        )),
    )];
    notes.push(
        "Usage is metered hourly by Azure Stack Hub; months are counted in UTC. Adjustments \
         correct months already invoiced."
            .to_owned(),
    );
    if draft {
        notes.push(
            "DRAFT: the amounts change until the month is finalized; this is not a demand \
             for payment."
                .to_owned(),
        );
    }
    let created = invoice.finalized_at.map(|at| {
        let at = at.to_zoned(TimeZone::UTC);
        Created {
            year: u16::try_from(at.year()).unwrap_or(1970),
            month: u8::try_from(at.month()).unwrap_or(1),
            day: u8::try_from(at.day()).unwrap_or(1),
            hour: u8::try_from(at.hour()).unwrap_or(0),
            minute: u8::try_from(at.minute()).unwrap_or(0),
            second: u8::try_from(at.second()).unwrap_or(0),
        }
    });
    Document {
        title: "Invoice".to_owned(),
        reference: reference.clone(),
        mark: draft.then(|| "DRAFT".to_owned()),
        facts: fact_rows,
        parties,
        columns: vec![
            column("Description", 205.0, Align::Left),
            column("Quantity", 84.0, Align::Right),
            column("Unit", 80.0, Align::Left),
            column("Unit price", 60.0, Align::Right),
            column("Amount", 70.0, Align::Right),
        ],
        rows,
        totals,
        notes,
        info: Info {
            title: reference,
            author: partner_name.unwrap_or_default(),
            created,
        },
    }
}

fn column(title: &str, width: f32, align: Align) -> Column {
    Column {
        title: title.to_owned(),
        width,
        align,
    }
}
