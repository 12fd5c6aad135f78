//! A deterministic generator of realistic Azure Stack Hub usage, for demos and benchmarks:
//! tenants own resources (VMs, disks, storage accounts, IP addresses), each resource emits
//! its meters every hour of a month, and optional noise adds re-sent duplicates, late
//! records (out of hour order) and malformed records. The same options and seed always
//! produce the same bytes.

use std::io::{self, Write};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use stackbill_core::period::{hour_number, hour_start};

/// The GUID scheme of the demo's and generator's sample objects: `kind` names what it is
/// (`0xca` stacks, `0x70` tenants, `0xc0` customer subscriptions, `0x50` stack user
/// subscriptions, `0xd0` default subscriptions), `n` which one.
pub fn sample_guid(kind: u32, n: u64) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// The seed: equal options and seed give equal output.
    pub seed: u64,
    /// How many records to write (noise included).
    pub records: u64,
    /// The first day of the month the usage belongs to.
    pub month: Date,
    /// How many stacks (the demo registers stacks 1 and 2).
    pub stacks: u64,
    /// How many tenants (the demo maps tenants 1–36; more are usage of unregistered
    /// tenants, billed to the default subscription).
    pub tenants: u64,
    /// Per mille of records re-sent unchanged later (duplicates).
    pub duplicates_per_mille: u32,
    /// Per mille of records emitted out of hour order (late).
    pub late_per_mille: u32,
    /// Per mille of records that are malformed (rejected on import).
    pub bad_per_mille: u32,
    /// Only hours that have ended by then (`None`: the whole month).
    pub until: Option<Timestamp>,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Lines written.
    pub records: u64,
    /// Of which exact re-sends.
    pub duplicates: u64,
    /// Of which malformed.
    pub bad: u64,
}

struct ResourceKind {
    provider: &'static str,
    meters: &'static [(&'static str, Quantity)],
}

#[derive(Clone, Copy)]
enum Quantity {
    /// Whole units from 1 to the bound (cores, IPs).
    Whole(u64),
    /// A decimal with six fraction digits below the bound (GB*hours, GB transferred).
    Fraction(u64),
}

const KINDS: &[ResourceKind] = &[
    ResourceKind {
        provider: "Microsoft.Compute/virtualMachines",
        meters: &[
            ("fab6eb84-500b-4a09-a8ca-7358f8bbaea5", Quantity::Whole(16)),
            ("6dab500f-a4fd-49c4-956d-229bb9c8c793", Quantity::Whole(1)),
        ],
    },
    ResourceKind {
        provider: "Microsoft.Storage/storageAccounts",
        meters: &[
            (
                "09f8879e-87e9-4305-a572-4b7be209f857",
                Quantity::Fraction(500),
            ),
            (
                "b5c15376-6c94-4fdd-b655-1a69d138aca3",
                Quantity::Fraction(2000),
            ),
            (
                "9764f92c-e44a-498e-8dc1-aad66587a810",
                Quantity::Fraction(3),
            ),
            (
                "3023fef4-eca5-4d7b-87b3-cfbc061931e8",
                Quantity::Fraction(3),
            ),
        ],
    },
    ResourceKind {
        provider: "Microsoft.Network/publicIPAddresses",
        meters: &[("f271a8a388c44d93956a063e1d2fa80b", Quantity::Whole(1))],
    },
];

fn month_hours(month: Date) -> io::Result<(Timestamp, i64)> {
    let start = month
        .first_of_month()
        .to_zoned(TimeZone::UTC)
        .map_err(io::Error::other)?
        .timestamp();
    let next = month
        .first_of_month()
        .checked_add(1.month())
        .and_then(|d| d.to_zoned(TimeZone::UTC))
        .map_err(io::Error::other)?
        .timestamp();
    Ok((start, next.duration_since(start).as_hours()))
}

fn hour(start: Timestamp, n: i64) -> String {
    hour_start(hour_number(start) + n)
        .unwrap_or(start)
        .to_string()
}

