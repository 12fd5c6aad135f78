//! The facts an invoice is computed from, read as of an instant, and the frozen final
//! invoices, written once and read back.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::billing::{Finalizations, PricingVersion, pricing_in};
use stackbill_core::events::EventType;
use stackbill_core::invoice::{Adjustment, Billed, InvoiceLine, LinePrice, Pricing, rate_lines};
use stackbill_core::profile::InvoiceTax;
use stackbill_core::rating::{CardOwner, MeterRate, Tier, card_for};
use stackbill_core::routing::RoutingTable;
use stackbill_core::sum::exact_add;
use stackbill_core::total::Total;
use stackbill_core::{
    BillingError, Currency, MeterId, PartnerId, Period, RateCard, RateCardName, Subscription,
    SubscriptionId,
};

use super::{Invoice, InvoiceStatus};
use crate::db::{Conn, Num, Row, instant, micros, params, parse};
use crate::directory::{load_routing, load_subscriptions};
use crate::error::{Result, StoreError};
use crate::finals::load_finalized;
pub(super) use crate::finals::scope_text;
use crate::numeric::TotalParam;
use crate::profiles::next_invoice_number;

/// The stored text of a card's owner: the partner id, or '' for a shared card.
pub(super) fn owner_text(owner: &CardOwner) -> &str {
    match owner {
        CardOwner::Shared => "",
        CardOwner::Partner(partner) => partner.as_str(),
    }
}

