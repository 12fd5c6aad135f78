//! How the collectors fare, for `/metrics` (gauges per registration) and `/healthz` (the
//! lagging ones). A leaf module: the routes that report it depend on it, not on each other.

/// Closed hours a collector may lag before `/healthz` names it.
const LAGGING_HOURS: i64 = 3;

/// The collectors' state as gauges, labelled by registration (one series per configured
/// stack), set when `/metrics` is read.
pub(crate) async fn record_gauges(store: &stackbill_store::Store) {
    let Ok(collectors) = store.collectors().await else {
        return;
    };
    let now = store.now();
    for state in collectors {
        let registration = state.config.registration.to_string();
        if let Some(lag) = state.lag_hours(now) {
            metrics::gauge!(crate::telemetry::COLLECTOR_LAG_HOURS, "registration" => registration.clone())
                .set(lag as f64);
        }
        if let Some(at) = state.last_success {
            metrics::gauge!(crate::telemetry::COLLECTOR_LAST_SUCCESS, "registration" => registration.clone())
                .set(at.as_second() as f64);
        }
        metrics::gauge!(crate::telemetry::COLLECTOR_FAILING, "registration" => registration.clone())
            .set(if state.last_error.is_some() { 1.0 } else { 0.0 });
        metrics::gauge!(crate::telemetry::COLLECTOR_HELD_ROWS, "registration" => registration)
            .set(state.held as f64);
    }
}

/// The collectors `/healthz` names: failing, or more than a few hours behind.
pub(crate) async fn lagging(store: &stackbill_store::Store) -> Vec<serde_json::Value> {
    let Ok(collectors) = store.collectors().await else {
        return Vec::new();
    };
    let now = store.now();
    collectors
        .into_iter()
        .filter_map(|state| {
            let lag = state.lag_hours(now);
            let behind = lag.is_none_or(|lag| lag > LAGGING_HOURS);
            (behind || state.last_error.is_some()).then(|| {
                serde_json::json!({
                    "registration": state.config.registration.to_string(),
                    "lagHours": lag,
                    "lastError": state.last_error.map(|(_, code, _)| code),
                })
            })
        })
        .collect()
}