/// Writes `options.records` NDJSON usage records to `out`.
pub fn generate(options: &GenerateOptions, out: &mut impl Write) -> io::Result<GenerateSummary> {
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let (start, month_hours) = month_hours(options.month)?;
    let ended_hours = options.until.map_or(month_hours, |until| {
        until.duration_since(start).as_hours().clamp(0, month_hours)
    });
    let hours = ended_hours.max(1);
    let tenants = options.tenants.max(1);
    let stacks = options.stacks.max(1);
    let meters_per_round: u64 = KINDS.iter().map(|k| k.meters.len() as u64).sum();
    // Enough resources that one month of hourly records reaches the requested count.
    let rounds = options
        .records
        .div_ceil(meters_per_round * hours as u64)
        .max(1);
    let mut summary = GenerateSummary::default();
    let mut line = String::with_capacity(512);
    let mut resent: Vec<String> = Vec::new();
    let mut late: Vec<String> = Vec::new();
    'outer: for h in 0..hours {
        for round in 0..rounds {
            for (kind_index, kind) in KINDS.iter().enumerate() {
                let resource = round * KINDS.len() as u64 + kind_index as u64;
                let tenant = resource % tenants + 1;
                let stack = tenant % stacks + 1;
                for (meter_index, (meter, quantity)) in kind.meters.iter().enumerate() {
                    let pending = (resent.len() + late.len()) as u64;
                    if summary.records + pending >= options.records {
                        break 'outer;
                    }
                    let quantity = match quantity {
                        Quantity::Whole(max) => rng.u64(1..=*max).to_string(),
                        Quantity::Fraction(max) => {
                            let micros = rng.u64(0..max * 1_000_000);
                            format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
                        }
                    };
                    line.clear();
                    let bad = rng.u32(0..1000) < options.bad_per_mille;
                    let (quantity, start_text) = if bad {
                        summary.bad += 1;
                        // A negative quantity or a window off the hour: both are rejected.
                        if rng.bool() {
                            (format!("-{quantity}"), hour(start, h))
                        } else {
                            (quantity, hour(start, h).replace(":00:00Z", ":30:00Z"))
                        }
                    } else {
                        (quantity, hour(start, h))
                    };
                    use std::fmt::Write as _;
                    let _ = write!(
                        line,
                        r#"{{"id":"r{resource:x}-m{meter_index}-{hour_key}","cloudId":"{cloud}","tenantId":"{tenant_id}","subscriptionId":"{sub}","meterId":"{meter}","quantity":"{quantity}","usageStartTime":"{start_text}","usageEndTime":"{end}","instanceData":{{"Microsoft.Resources":{{"resourceUri":"/subscriptions/{sub}/resourceGroups/rg-{resource}/providers/{provider}/res-{resource}","location":"local","tags":{{"env":"{env}"}}}}}}}}"#,
                        cloud = sample_guid(0xca, stack),
                        hour_key = hour_number(start) + h,
                        tenant_id = sample_guid(0x70, tenant),
                        sub = sample_guid(0x50, tenant),
                        end = hour(start, h + 1),
                        provider = kind.provider,
                        env = if resource.is_multiple_of(3) {
                            "prod"
                        } else {
                            "dev"
                        },
                    );
                    line.push('\n');
                    if !bad && rng.u32(0..1000) < options.late_per_mille {
                        late.push(line.clone());
                    } else {
                        out.write_all(line.as_bytes())?;
                        summary.records += 1;
                    }
                    if !bad && rng.u32(0..1000) < options.duplicates_per_mille {
                        resent.push(line.clone());
                    }
                    // Late and re-sent records arrive a few hundred records later.
                    if resent.len() + late.len() >= 64 {
                        summary = flush(&mut resent, &mut late, out, summary, options.records)?;
                    }
                }
            }
        }
    }
    flush(&mut resent, &mut late, out, summary, options.records)
}

fn flush(
    resent: &mut Vec<String>,
    late: &mut Vec<String>,
    out: &mut impl Write,
    mut summary: GenerateSummary,
    limit: u64,
) -> io::Result<GenerateSummary> {
    for line in late.drain(..) {
        if summary.records >= limit {
            break;
        }
        out.write_all(line.as_bytes())?;
        summary.records += 1;
    }
    for line in resent.drain(..) {
        if summary.records >= limit {
            break;
        }
        out.write_all(line.as_bytes())?;
        summary.records += 1;
        summary.duplicates += 1;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> GenerateOptions {
        GenerateOptions {
            seed: 7,
            records: 5_000,
            month: Date::new(2025, 5, 1).unwrap(),
            stacks: 2,
            tenants: 40,
            duplicates_per_mille: 10,
            late_per_mille: 10,
            bad_per_mille: 5,
            until: None,
        }
    }

    #[test]
    fn output_is_deterministic_and_sized() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let summary = generate(&options(), &mut a).unwrap();
        generate(&options(), &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(summary.records, 5_000);
        assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 5_000);
        assert!(summary.duplicates > 0 && summary.bad > 0, "{summary:?}");
        let mut other = options();
        other.seed = 8;
        let mut c = Vec::new();
        generate(&other, &mut c).unwrap();
        assert_ne!(a, c);
    }
}