/// Every owner's rate cards (or only those named `only`) as recorded by `as_of` (`None`:
/// now).
pub(super) fn load_rate_cards(
    conn: &Conn<'_>,
    as_of: Option<i64>,
    only: Option<&RateCardName>,
) -> Result<HashMap<(CardOwner, RateCardName), RateCard>> {
    let rows: Vec<(i64, String, String, String)> = conn.query_map(
        "SELECT v.version_id, v.owner, v.name, v.currency FROM rate_card_versions v
         WHERE (CAST(?2 AS TEXT) IS NULL OR v.name = ?2)
           AND v.version_id = (SELECT max(w.version_id) FROM rate_card_versions w
                               WHERE w.owner = v.owner AND w.name = v.name
                                 AND (CAST(?1 AS BIGINT) IS NULL OR w.recorded_at <= ?1))",
        params![as_of, only.map(RateCardName::as_str)],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    let mut cards = HashMap::new();
    for (version, owner, name, currency) in rows {
        let owner = match owner.as_str() {
            "" => CardOwner::Shared,
            partner => CardOwner::Partner(parse(partner)?),
        };
        let mut entries: BTreeMap<(MeterId, i64), (Decimal, Vec<Tier>)> = BTreeMap::new();
        conn.query_each(
            "SELECT meter_id, effective_date, included_quantity, from_quantity, unit_price
             FROM rate_card_tiers WHERE version_id = ?1 ORDER BY meter_id, effective_date",
            params![version],
            |row| {
                let meter: MeterId = parse(&row.get::<String>(0)?)?;
                let entry = entries
                    .entry((meter, row.get(1)?))
                    .or_insert((row.get(2)?, Vec::new()));
                entry.1.push(Tier {
                    from_quantity: row.get(3)?,
                    unit_price: row.get(4)?,
                });
                Ok(())
            },
        )?;
        let rates = entries
            .into_iter()
            .map(|((meter, effective), (included, tiers))| {
                MeterRate::new(meter, tiers, included, instant(effective)?)
                    .map_err(StoreError::corrupt)
            })
            .collect::<Result<Vec<_>>>()?;
        let name: RateCardName = parse(&name)?;
        cards.insert(
            (owner, name.clone()),
            RateCard {
                name,
                currency: parse(&currency)?,
                rates,
            },
        );
    }
    Ok(cards)
}

/// A final invoice as it was frozen, if there is one.
pub(super) fn load_final_invoice(
    conn: &Conn<'_>,
    subscription: SubscriptionId,
    period: Period,
) -> Result<Option<Invoice>> {
    type Head = (Option<String>, String, Decimal, i64, Option<String>);
    let head: Option<(Head, Option<Decimal>, Option<Decimal>)> = conn.query_opt(
        "SELECT partner_id, currency, total, finalized_at, invoice_number, tax_rate_percent,
         tax_amount FROM final_invoices
         WHERE subscription_id = ?1 AND period = ?2",
        params![subscription.to_string(), period.to_string()],
        |row| {
            let head = (
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            );
            Ok((head, row.get(5)?, row.get(6)?))
        },
    )?;
    let Some(((partner, currency, total, finalized_at, number), tax_rate, tax_amount)) = head
    else {
        return Ok(None);
    };
    let tax = match (tax_rate, tax_amount) {
        (Some(rate), Some(amount)) => Some(
            InvoiceTax::frozen(total, rate, amount)
                .ok_or_else(|| StoreError::Overflow("a final invoice's total due".to_owned()))?,
        ),
        _ => None,
    };
    let lines = conn.query_map(
        "SELECT meter_id, quantity, amount, unpriced, unit_price, tiered, included_quantity,
         markup_percent FROM final_invoice_lines
         WHERE subscription_id = ?1 AND period = ?2 ORDER BY meter_id",
        params![subscription.to_string(), period.to_string()],
        |row| {
            let price = match (
                row.get::<Option<Decimal>>(4)?,
                row.get::<Option<i64>>(5)?,
                row.get::<Option<Decimal>>(6)?,
            ) {
                (Some(unit_price), Some(tiered), Some(included_quantity)) => Some(LinePrice {
                    unit_price,
                    tiered: tiered != 0,
                    included_quantity,
                }),
                _ => None,
            };
            Ok(InvoiceLine {
                meter_id: parse(&row.get::<String>(0)?)?,
                quantity: row.get(1)?,
                amount: row.get(2)?,
                unpriced: row.get::<i64>(3)? != 0,
                price,
                markup_percent: row.get(7)?,
            })
        },
    )?;
    let adjustments = conn.query_map(
        "SELECT adjusted_period, meter_id, quantity, amount, reason FROM final_invoice_adjustments
         WHERE subscription_id = ?1 AND period = ?2 ORDER BY rowid",
        params![subscription.to_string(), period.to_string()],
        |row| {
            Ok(Adjustment {
                period: parse(&row.get::<String>(0)?)?,
                meter_id: parse(&row.get::<String>(1)?)?,
                quantity: row.get(2)?,
                amount: row.get(3)?,
                reason: parse(&row.get::<String>(4)?)?,
            })
        },
    )?;
    Ok(Some(Invoice {
        subscription_id: subscription,
        partner_id: partner.as_deref().map(parse).transpose()?,
        period,
        currency: parse(&currency)?,
        status: InvoiceStatus::Final,
        lines,
        adjustments,
        total,
        tax,
        number,
        finalized_at: Some(instant(finalized_at)?),
    }))
}

/// What was billed so far for each (subscription, meter) of a final period: final lines
/// plus adjustments frozen on later final invoices.
pub(super) fn billed_for(
    conn: &Conn<'_>,
    period: Period,
    as_of: Option<i64>,
) -> Result<HashMap<SubscriptionId, BTreeMap<MeterId, Billed>>> {
    let mut billed: HashMap<SubscriptionId, BTreeMap<MeterId, Billed>> = HashMap::new();
    let mut add = |row: &Row<'_>| -> Result<()> {
        let entry = billed
            .entry(parse(&row.get::<String>(0)?)?)
            .or_default()
            .entry(parse(&row.get::<String>(1)?)?)
            .or_default();
        let overflow = || StoreError::Overflow("the billed total of a meter".to_owned());
        entry.quantity = (entry.quantity.checked_add(row.get(2)?)).ok_or_else(overflow)?;
        entry.amount = exact_add(entry.amount, row.get(3)?).ok_or_else(overflow)?;
        Ok(())
    };
    // What the final invoices of `period` billed, then what later invoices adjusted of it.
    for (table, period_column) in [
        ("final_invoice_lines", "period"),
        ("final_invoice_adjustments", "adjusted_period"),
    ] {
        conn.query_each(
            &format!(
                "SELECT x.subscription_id, x.meter_id, x.quantity, x.amount FROM {table} x
                 JOIN final_invoices f
                   ON f.subscription_id = x.subscription_id AND f.period = x.period
                 WHERE x.{period_column} = ?1
                   AND (CAST(?2 AS BIGINT) IS NULL OR f.finalized_at <= ?2)"
            ),
            params![period.to_string(), as_of],
            &mut add,
        )?;
    }
    Ok(billed)
}

