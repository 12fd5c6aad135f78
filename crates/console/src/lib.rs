//! The operator console served by `stackbill serve` at `/`: server-rendered HTML over the same
//! store, and the same authorization, as the API.
//!
//! Sign-in takes an API token (admin, partner or customer) and keeps it in a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS); every page resolves it to its
//! [`Caller`] again, so a revoked token signs out at once, and every page asks the API's
//! access rules (a partner never sees another's objects: they answer as missing). Every form
//! carries a CSRF token derived from the session (the sign-in form: from a cookie of its own)
//! and a POST without it is refused. The one stylesheet is embedded, served under its hash
//! and linked with its SRI hash; pages work without JavaScript.

mod assets;
mod chart;
mod customers;
mod diff;
mod frame;
mod invoices;
mod margin;
mod overview;
mod ratecards;
mod session;
mod signin;
mod stacks;
mod webhooks;

use axum::Router;
use axum::routing::{get, post};
use stackbill_api::AppState;

pub use session::SESSION_COOKIE;

/// The console's routes, to merge into the API's router (`stackbill_api::router_with`).
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::overview))
        .route("/login", get(signin::login_form).post(signin::login))
        .route("/logout", post(signin::logout))
        .route("/invoices", get(invoices::invoices))
        .route("/invoices/{subscription}/{period}", get(invoices::invoice))
        .route(
            "/invoices/{subscription}/{period}/csv",
            get(invoices::invoice_csv),
        )
        .route(
            "/invoices/{subscription}/{period}/pdf",
            get(invoices::invoice_pdf),
        )
        .route(
            "/invoices/{subscription}/{period}/records",
            get(invoices::records),
        )
        .route("/invoices/{subscription}/{period}/diff", get(diff::diff))
        .route(
            "/finalize",
            get(invoices::finalize_form).post(invoices::finalize),
        )
        .route("/customers", get(customers::customers))
        .route("/customers/{subscription}", get(customers::customer))
        .route("/ratecards", get(ratecards::cards))
        .route("/ratecards/{owner}/{name}", get(ratecards::card))
        .route("/ratecards/{owner}/{name}/csv", get(ratecards::csv))
        .route(
            "/ratecards/{owner}/{name}/price",
            post(ratecards::set_price),
        )
        .route("/ratecards/{owner}/{name}/upload", post(ratecards::upload))
        .route("/stacks", get(stacks::stacks))
        .route("/stacks/{name}", get(stacks::stack))
        .route("/stacks/{name}/map", post(stacks::map))
        .route("/stacks/{name}/end", post(stacks::end))
        .route("/reports/margin", get(margin::margin))
        .route("/reports/margin/csv", get(margin::margin_csv_file))
        .route("/webhooks", get(webhooks::webhooks).post(webhooks::add))
        .route("/webhooks/{id}", get(webhooks::webhook))
        .route("/webhooks/{id}/replay", post(webhooks::replay))
        .route("/webhooks/{id}/enabled", post(webhooks::enabled))
        .route("/assets/{file}", get(assets::asset))
}
