//! Usage validation: every code of SPEC §3, naming its field.

use std::collections::HashSet;

use jiff::Timestamp;
use stackbill_core::usage::{RawUsage, UsageContext, check_references};
use stackbill_core::{CloudId, MeterId, UsageErrorCode};

const CLOUD: &str = "ca000000-0000-0000-0000-000000000001";
const METER: &str = "b4438d5d-453b-4ee1-b42a-dc72e377f1e4";

struct Known {
    clouds: HashSet<CloudId>,
    meters: HashSet<MeterId>,
}

impl UsageContext for Known {
    fn knows_stack(&self, cloud: CloudId, _at: jiff::Timestamp) -> bool {
        self.clouds.contains(&cloud)
    }
    fn knows_meter(&self, meter: MeterId) -> bool {
        self.meters.contains(&meter)
    }
}

fn known() -> Known {
    Known {
        clouds: [CLOUD.parse().unwrap()].into(),
        meters: [METER.parse().unwrap()].into(),
    }
}

fn raw() -> RawUsage {
    RawUsage {
        id: Some("r-1".into()),
        cloud_id: Some(CLOUD.to_uppercase()),
        tenant_id: Some("70000000-0000-0000-0000-000000000001".into()),
        subscription_id: Some("50000000-0000-0000-0000-000000000001".into()),
        meter_id: Some(METER.replace('-', "")),
        quantity: Some("1.50".into()),
        usage_start_time: Some("2025-06-01T10:00:00+02:00".into()),
        usage_end_time: Some("2025-06-01T09:00:00Z".into()),
        reported_time: None,
        instance_data: Some(r#"{"resourceUri":"/subscriptions/x/vm1"}"#.into()),
    }
}

fn now() -> Timestamp {
    "2025-06-15T12:00:00Z".parse().unwrap()
}

fn rejected(edit: impl FnOnce(&mut RawUsage)) -> (UsageErrorCode, &'static str) {
    let mut record = raw();
    edit(&mut record);
    let err = record
        .validate(now())
        .and_then(|valid| check_references(&valid, &known()))
        .unwrap_err();
    match err.target {
        std::borrow::Cow::Borrowed(target) => (err.code, target),
        std::borrow::Cow::Owned(target) => panic!("a field of the record, not {target}"),
    }
}

#[test]
fn a_valid_record_is_normalised() {
    let record = raw().validate(now()).unwrap();
    assert_eq!(record.cloud_id.to_string(), CLOUD);
    assert_eq!(record.meter_id.to_string(), METER);
    assert_eq!(record.quantity.to_string(), "1.5");
    assert_eq!(record.usage_start, "2025-06-01T08:00:00Z".parse().unwrap());
    let padded = RawUsage {
        quantity: Some("1.5000000000".into()),
        ..raw()
    };
    assert_eq!(padded.validate(now()).unwrap().quantity, record.quantity);
}

#[test]
fn every_code_names_its_field() {
    use UsageErrorCode::*;
    assert_eq!(rejected(|r| r.id = None), (MissingField, "id"));
    assert_eq!(
        rejected(|r| r.id = Some(String::new())),
        (MissingField, "id")
    );
    assert_eq!(
        rejected(|r| r.id = Some("x".repeat(129))),
        (InvalidField, "id")
    );
    assert_eq!(rejected(|r| r.cloud_id = None), (MissingField, "cloudId"));
    assert_eq!(
        rejected(|r| r.cloud_id = Some("nope".into())),
        (InvalidField, "cloudId")
    );
    assert_eq!(rejected(|r| r.tenant_id = None), (MissingField, "tenantId"));
    assert_eq!(
        rejected(|r| r.subscription_id = Some("1".into())),
        (InvalidField, "subscriptionId")
    );
    assert_eq!(rejected(|r| r.meter_id = None), (MissingField, "meterId"));
    assert_eq!(rejected(|r| r.quantity = None), (MissingField, "quantity"));
    assert_eq!(
        rejected(|r| r.quantity = Some("-1".into())),
        (InvalidQuantity, "quantity")
    );
    assert_eq!(
        rejected(|r| r.quantity = Some("0.00000000000000000000000000001".into())),
        (InvalidQuantity, "quantity")
    );
    assert_eq!(
        rejected(|r| r.usage_start_time = None),
        (MissingField, "usageStartTime")
    );
    assert_eq!(
        rejected(|r| r.usage_start_time = Some("2025-06-01 08:00".into())),
        (InvalidField, "usageStartTime")
    );
    assert_eq!(
        rejected(|r| r.usage_end_time = Some("2025-06-01T10:00:00Z".into())),
        (InvalidTimeWindow, "usageEndTime")
    );
    assert_eq!(
        rejected(|r| {
            r.usage_start_time = Some("2025-06-01T08:30:00Z".into());
            r.usage_end_time = Some("2025-06-01T09:30:00Z".into());
        }),
        (InvalidTimeWindow, "usageStartTime")
    );
    // The hour that ended exactly now is complete, so it is accepted.
    let just_ended = RawUsage {
        usage_start_time: Some("2025-06-15T11:00:00Z".into()),
        usage_end_time: Some("2025-06-15T12:00:00Z".into()),
        ..raw()
    };
    assert!(just_ended.validate(now()).is_ok());
    assert_eq!(
        rejected(|r| {
            r.usage_start_time = Some("2025-06-15T12:00:00Z".into());
            r.usage_end_time = Some("2025-06-15T13:00:00Z".into());
        }),
        (UsageInFuture, "usageEndTime")
    );
    assert_eq!(
        rejected(|r| r.reported_time = Some("yesterday".into())),
        (InvalidField, "reportedTime")
    );
    assert_eq!(
        rejected(|r| r.cloud_id = Some("ca000000-0000-0000-0000-000000000009".into())),
        (UnknownStack, "cloudId")
    );
    assert_eq!(
        rejected(|r| r.meter_id = Some("aaaaaaaa-0000-0000-0000-000000000001".into())),
        (UnknownMeter, "meterId")
    );
}

/// Usage hours and reported times lie between 2000 and (about) now.
#[test]
fn instants_outside_the_accepted_range_are_refused() {
    use UsageErrorCode::{InvalidReportedTime, InvalidTimeWindow};
    for start in [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:00:00Z",
        "1999-12-31T23:00:00Z",
    ] {
        let end = start.parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_hours(1);
        assert_eq!(
            rejected(|r| {
                r.usage_start_time = Some(start.into());
                r.usage_end_time = Some(end.to_string());
            }),
            (InvalidTimeWindow, "usageStartTime"),
            "{start}"
        );
    }
    assert_eq!(
        rejected(|r| {
            r.usage_start_time = Some("9999-12-31T22:00:00Z".into());
            r.usage_end_time = Some("9999-12-31T23:00Z".into());
        }),
        (InvalidTimeWindow, "usageStartTime")
    );
    for reported in [
        "2099-01-01T00:00:00Z",
        "1999-01-01T00:00:00Z",
        "9999-12-31T23:00Z",
    ] {
        assert_eq!(
            rejected(|r| r.reported_time = Some(reported.into())),
            (InvalidReportedTime, "reportedTime"),
            "{reported}"
        );
    }
    // A stack's clock a few hours ahead is tolerated.
    let ahead = RawUsage {
        reported_time: Some("2025-06-15T15:00:00Z".into()),
        ..raw()
    };
    assert!(ahead.validate(now()).is_ok());
}
