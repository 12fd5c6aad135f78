//! Rows of the directory tables made into the core's types, and the loaders the store's
//! reads and writes share (a subscription, the registrations, their timelines, routing).

use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::routing::RoutingTable;
use stackbill_core::{
    CloudId, MappingEvent, Meter, MeterId, Registration, RegistrationName, RegistryError,
    Subscription, SubscriptionId, Timeline,
};

use super::{AzureRegistration, CustomerSubscription};
use crate::db::{Conn, Row, instant, micros, params, parse, parse_opt};
use crate::error::{Result, StoreError};

pub(super) const SUBSCRIPTION_COLUMNS: &str = "subscription_id, offer_type, partner_id, customer_tenant_id, display_name, rate_card, markup_percent";

pub(super) fn subscription_from_row(row: &Row<'_>) -> Result<Subscription> {
    Ok(Subscription {
        id: parse(&row.get::<String>(0)?)?,
        offer_type: parse(&row.get::<String>(1)?)?,
        partner_id: parse_opt(row.get::<Option<String>>(2)?.as_deref())?,
        customer_tenant_id: parse_opt(row.get::<Option<String>>(3)?.as_deref())?,
        display_name: row.get(4)?,
        rate_card: parse(&row.get::<String>(5)?)?,
        markup_percent: row.get::<Decimal>(6)?,
    })
}

pub(crate) fn load_subscription(
    conn: &Conn<'_>,
    id: SubscriptionId,
) -> Result<Option<Subscription>> {
    let sql =
        format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE subscription_id = ?1");
    conn.query_opt(&sql, params![id.to_string()], subscription_from_row)
}

/// How many columns [`REGISTRATION_COLUMNS`] names.
pub(super) const REGISTRATION_COLUMN_COUNT: usize = 5;
pub(super) const REGISTRATION_COLUMNS: &str =
    "registration_id, name, cloud_id, default_subscription_id, billing_model";

pub(super) fn registration_from_row(row: &Row<'_>) -> Result<(i64, Registration)> {
    Ok((
        row.get(0)?,
        Registration {
            name: parse(&row.get::<String>(1)?)?,
            cloud_id: parse(&row.get::<String>(2)?)?,
            default_subscription: parse(&row.get::<String>(3)?)?,
            billing_model: parse(&row.get::<String>(4)?)?,
        },
    ))
}

/// The Azure-side fields of a registration row, from column `first` on.
pub(super) fn azure_from_row(row: &Row<'_>, first: usize) -> Result<AzureRegistration> {
    Ok(AzureRegistration {
        resource_group: row.get(first)?,
        object_id: row.get(first + 1)?,
        tags: row.get(first + 2)?,
    })
}

/// The live registrations where `condition` holds for `value`, by name, with their
/// Azure-side fields.
pub(super) fn load_azure_registrations(
    conn: &Conn<'_>,
    condition: &str,
    value: &str,
) -> Result<Vec<(Registration, AzureRegistration)>> {
    let sql = format!(
        "SELECT {REGISTRATION_COLUMNS}, azure_resource_group, azure_object_id, azure_tags
         FROM registrations WHERE deleted_at IS NULL AND {condition} ORDER BY lower(name)"
    );
    conn.query_map(&sql, params![value], |row| {
        Ok((registration_from_row(row)?.1, azure_from_row(row, 5)?))
    })
}

pub(super) fn load_registration_where(
    conn: &Conn<'_>,
    condition: &str,
    value: &str,
) -> Result<Option<(i64, Registration)>> {
    let sql = format!(
        "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE deleted_at IS NULL AND {condition}"
    );
    conn.query_opt(&sql, params![value], registration_from_row)
}

pub(crate) fn load_registration(
    conn: &Conn<'_>,
    name: &RegistrationName,
) -> Result<Option<(i64, Registration)>> {
    load_registration_where(conn, "lower(name) = lower(?1)", &name.to_string())
}

/// A mapping event from the columns `tenant_id, subscription_id, effective_from, recorded_at`
/// starting at `first`.
pub(super) fn event_from_row(row: &Row<'_>, first: usize) -> Result<MappingEvent> {
    Ok(MappingEvent {
        tenant_id: parse(&row.get::<String>(first)?)?,
        subscription: parse_opt(row.get::<Option<String>>(first + 1)?.as_deref())?,
        effective_from: instant(row.get(first + 2)?)?,
        recorded_at: instant(row.get(first + 3)?)?,
    })
}

pub(super) fn load_timeline(conn: &Conn<'_>, registration_id: i64) -> Result<Timeline> {
    let mut timeline = Timeline::default();
    conn.query_each(
        "SELECT tenant_id, subscription_id, effective_from, recorded_at FROM mapping_events
         WHERE registration_id = ?1 ORDER BY event_id",
        params![registration_id],
        |row| {
            timeline.record(event_from_row(row, 0)?);
            Ok(())
        },
    )?;
    Ok(timeline)
}

