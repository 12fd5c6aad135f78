//! Drafts: today's lines of every subscription not final in a period, plus the adjustments
//! that bring earlier final periods in line with today's data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use stackbill_core::invoice::{Adjustment, InvoiceLine, PeriodRatings, adjustments, total};
use stackbill_core::profile::InvoiceTax;
use stackbill_core::total::Total;
use stackbill_core::{BillingError, MeterId, PartnerId, Period, SubscriptionId};

use super::facts::{Facts, PriceList, billed_for, load_final_invoice};
use super::tally::{PeriodTally, routed_period_usage};
use super::{Invoice, InvoiceStatus};
use crate::db::{Conn, micros, params, parse};
use crate::error::{Result, StoreError};
use crate::values::Refs;

/// The drafts of a period, and the subscriptions whose invoice cannot be computed (an
/// amount beyond what an invoice holds): one subscription's failure never hides another's
/// invoice.
#[derive(Debug, Default)]
pub(super) struct Drafts {
    pub(super) invoices: Vec<Invoice>,
    pub(super) failed: BTreeMap<SubscriptionId, BillingError>,
}

impl Drafts {
    /// Every invoice, or the first failure (for finalization, which must freeze them all).
    pub(super) fn all(self) -> Result<Vec<Invoice>> {
        match self.failed.into_iter().next() {
            Some((subscription, error)) => Err(failure(subscription, error)),
            None => Ok(self.invoices),
        }
    }
}

/// A subscription's billing failure, naming it.
pub(super) fn failure(subscription: SubscriptionId, error: BillingError) -> StoreError {
    StoreError::Billing(BillingError::Subscription {
        subscription,
        error: Box::new(error),
    })
}

/// Drafts of `period` for every subscription not final in it (optionally one partner's):
/// today's lines plus adjustments of final periods whose next open period this is.
pub(super) fn draft_invoices(
    conn: &Conn<'_>,
    facts: &Facts,
    period: Period,
    partner: Option<&PartnerId>,
) -> Result<Drafts> {
    let mut failed: BTreeMap<SubscriptionId, BillingError> = BTreeMap::new();
    let in_scope = |sub: SubscriptionId| {
        partner.is_none_or(|p| facts.partner_of(sub) == Some(p))
            && facts
                .finalized
                .final_at(period, facts.partner_of(sub))
                .is_none()
    };
    let usage = routed_period_usage(conn, period, &facts.routing, facts.as_of)?;
    let mut drafts: BTreeMap<SubscriptionId, (Vec<InvoiceLine>, Vec<Adjustment>)> = BTreeMap::new();
    for (sub, quantities) in &usage {
        if in_scope(*sub) {
            match facts.rate(*sub, period, quantities) {
                Ok(lines) => drafts.entry(*sub).or_default().0 = lines.into_values().collect(),
                Err(error) => {
                    failed.entry(*sub).or_insert(error);
                }
            }
        }
    }
    let partners = facts.subscriptions.values().map(|s| s.partner_id.as_ref());
    let earlier = facts.finalized.owing_adjustments(period, partners);
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
        let mut rerouted_cache: HashMap<i64, BTreeMap<SubscriptionId, BTreeMap<MeterId, Total>>> =
            HashMap::new();
        let mut prices_cache: HashMap<i64, PriceList> = HashMap::new();
        for sub in subscriptions {
            let owner = facts.partner_of(sub);
            let Some(finalized_at) = facts.finalized.owes(final_period, period, owner) else {
                continue;
            };
            if !in_scope(sub) {
                continue;
            }
            let finalized_at = micros(finalized_at);
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
            let known = rerouted_usage.get(&sub).unwrap_or(&empty);
            // The prices as they stood when the period was finalized.
            let then = match prices_cache.entry(finalized_at) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(PriceList::load(conn, Some(finalized_at))?)
                }
            };
            let then = &*then;
            let subscription = facts.subscriptions.get(&sub);
            let today_usage = today.get(&sub).unwrap_or(&empty);
            let rated = (|| -> std::result::Result<Vec<Adjustment>, BillingError> {
                let repriced = facts.rate(sub, final_period, known)?;
                // A subscription made after the finalization had no pricing then: nothing of
                // its pricing changed since.
                let rerouted = if then.prices(sub) {
                    then.rate(subscription, final_period, known)?
                } else {
                    repriced.clone()
                };
                let now = facts.rate(sub, final_period, today_usage)?;
                let nothing_billed = BTreeMap::new();
                let ratings = PeriodRatings {
                    billed: billed.get(&sub).unwrap_or(&nothing_billed),
                    rerouted: &rerouted,
                    repriced: &repriced,
                    today: &now,
                };
                Ok(adjustments(
                    final_period,
                    facts.currency(sub, final_period),
                    ratings,
                )?)
            })();
            let found = match rated {
                Ok(found) => found,
                Err(error) => {
                    failed.entry(sub).or_insert(error);
                    continue;
                }
            };
            if !found.is_empty() {
                drafts.entry(sub).or_default().1.extend(found);
            }
        }
    }
    let mut invoices = Vec::new();
    let tax_rates = crate::profiles::tax_rates(conn, facts.as_of)?;
    for (sub, (lines, adjustments)) in drafts {
        if failed.contains_key(&sub) {
            continue;
        }
        let total = match total(&lines, &adjustments) {
            Ok(total) => total,
            Err(error) => {
                failed.insert(sub, error.into());
                continue;
            }
        };
        let currency = facts.currency(sub, period);
        let tax = match (tax_rates.get(&sub.to_string()))
            .map(|rate| InvoiceTax::on(total, *rate, currency))
            .transpose()
        {
            Ok(tax) => tax,
            Err(error) => {
                failed.insert(sub, error.into());
                continue;
            }
        };
        let subscription = facts.subscriptions.get(&sub);
        invoices.push(Invoice {
            subscription_id: sub,
            partner_id: subscription.and_then(|s| s.partner_id.clone()),
            period,
            currency,
            status: InvoiceStatus::Draft,
            total,
            tax,
            number: None,
            lines,
            adjustments,
            finalized_at: None,
        });
    }
    Ok(Drafts { invoices, failed })
}

/// Every invoice of `period` (finals frozen, drafts computed), optionally one partner's.
pub(super) fn invoices_of(
    conn: &Conn<'_>,
    period: Period,
    partner: Option<&PartnerId>,
    as_of: Option<i64>,
) -> Result<Drafts> {
    let facts = Facts::load(conn, as_of)?;
    let Drafts {
        mut invoices,
        failed,
    } = draft_invoices(conn, &facts, period, partner)?;
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
    Ok(Drafts { invoices, failed })
}