/// Every subscription's pricing versions recorded by `as_of` (`None`: all), in the order
/// they were recorded.
fn load_pricing(
    conn: &Conn<'_>,
    as_of: Option<i64>,
) -> Result<HashMap<SubscriptionId, Vec<PricingVersion>>> {
    let mut versions: HashMap<SubscriptionId, Vec<PricingVersion>> = HashMap::new();
    conn.query_each(
        "SELECT subscription_id, from_period, rate_card, markup_percent
         FROM subscription_pricing
         WHERE CAST(?1 AS BIGINT) IS NULL OR recorded_at <= ?1
         ORDER BY version_id",
        params![as_of],
        |row| {
            let from: String = row.get(1)?;
            versions
                .entry(parse(&row.get::<String>(0)?)?)
                .or_default()
                .push(PricingVersion {
                    from: (!from.is_empty()).then(|| parse(&from)).transpose()?,
                    rate_card: parse(&row.get::<String>(2)?)?,
                    markup_percent: row.get(3)?,
                });
            Ok(())
        },
    )?;
    Ok(versions)
}

/// The prices as recorded by an instant: the rate cards and every subscription's pricing
/// versions (SPEC §5).
pub(super) struct PriceList {
    cards: HashMap<(CardOwner, RateCardName), RateCard>,
    versions: HashMap<SubscriptionId, Vec<PricingVersion>>,
}

impl PriceList {
    pub(super) fn load(conn: &Conn<'_>, as_of: Option<i64>) -> Result<Self> {
        Ok(Self {
            cards: load_rate_cards(conn, as_of, None)?,
            versions: load_pricing(conn, as_of)?,
        })
    }

    /// Whether `subscription` had pricing by then.
    pub(super) fn prices(&self, subscription: SubscriptionId) -> bool {
        self.versions.contains_key(&subscription)
    }

    /// How `subscription`'s usage of `period` is priced: the version that applies to the
    /// period, else (for a subscription made after the instant) none.
    pub(super) fn pricing(&self, subscription: &Subscription, period: Period) -> Pricing<'_> {
        let versions = self
            .versions
            .get(&subscription.id)
            .map_or(&[][..], Vec::as_slice);
        match pricing_in(versions, period) {
            Some(version) => Pricing {
                card: card_for(
                    &self.cards,
                    subscription.partner_id.as_ref(),
                    &version.rate_card,
                ),
                markup_percent: version.markup_percent,
            },
            None => Pricing {
                card: None,
                markup_percent: Decimal::ZERO,
            },
        }
    }

    /// Rates a subscription's quantities of `period`.
    pub(super) fn rate(
        &self,
        subscription: Option<&Subscription>,
        period: Period,
        quantities: &BTreeMap<MeterId, Total>,
    ) -> Result<BTreeMap<MeterId, InvoiceLine>, BillingError> {
        let pricing = match subscription {
            Some(s) => self.pricing(s, period),
            None => Pricing {
                card: None,
                markup_percent: Decimal::ZERO,
            },
        };
        Ok(rate_lines(period, quantities, pricing)?
            .into_iter()
            .map(|l| (l.meter_id, l))
            .collect())
    }
}

/// The data an invoice computation reads, as of an instant (`None`: as it is now).
pub(super) struct Facts {
    pub(super) as_of: Option<i64>,
    pub(super) subscriptions: HashMap<SubscriptionId, Subscription>,
    pub(super) prices: PriceList,
    pub(super) routing: RoutingTable,
    pub(super) finalized: Finalizations,
}

