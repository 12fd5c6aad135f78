//! The OpenAPI description of the native API, generated from the handlers' annotations and
//! the wire types, served at `GET /openapi.json`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorDetail, ErrorResponse};
use crate::{
    billing, collectors, diff, margin, profiles, ratecards, reconciliation, registrations, routes,
    tokens, usage, webhooks,
};

/// Declares the bearer token scheme every `/v1` route uses.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The native `/v1` API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stackbill",
        description = "Usage metering and billing for multi-tenant Azure Stack Hub clouds run by Cloud Solution Providers. Errors use the ARM envelope {\"error\":{\"code\",\"message\",\"target\"}}; lists are {\"value\":[...],\"nextLink\"}."
    ),
    paths(
        routes::put_partner,
        routes::get_partner,
        routes::list_partners,
        routes::put_subscription,
        routes::get_subscription,
        routes::list_subscriptions,
        profiles::get_partner_profile,
        profiles::put_partner_profile,
        profiles::get_subscription_profile,
        profiles::put_subscription_profile,
        registrations::put_registration,
        registrations::get_registration,
        registrations::list_registrations,
        registrations::delete_registration,
        registrations::registration_history,
        registrations::put_customer_subscription,
        registrations::get_customer_subscription,
        registrations::list_customer_subscriptions,
        registrations::delete_customer_subscription,
        collectors::get_collector,
        collectors::put_collector,
        collectors::delete_collector,
        routes::put_meter,
        routes::get_meter,
        routes::list_meters,
        usage::post_usage,
        usage::get_aggregates,
        ratecards::put_rate_card,
        ratecards::get_rate_card,
        billing::list_invoices,
        billing::get_invoice,
        billing::invoice_records,
        diff::invoice_diff,
        billing::finalize,
        reconciliation::get_reconciliation,
        margin::get_margin,
        margin::get_partner_cost,
        margin::put_partner_cost,
        margin::get_registration_cost,
        margin::put_registration_cost,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::put_webhook,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
        webhooks::replay_delivery,
        tokens::create_token,
        tokens::list_tokens,
        tokens::revoke_token,
    ),
    components(schemas(ErrorResponse, ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
