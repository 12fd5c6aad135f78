//! Billing: rate card versions, invoices (drafts computed from today's data or as of an
//! instant, finals read back frozen), finalization and adjustments. The money is computed by
//! the core (`stackbill_core::rating`, `stackbill_core::invoice`); this module gathers the
//! facts it needs from the database and freezes its answers.

mod tally;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::db::{Conn, Num, instant, micros, params, parse};
use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::invoice::{
    Adjustment, AdjustmentReason, Billed, InvoiceLine, Pricing, adjustments, rate_lines, total,
};
use stackbill_core::rating::{MeterRate, RatingError, Tier};
use stackbill_core::routing::RoutingTable;
use stackbill_core::{
    Currency, MeterId, PartnerId, Period, RateCard, RateCardName, Subscription, SubscriptionId,
};

use crate::directory::{Written, load_routing, load_subscriptions};
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::usage::{RecordFilter, load_records};
use crate::values::Refs;
use tally::{PeriodTally, routed_period_usage};

/// Whether an invoice can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// Computed from the data as it is.
    Draft,
    /// Frozen at finalization.
    Final,
}

/// One subscription's invoice for one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The billed subscription.
    pub subscription_id: SubscriptionId,
    /// Who it is billed to.
    pub partner_id: Option<PartnerId>,
    /// The month.
    pub period: Period,
    /// The currency of every amount.
    pub currency: Currency,
    /// Draft or final.
    pub status: InvoiceStatus,
    /// One line per meter with usage.
    pub lines: Vec<InvoiceLine>,
    /// Corrections of earlier final periods.
    pub adjustments: Vec<Adjustment>,
    /// Lines plus adjustments.
    pub total: Decimal,
    /// When it was finalized.
    pub finalized_at: Option<Timestamp>,
}

/// Why billing refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// A period can be finalized only once it has ended.
    #[error("period {period} has not ended yet; it can be finalized from {end} on")]
    PeriodNotEnded {
        /// The period.
        period: Period,
        /// Its end.
        end: Timestamp,
    },
    /// Rating failed (overflow, or an invalid rate card).
    #[error(transparent)]
    Rating(#[from] RatingError),
}

/// The rate cards (or the one named `only`) as recorded by `as_of` (`None`: now).
fn load_rate_cards(
    conn: &Conn<'_>,
    as_of: Option<i64>,
    only: Option<&RateCardName>,
) -> Result<HashMap<RateCardName, RateCard>> {
    let rows: Vec<(i64, String, String)> = conn.query_map(
        "SELECT v.version_id, v.name, v.currency FROM rate_card_versions v
         WHERE (CAST(?2 AS TEXT) IS NULL OR v.name = ?2)
           AND v.version_id = (SELECT max(w.version_id) FROM rate_card_versions w
                               WHERE w.name = v.name
                                 AND (CAST(?1 AS BIGINT) IS NULL OR w.recorded_at <= ?1))",
        params![as_of, only.map(RateCardName::as_str)],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let mut cards = HashMap::new();
    for (version, name, currency) in rows {
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
            name.clone(),
            RateCard {
                name,
                currency: parse(&currency)?,
                rates,
            },
        );
    }
    Ok(cards)
}