impl Facts {
    pub(super) fn load(conn: &Conn<'_>, as_of: Option<i64>) -> Result<Self> {
        let as_of_instant = as_of.map(instant).transpose()?;
        Ok(Self {
            as_of,
            subscriptions: load_subscriptions(conn)?
                .into_iter()
                .map(|s| (s.id, s))
                .collect(),
            prices: PriceList::load(conn, as_of)?,
            routing: load_routing(conn, as_of_instant)?,
            finalized: load_finalized(conn, as_of)?,
        })
    }

    /// The currency `subscription` is billed in for `period`.
    pub(super) fn currency(&self, subscription: SubscriptionId, period: Period) -> Currency {
        self.subscriptions
            .get(&subscription)
            .map_or(Currency::USD, |s| self.prices.pricing(s, period).currency())
    }

    pub(super) fn partner_of(&self, subscription: SubscriptionId) -> Option<&PartnerId> {
        self.subscriptions
            .get(&subscription)
            .and_then(|s| s.partner_id.as_ref())
    }

    pub(super) fn rate(
        &self,
        subscription: SubscriptionId,
        period: Period,
        quantities: &BTreeMap<MeterId, Total>,
    ) -> Result<BTreeMap<MeterId, InvoiceLine>, BillingError> {
        (self.prices).rate(self.subscriptions.get(&subscription), period, quantities)
    }
}

/// Freezes a final invoice: its head, lines and adjustments.
pub(super) fn write_final(conn: &Conn<'_>, invoice: &Invoice, now: Timestamp) -> Result<()> {
    let sub = invoice.subscription_id.to_string();
    let period = invoice.period.to_string();
    let partner = invoice.partner_id.as_ref().map(PartnerId::as_str);
    let number = next_invoice_number(conn, partner, invoice.period.year())?;
    conn.execute(
        "INSERT INTO final_invoices (subscription_id, period, partner_id, currency, total,
         finalized_at, invoice_number, tax_rate_percent, tax_amount)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            sub,
            period,
            partner,
            invoice.currency.code(),
            Num(invoice.total),
            micros(now),
            number,
            invoice.tax.map(|t| Num(t.rate_percent.normalize())),
            invoice.tax.map(|t| Num(t.amount))
        ],
    )?;
    if let Some(partner) = &invoice.partner_id {
        let mut data = serde_json::json!({
            "subscriptionId": sub,
            "period": period,
            "invoiceNumber": number,
            "currency": invoice.currency.code(),
            "total": invoice.total.to_string(),
            "totalDue": invoice.total_due().to_string(),
            "lines": invoice.lines.len(),
            "adjustments": invoice.adjustments.len(),
        });
        if let Some(tax) = invoice.tax {
            data["tax"] = serde_json::json!({
                "ratePercent": tax.rate_percent.normalize().to_string(),
                "amount": tax.amount.to_string(),
            });
        }
        crate::outbox::emit(conn, partner, EventType::InvoiceFinalized, data, now)?;
    }
    for l in &invoice.lines {
        conn.execute(
            "INSERT INTO final_invoice_lines (subscription_id, period, meter_id, quantity,
             amount, unpriced, unit_price, tiered, included_quantity, markup_percent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                sub,
                period,
                l.meter_id.to_string(),
                TotalParam(l.quantity),
                Num(l.amount),
                i64::from(l.unpriced),
                l.price.as_ref().map(|p| Num(p.unit_price.normalize())),
                l.price.as_ref().map(|p| i64::from(p.tiered)),
                l.price
                    .as_ref()
                    .map(|p| Num(p.included_quantity.normalize())),
                l.markup_percent.map(|m| Num(m.normalize()))
            ],
        )?;
    }
    for a in &invoice.adjustments {
        conn.execute(
            "INSERT INTO final_invoice_adjustments (subscription_id, period, adjusted_period,
             meter_id, quantity, amount, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                sub,
                period,
                a.period.to_string(),
                a.meter_id.to_string(),
                TotalParam(a.quantity),
                Num(a.amount),
                a.reason.as_str()
            ],
        )?;
    }
    Ok(())
}
