//! The customers pages: subscriptions found by tenant id, subscription id or display name, and
//! one subscription with the stacks that bill to it, its usage per day and its invoices.

#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use stackbill_api::AppState;
use stackbill_api::billing::InvoiceNames;
use stackbill_core::{Period, SubscriptionId};
use stackbill_store::UsageScope;

use crate::chart::DailyUsage;
use crate::frame::{
    Layout, error_page, partner_text, refusal, render, scope, signed_in, store_failure,
};

/// At most this many subscriptions are listed.
const SHOWN: usize = 200;
/// Months of invoices a customer page lists.
const MONTHS: usize = 6;

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

/// A subscription found.
pub(crate) struct CustomerRow {
    name: String,
    subscription: String,
    offer: String,
    tenant: String,
    partner: String,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    layout: Layout,
    query: String,
    rows: Vec<CustomerRow>,
}

/// `GET /customers?q=`: the subscriptions whose id, customer directory or display name
/// contains the query (any case).
pub(crate) async fn customers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let page = async {
        let scope = scope(&session)?;
        let failure = |error| store_failure(&session, error);
        let names = InvoiceNames::load(&state.store).await.map_err(failure)?;
        let needle = query.q.unwrap_or_default().trim().to_owned();
        let lower = needle.to_lowercase();
        let rows = (state.store.subscriptions(scope).await)
            .map_err(failure)?
            .into_iter()
            .filter(|s| {
                lower.is_empty()
                    || s.id.to_string().contains(&lower)
                    || s.display_name.to_lowercase().contains(&lower)
                    || s.customer_tenant_id
                        .is_some_and(|t| t.to_string().contains(&lower))
            })
            .take(SHOWN)
            .map(|s| CustomerRow {
                name: s.display_name.clone(),
                subscription: s.id.to_string(),
                offer: s.offer_type.to_string(),
                tenant: s
                    .customer_tenant_id
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                partner: partner_text(&names, s.partner_id.as_ref()),
            })
            .collect();
        Ok::<_, Response>(CustomersPage {
            layout: Layout::new(Some(&session)),
            query: needle,
            rows,
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}

/// A stack billing a tenant to the subscription.
pub(crate) struct MappingRow {
    registration: String,
    tenant: String,
    from: String,
}

/// One month's invoice.
pub(crate) struct InvoiceRow {
    period: String,
    status: &'static str,
    lines: usize,
    adjustments: usize,
    total: String,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    layout: Layout,
    name: String,
    subscription: String,
    offer: String,
    tenant: String,
    partner: String,
    rate_card: String,
    markup: String,
    mappings: Vec<MappingRow>,
    period: Period,
    usage_json: String,
    invoices: Vec<InvoiceRow>,
    months: usize,
}

/// `GET /customers/{subscription}`: another partner's subscription is missing here too.
pub(crate) async fn customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(subscription): Path<String>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let missing = || {
        error_page(
            Some(&session),
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no subscription {subscription}."),
        )
    };
    let Ok(id) = subscription.parse::<SubscriptionId>() else {
        return missing();
    };
    if let Err(error) =
        stackbill_api::access::check_subscription(&state.store, &session.caller, id).await
    {
        return refusal(&session, error);
    }
    let page = async {
        let failure = |error| store_failure(&session, error);
        let found = state.store.subscription(id).await.map_err(failure)?;
        let Some(found) = found else {
            return Err(missing());
        };
        let names = InvoiceNames::load(&state.store).await.map_err(failure)?;
        let scope = scope(&session)?;
        let mut mappings = Vec::new();
        for registration in state.store.registrations(scope).await.map_err(failure)? {
            let mapped = (state.store)
                .customer_subscriptions(registration.name.clone(), None)
                .await
                .map_err(failure)?;
            mappings.extend(
                mapped
                    .into_iter()
                    .filter(|m| m.subscription == id)
                    .map(|m| MappingRow {
                        registration: m.registration.to_string(),
                        tenant: m.tenant_id.to_string(),
                        from: m.effective_from.to_string(),
                    }),
            );
        }
        let now = state.store.now();
        let period = Period::containing(now);
        let mut usage = DailyUsage::new(period, now);
        let (first, end) = usage.hours();
        usage.add(
            (state.store)
                .usage_aggregates(UsageScope::Subscription(id), first, end, 24)
                .await
                .map_err(failure)?,
        );
        let mut invoices = Vec::new();
        let mut month = period;
        for _ in 0..MONTHS {
            if let Some(invoice) = state
                .store
                .invoice(id, month, None)
                .await
                .map_err(failure)?
            {
                invoices.push(InvoiceRow {
                    period: month.to_string(),
                    status: match invoice.status {
                        stackbill_store::InvoiceStatus::Draft => "draft",
                        stackbill_store::InvoiceStatus::Final => "final",
                    },
                    lines: invoice.lines.len(),
                    adjustments: invoice.adjustments.len(),
                    total: format!("{} {}", invoice.total, invoice.currency),
                });
            }
            month = month.previous();
        }
        Ok::<_, Response>(CustomerPage {
            layout: Layout::new(Some(&session)),
            name: if found.display_name.is_empty() {
                found.id.to_string()
            } else {
                found.display_name.clone()
            },
            subscription: found.id.to_string(),
            offer: found.offer_type.to_string(),
            tenant: found
                .customer_tenant_id
                .map(|t| t.to_string())
                .unwrap_or_default(),
            partner: found
                .partner_id
                .as_ref()
                .map(|p| partner_text(&names, Some(p)))
                .unwrap_or_default(),
            rate_card: found.rate_card.to_string(),
            markup: found.markup_percent.normalize().to_string(),
            mappings,
            period,
            usage_json: usage.json(&names),
            invoices,
            months: MONTHS,
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}

/// One of the partner's stacks, as the customer's tenant is billed on it.
pub(crate) struct StatusRow {
    registration: String,
    billed_to: String,
    since: String,
}

#[derive(Template)]
#[template(path = "registration.html")]
struct RegistrationPage {
    layout: Layout,
    partner: String,
    tenant: String,
    rows: Vec<StatusRow>,
}

/// A customer's overview (SPEC §7): on each of its partner's stacks, whether its tenant is
/// billed to its own subscription or to the stack's default one; never usage or amounts.
pub(crate) async fn registration_status(
    state: &AppState,
    session: &crate::session::Session,
    partner: &stackbill_core::PartnerId,
    tenant: stackbill_core::TenantId,
) -> Response {
    let page = async {
        let failure = |error| store_failure(session, error);
        let mut rows = Vec::new();
        for registration in
            (state.store.registrations(Some(partner.clone())).await).map_err(failure)?
        {
            let mapping = (state.store)
                .customer_subscriptions(registration.name.clone(), None)
                .await
                .map_err(failure)?
                .into_iter()
                .find(|m| m.tenant_id == tenant);
            rows.push(match mapping {
                Some(m) => StatusRow {
                    registration: registration.name.to_string(),
                    billed_to: format!("your subscription {}", m.subscription),
                    since: m.effective_from.to_string(),
                },
                None => StatusRow {
                    registration: registration.name.to_string(),
                    billed_to: "the partner's default subscription (not registered)".to_owned(),
                    since: String::new(),
                },
            });
        }
        Ok::<_, Response>(RegistrationPage {
            layout: Layout::new(Some(session)),
            partner: partner.to_string(),
            tenant: tenant.to_string(),
            rows,
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}