/// Final periods: (period, partner scope) → finalized at (micros). The empty scope is all.
fn load_finalized(conn: &Conn<'_>, as_of: Option<i64>) -> Result<BTreeMap<(Period, String), i64>> {
    let rows = conn.query_map(
        "SELECT period, partner_id, finalized_at FROM finalized_periods
         WHERE CAST(?1 AS BIGINT) IS NULL OR finalized_at <= ?1",
        params![as_of],
        |row| Ok(((parse(&row.get::<String>(0)?)?, row.get(1)?), row.get(2)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// When `period` became final for a subscription of `partner`, if it has.
fn final_at(
    finalized: &BTreeMap<(Period, String), i64>,
    period: Period,
    partner: Option<&PartnerId>,
) -> Option<i64> {
    let all = finalized.get(&(period, String::new())).copied();
    let own = partner.and_then(|p| finalized.get(&(period, p.to_string())).copied());
    match (all, own) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn load_final_invoice(
    conn: &Conn<'_>,
    subscription: SubscriptionId,
    period: Period,
) -> Result<Option<Invoice>> {
    let head: Option<(Option<String>, String, Decimal, i64)> = conn.query_opt(
        "SELECT partner_id, currency, total, finalized_at FROM final_invoices
         WHERE subscription_id = ?1 AND period = ?2",
        params![subscription.to_string(), period.to_string()],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    let Some((partner, currency, total, finalized_at)) = head else {
        return Ok(None);
    };
    let lines = conn.query_map(
        "SELECT meter_id, quantity, amount, unpriced FROM final_invoice_lines
         WHERE subscription_id = ?1 AND period = ?2 ORDER BY meter_id",
        params![subscription.to_string(), period.to_string()],
        |row| {
            Ok(InvoiceLine {
                meter_id: parse(&row.get::<String>(0)?)?,
                quantity: row.get(1)?,
                amount: row.get(2)?,
                unpriced: row.get::<i64>(3)? != 0,
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
                reason: match row.get::<String>(4)?.as_str() {
                    "LateUsage" => AdjustmentReason::LateUsage,
                    _ => AdjustmentReason::Reassignment,
                },
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
        finalized_at: Some(instant(finalized_at)?),
    }))
}

/// What was billed so far for each (subscription, meter) of a final period: final lines
/// plus adjustments frozen on later final invoices.
fn billed_for(
    conn: &Conn<'_>,
    period: Period,
    as_of: Option<i64>,
) -> Result<HashMap<SubscriptionId, BTreeMap<MeterId, Billed>>> {
    let mut billed: HashMap<SubscriptionId, BTreeMap<MeterId, Billed>> = HashMap::new();
    let mut add = |row: &crate::db::Row<'_>| -> Result<()> {
        let entry = billed
            .entry(parse(&row.get::<String>(0)?)?)
            .or_default()
            .entry(parse(&row.get::<String>(1)?)?)
            .or_default();
        entry.quantity += row.get::<Decimal>(2)?;
        entry.amount += row.get::<Decimal>(3)?;
        Ok(())
    };
    conn.query_each(
        "SELECT l.subscription_id, l.meter_id, l.quantity, l.amount FROM final_invoice_lines l
         JOIN final_invoices f ON f.subscription_id = l.subscription_id AND f.period = l.period
         WHERE l.period = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR f.finalized_at <= ?2)",
        params![period.to_string(), as_of],
        &mut add,
    )?;
    conn.query_each(
        "SELECT a.subscription_id, a.meter_id, a.quantity, a.amount FROM final_invoice_adjustments a
         JOIN final_invoices f ON f.subscription_id = a.subscription_id AND f.period = a.period
         WHERE a.adjusted_period = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR f.finalized_at <= ?2)",
        params![period.to_string(), as_of],
        &mut add,
    )?;
    Ok(billed)
}

/// The data an invoice computation reads, as of an instant (`None`: as it is now).
struct Facts {
    as_of: Option<i64>,
    subscriptions: HashMap<SubscriptionId, Subscription>,
    cards: HashMap<RateCardName, RateCard>,
    routing: RoutingTable,
    finalized: BTreeMap<(Period, String), i64>,
}

impl Facts {
    fn load(conn: &Conn<'_>, as_of: Option<i64>) -> Result<Self> {
        let as_of_instant = as_of.map(instant).transpose()?;
        Ok(Self {
            as_of,
            subscriptions: load_subscriptions(conn)?
                .into_iter()
                .map(|s| (s.id, s))
                .collect(),
            cards: load_rate_cards(conn, as_of, None)?,
            routing: load_routing(conn, as_of_instant)?,
            finalized: load_finalized(conn, as_of)?,
        })
    }

    fn pricing(&self, subscription: &Subscription) -> Pricing<'_> {
        Pricing {
            card: self.cards.get(&subscription.rate_card),
            markup_percent: subscription.markup_percent,
        }
    }

    fn partner_of(&self, subscription: SubscriptionId) -> Option<&PartnerId> {
        self.subscriptions
            .get(&subscription)
            .and_then(|s| s.partner_id.as_ref())
    }

    /// The earliest period after `period` that is not final for `partner`.
    fn next_open(&self, period: Period, partner: Option<&PartnerId>) -> Period {
        let mut next = period.next();
        while final_at(&self.finalized, next, partner).is_some() {
            next = next.next();
        }
        next
    }

    fn rate(
        &self,
        subscription: SubscriptionId,
        period: Period,
        quantities: &BTreeMap<MeterId, Decimal>,
    ) -> Result<BTreeMap<MeterId, InvoiceLine>, BillingError> {
        let pricing = match self.subscriptions.get(&subscription) {
            Some(s) => self.pricing(s),
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

/// Drafts of `period` for every subscription not final in it (optionally one partner's):
/// today's lines plus adjustments of final periods whose next open period this is.
fn draft_invoices(
    conn: &Conn<'_>,
    facts: &Facts,
    period: Period,
    partner: Option<&PartnerId>,
) -> Result<Vec<Invoice>> {
    let in_scope = |sub: SubscriptionId| {
        partner.is_none_or(|p| facts.partner_of(sub) == Some(p))
            && final_at(&facts.finalized, period, facts.partner_of(sub)).is_none()
    };
    let usage = routed_period_usage(conn, period, &facts.routing, facts.as_of)?;
    let mut drafts: BTreeMap<SubscriptionId, (Vec<InvoiceLine>, Vec<Adjustment>)> = BTreeMap::new();
    for (sub, quantities) in &usage {
        if in_scope(*sub) {
            let lines = facts.rate(*sub, period, quantities).map_err(billing)?;
            drafts.entry(*sub).or_default().0 = lines.into_values().collect();
        }
    }
    // Final periods before this one whose next open period, for some partner, is this one:
    // only those can owe adjustments to this draft, so only those are read.
    let scopes: BTreeSet<Option<&PartnerId>> = std::iter::once(None)
        .chain(facts.subscriptions.values().map(|s| s.partner_id.as_ref()))
        .collect();
    let earlier: BTreeSet<Period> = facts
        .finalized
        .keys()
        .map(|(p, _)| *p)
        .filter(|p| *p < period)
        .filter(|p| {
            scopes.iter().any(|&scope| {
                final_at(&facts.finalized, *p, scope).is_some()
                    && facts.next_open(*p, scope) == period
            })
        })
        .collect();
    let refs = Refs::load(conn)?;
    for final_period in earlier {
        // Today's data, and each finalization's records re-routed by today's registrations:
        // the same month's totals, less the records accepted after that finalization.
        let mut today_tally = PeriodTally::all(conn, &refs, final_period, &facts.routing)?;
        if let Some(as_of) = facts.as_of {
            today_tally.remove_accepted(conn, &refs, &facts.routing, as_of, None)?;
        }
        let today = today_tally.quantities();
        let billed = billed_for(conn, final_period, facts.as_of)?;
        let mut subscriptions: BTreeSet<SubscriptionId> = today.keys().copied().collect();
        subscriptions.extend(billed.keys().copied());
        let mut rerouted_cache: HashMap<i64, BTreeMap<SubscriptionId, BTreeMap<MeterId, Decimal>>> =
            HashMap::new();
        for sub in subscriptions {
            let owner = facts.partner_of(sub);
            let Some(finalized_at) = final_at(&facts.finalized, final_period, owner) else {
                continue;
            };
            if !in_scope(sub) || facts.next_open(final_period, owner) != period {
                continue;
            }
            let rerouted_usage = match rerouted_cache.get(&finalized_at) {
                Some(usage) => usage,
                None => {
                    let mut known = today_tally.clone();
                    known.remove_accepted(
                        conn,
                        &refs,
                        &facts.routing,
                        finalized_at,
                        facts.as_of,
                    )?;
                    rerouted_cache
                        .entry(finalized_at)
                        .or_insert(known.quantities())
                }
            };
            let empty = BTreeMap::new();
            let rerouted = facts
                .rate(
                    sub,
                    final_period,
                    rerouted_usage.get(&sub).unwrap_or(&empty),
                )
                .map_err(billing)?;
            let now = facts
                .rate(sub, final_period, today.get(&sub).unwrap_or(&empty))
                .map_err(billing)?;
            let currency = facts
                .subscriptions
                .get(&sub)
                .map_or(Currency::USD, |s| facts.pricing(s).currency());
            let found = adjustments(
                final_period,
                currency,
                billed.get(&sub).unwrap_or(&BTreeMap::new()),
                &rerouted,
                &now,
            );
            if !found.is_empty() {
                drafts.entry(sub).or_default().1.extend(found);
            }
        }
    }
    Ok(drafts
        .into_iter()
        .map(|(sub, (lines, adjustments))| {
            let subscription = facts.subscriptions.get(&sub);
            let currency = subscription.map_or(Currency::USD, |s| facts.pricing(s).currency());
            Invoice {
                subscription_id: sub,
                partner_id: subscription.and_then(|s| s.partner_id.clone()),
                period,
                currency,
                status: InvoiceStatus::Draft,
                total: total(&lines, &adjustments),
                lines,
                adjustments,
                finalized_at: None,
            }
        })
        .collect())
}

fn billing(error: BillingError) -> StoreError {
    StoreError::Billing(error)
}

/// Every invoice of `period` (finals frozen, drafts computed), optionally one partner's.
fn invoices_of(
    conn: &Conn<'_>,
    period: Period,
    partner: Option<&PartnerId>,
    as_of: Option<i64>,
) -> Result<Vec<Invoice>> {
    let facts = Facts::load(conn, as_of)?;
    let mut invoices = draft_invoices(conn, &facts, period, partner)?;
    let finals: Vec<String> = conn.query_map(
        "SELECT subscription_id FROM final_invoices WHERE period = ?1
           AND (CAST(?2 AS BIGINT) IS NULL OR finalized_at <= ?2)
         ORDER BY subscription_id",
        params![period.to_string(), as_of],
        |row| row.get(0),
    )?;
    for sub in finals {
        let sub: SubscriptionId = parse(&sub)?;
        if partner.is_some_and(|p| facts.partner_of(sub) != Some(p)) {
            continue;
        }
        if let Some(invoice) = load_final_invoice(conn, sub, period)? {
            invoices.push(invoice);
        }
    }
    invoices.sort_by_key(|i| i.subscription_id);
    Ok(invoices)
}

impl Store {
    /// Stores a new version of a rate card; the latest version recorded is current.
    pub async fn put_rate_card(&self, card: RateCard) -> Result<Written> {
        self.write(move |tx, now| {
            let existed = tx.exists(
                "SELECT 1 FROM rate_card_versions WHERE name = ?1 LIMIT 1",
                params![card.name.as_str()],
            )?;
            let version: i64 = tx.query_one(
                "INSERT INTO rate_card_versions (name, currency, recorded_at)
                 VALUES (?1, ?2, ?3) RETURNING version_id",
                params![card.name.as_str(), card.currency.code(), micros(now)],
                |row| row.get(0),
            )?;
            for rate in &card.rates {
                for tier in rate.tiers() {
                    tx.execute(
                        "INSERT INTO rate_card_tiers (version_id, meter_id, effective_date,
                         included_quantity, from_quantity, unit_price)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            version,
                            rate.meter_id.to_string(),
                            micros(rate.effective_date),
                            Num(rate.included_quantity.normalize()),
                            Num(tier.from_quantity.normalize()),
                            Num(tier.unit_price.normalize()),
                        ],
                    )?;
                }
            }
            Ok(if existed {
                Written::Updated
            } else {
                Written::Created
            })
        })
        .await
    }

    /// A rate card as it is now, or as it was recorded by `as_of`.
    pub async fn rate_card(
        &self,
        name: RateCardName,
        as_of: Option<Timestamp>,
    ) -> Result<Option<RateCard>> {
        self.read(move |conn| {
            Ok(load_rate_cards(conn, as_of.map(micros), Some(&name))?.remove(&name))
        })
        .await
    }

    /// Every invoice of a period, optionally one partner's, now or as of an instant.
    pub async fn invoices(
        &self,
        period: Period,
        partner: Option<PartnerId>,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Invoice>> {
        self.read(move |conn| invoices_of(conn, period, partner.as_ref(), as_of.map(micros)))
            .await
    }

    /// One subscription's invoice of a period, if it has one.
    pub async fn invoice(
        &self,
        subscription: SubscriptionId,
        period: Period,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Invoice>> {
        let as_of = as_of.map(micros);
        self.read(move |conn| {
            if let Some(invoice) = load_final_invoice(conn, subscription, period)?
                && as_of.is_none_or(|t| invoice.finalized_at.is_some_and(|f| micros(f) <= t))
            {
                return Ok(Some(invoice));
            }
            let facts = Facts::load(conn, as_of)?;
            let partner = facts.partner_of(subscription).cloned();
            Ok(draft_invoices(conn, &facts, period, partner.as_ref())?
                .into_iter()
                .find(|i| i.subscription_id == subscription))
        })
        .await
    }

    /// The raw records behind an invoice (optionally one meter's line): the records of the
    /// period accepted by `accepted_by` and routed to the subscription by the registrations as
    /// recorded by `routed_as_of` (`None`: now). With both instants equal, their quantities add
    /// up to the line's as of that instant.
    pub async fn invoice_records(
        &self,
        subscription: SubscriptionId,
        period: Period,
        meter: Option<MeterId>,
        routed_as_of: Option<Timestamp>,
        accepted_by: Option<Timestamp>,
    ) -> Result<Vec<stackbill_core::UsageRecord>> {
        self.read(move |conn| {
            let routing = load_routing(conn, routed_as_of)?;
            let (from_hour, to_hour) = period.hours();
            let filter = RecordFilter {
                meter,
                routed_to: Some((subscription, &routing)),
                accepted_by: accepted_by.map(micros),
                reported: None,
            };
            load_records(conn, from_hour, to_hour, &filter)
        })
        .await
    }

    /// Freezes the invoices of `period` (optionally one partner's). Repeating it changes
    /// nothing; the answer is the final invoices.
    pub async fn finalize_period(
        &self,
        period: Period,
        partner: Option<PartnerId>,
    ) -> Result<Vec<Invoice>> {
        self.write(move |tx, now| {
            if now < period.end() {
                return Err(StoreError::Billing(BillingError::PeriodNotEnded {
                    period,
                    end: period.end(),
                }));
            }
            let scope = partner
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let already = tx.exists(
                "SELECT 1 FROM finalized_periods WHERE period = ?1 AND partner_id = ?2",
                params![period.to_string(), scope],
            )?;
            if !already {
                let facts = Facts::load(tx, None)?;
                for invoice in draft_invoices(tx, &facts, period, partner.as_ref())? {
                    write_final(tx, &invoice, now)?;
                }
                tx.execute(
                    "INSERT INTO finalized_periods (period, partner_id, finalized_at)
                     VALUES (?1, ?2, ?3)",
                    params![period.to_string(), scope, micros(now)],
                )?;
            }
            invoices_of(tx, period, partner.as_ref(), None).map(|all| {
                all.into_iter()
                    .filter(|i| i.status == InvoiceStatus::Final)
                    .collect()
            })
        })
        .await
    }
}

fn write_final(conn: &Conn<'_>, invoice: &Invoice, now: Timestamp) -> Result<()> {
    let sub = invoice.subscription_id.to_string();
    let period = invoice.period.to_string();
    conn.execute(
        "INSERT INTO final_invoices (subscription_id, period, partner_id, currency, total,
         finalized_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            sub,
            period,
            invoice.partner_id.as_ref().map(PartnerId::as_str),
            invoice.currency.code(),
            Num(invoice.total),
            micros(now)
        ],
    )?;
    for l in &invoice.lines {
        conn.execute(
            "INSERT INTO final_invoice_lines (subscription_id, period, meter_id, quantity,
             amount, unpriced)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                sub,
                period,
                l.meter_id.to_string(),
                Num(l.quantity),
                Num(l.amount),
                i64::from(l.unpriced)
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
                Num(a.quantity),
                Num(a.amount),
                a.reason.as_str()
            ],
        )?;
    }
    Ok(())
}