/// Every registration's timeline, by registration id, in one query.
pub(super) fn load_timelines(conn: &Conn<'_>) -> Result<std::collections::HashMap<i64, Timeline>> {
    let mut timelines: std::collections::HashMap<i64, Timeline> = Default::default();
    conn.query_each(
        "SELECT registration_id, tenant_id, subscription_id, effective_from, recorded_at
         FROM mapping_events ORDER BY event_id",
        params![],
        |row| {
            timelines
                .entry(row.get(0)?)
                .or_default()
                .record(event_from_row(row, 1)?);
            Ok(())
        },
    )?;
    Ok(timelines)
}

/// The registrations live at `as_of` (default: now) with their timelines as recorded by then.
pub(crate) fn load_routing(conn: &Conn<'_>, as_of: Option<Timestamp>) -> Result<RoutingTable> {
    let registrations = load_registrations_ever(conn, None, as_of)?;
    let mut timelines = load_timelines(conn)?;
    let entries: Vec<_> = registrations
        .into_iter()
        .map(|(id, registration, deleted)| {
            let timeline = timelines.remove(&id).unwrap_or_default();
            let timeline = match as_of {
                Some(at) => timeline.as_recorded_by(at),
                None => timeline,
            };
            (registration, timeline, deleted)
        })
        .collect();
    Ok(RoutingTable::new(entries))
}

/// Registrations created by `as_of` (every one, when `None`), live or deleted, in the order
/// they were created, each with its deletion as known then; only those of `cloud` when
/// given. In that order each covers the usage from its predecessor's deletion to its own
/// (SPEC §4).
pub(crate) fn load_registrations_ever(
    conn: &Conn<'_>,
    cloud: Option<CloudId>,
    as_of: Option<Timestamp>,
) -> Result<Vec<(i64, Registration, Option<Timestamp>)>> {
    let sql = format!(
        "SELECT {REGISTRATION_COLUMNS}, deleted_at FROM registrations
         WHERE (CAST(?1 AS BIGINT) IS NULL OR created_at <= ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR cloud_id = ?2)
         ORDER BY registration_id"
    );
    let cloud = cloud.map(|c| c.to_string());
    conn.query_map(&sql, params![as_of.map(micros), cloud], |row| {
        let (id, registration) = registration_from_row(row)?;
        let deleted: Option<i64> = row.get(REGISTRATION_COLUMN_COUNT)?;
        let deleted = deleted.map(instant).transpose()?;
        // As of an instant, a deletion recorded later has not happened yet.
        let deleted = deleted.filter(|at| as_of.is_none_or(|as_of| *at <= as_of));
        Ok((id, registration, deleted))
    })
}

/// Every billing subscription.
pub(crate) fn load_subscriptions(conn: &Conn<'_>) -> Result<Vec<Subscription>> {
    let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY subscription_id");
    conn.query_map(&sql, params![], subscription_from_row)
}

pub(super) fn require_registration(
    conn: &Conn<'_>,
    name: &RegistrationName,
) -> Result<(i64, Registration)> {
    load_registration(conn, name)?.ok_or_else(|| {
        StoreError::Rule(RegistryError::RegistrationNotFound {
            registration: name.clone(),
        })
    })
}

/// A live registration with its mapping timeline, or `RegistrationNotFound`.
pub(super) fn require_timeline(
    conn: &Conn<'_>,
    name: &RegistrationName,
) -> Result<(Registration, Timeline)> {
    let (id, registration) = require_registration(conn, name)?;
    Ok((registration, load_timeline(conn, id)?))
}

/// The instant a read is at: `at` when given, else "now": the clock, or the last write's
/// instant if the store is ahead of it, so that a change is in force for the reads that
/// follow it.
pub(super) fn read_instant(
    conn: &Conn<'_>,
    at: Option<Timestamp>,
    clock: Timestamp,
) -> Result<Timestamp> {
    if let Some(at) = at {
        return Ok(at);
    }
    let last: i64 = conn.query_one(
        "SELECT last_micros FROM store_clock WHERE id = 1",
        params![],
        |row| row.get(0),
    )?;
    Ok(if last > micros(clock) {
        instant(last)?
    } else {
        clock
    })
}

pub(super) fn insert_event(
    conn: &Conn<'_>,
    registration_id: i64,
    event: &MappingEvent,
) -> Result<()> {
    conn.execute(
        "INSERT INTO mapping_events (registration_id, tenant_id, subscription_id,
         effective_from, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            registration_id,
            event.tenant_id.to_string(),
            event.subscription.map(|s| s.to_string()),
            micros(event.effective_from),
            micros(event.recorded_at),
        ],
    )?;
    Ok(())
}

pub(super) fn customer_subscription(
    registration: &Registration,
    event: &MappingEvent,
) -> Option<CustomerSubscription> {
    Some(CustomerSubscription {
        registration: registration.name.clone(),
        subscription: event.subscription?,
        tenant_id: event.tenant_id,
        effective_from: event.effective_from,
        recorded_at: event.recorded_at,
    })
}

pub(super) fn load_meter_override(conn: &Conn<'_>, id: MeterId) -> Result<Option<Meter>> {
    conn.query_opt(
        "SELECT name, unit, category FROM meters WHERE meter_id = ?1",
        params![id.to_string()],
        |row| {
            Ok(Meter {
                id,
                name: row.get(0)?,
                unit: row.get(1)?,
                category: row.get(2)?,
            })
        },
    )
}
