//! `stackbill generate`: synthetic usage for demos and benchmarks.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use stackbill_io::generate::{GenerateOptions, GenerateSummary, generate};

use crate::cli::GenerateArgs;

/// The first day of `YYYY-MM`, or of last month.
pub(crate) fn month(text: Option<&str>) -> Result<Date> {
    match text {
        Some(text) => {
            let (year, month) = text.split_once('-').context("--month must be YYYY-MM")?;
            Date::new(
                year.parse().context("--month year")?,
                month.parse().context("--month month")?,
                1,
            )
            .with_context(|| format!("--month {text} is not a month"))
        }
        None => Ok(jiff::Timestamp::now()
            .to_zoned(TimeZone::UTC)
            .date()
            .first_of_month()
            .checked_sub(1.month())?),
    }
}

pub(crate) fn options(args: &GenerateArgs) -> Result<GenerateOptions> {
    Ok(GenerateOptions {
        seed: args.seed,
        records: args.records,
        month: month(args.month.as_deref())?,
        stacks: args.stacks,
        tenants: args.tenants,
        duplicates_per_mille: args.duplicates,
        late_per_mille: args.late,
        bad_per_mille: args.bad,
        until: Some(jiff::Timestamp::now()),
    })
}

pub(crate) fn run(args: &GenerateArgs) -> Result<()> {
    let options = options(args)?;
    let summary: GenerateSummary = match &args.out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let summary = generate(&options, &mut out)?;
            out.flush()?;
            out.into_inner()
                .map_err(|err| err.into_error())?
                .sync_all()?;
            summary
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            let summary = generate(&options, &mut out)?;
            out.flush()?;
            summary
        }
    };
    eprintln!(
        "generated {} records for {} ({} duplicates, {} malformed)",
        summary.records,
        options.month.strftime("%Y-%m"),
        summary.duplicates,
        summary.bad
    );
    Ok(())
}
