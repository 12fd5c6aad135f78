//! CSV input, read physical line by physical line so that every line is accounted for: a
//! header row names the columns (unknown or repeated names fail the whole input before any
//! row is read), and each data row is one record or one rejection with its line's index. A
//! malformed row (an unterminated or stray quote, a field count other than the header's, a
//! line over the length bound) is rejected on its own and reading goes on at the next line.

use std::io::BufRead;

use stackbill_core::usage::RawUsage;
use stackbill_core::{UsageError, UsageErrorCode};

use crate::canonical;
use crate::lines::{Line, Lines};
use crate::parse::{FIELDS, Item, MAX_LINE_BYTES, ReadError};

/// Splits one line into fields with the `csv` crate, once [`check_quotes`] has found it
/// well formed.
fn fields(line: &str) -> Result<csv::StringRecord, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record),
        Ok(false) => Ok(csv::StringRecord::new()),
        Err(err) => Err(err.to_string()),
    }
}

/// RFC 4180 quoting within one line: a quoted field opens with `"` at its start and closes
/// with `"` before a comma or the line's end, `""` standing for a quote inside it; a quote
/// anywhere else is stray.
fn check_quotes(line: &str) -> Result<(), String> {
    let mut bytes = line.bytes().enumerate().peekable();
    let mut at_field_start = true;
    while let Some((at, byte)) = bytes.next() {
        match byte {
            b'"' if at_field_start => loop {
                match bytes.next() {
                    None => return Err(format!("the quote at column {} is never closed", at + 1)),
                    Some((_, b'"')) if bytes.peek().is_some_and(|&(_, b)| b == b'"') => {
                        bytes.next();
                    }
                    Some((close, b'"')) => match bytes.peek() {
                        None | Some((_, b',')) => break,
                        Some(_) => {
                            return Err(format!(
                                "text follows the closing quote at column {}",
                                close + 1
                            ));
                        }
                    },
                    Some(_) => {}
                }
            },
            b'"' => return Err(format!("a stray quote at column {}", at + 1)),
            b',' => {
                at_field_start = true;
                continue;
            }
            _ => {}
        }
        at_field_start = false;
    }
    Ok(())
}

/// The header's column of each of [`FIELDS`], or why the header is refused.
fn columns(header: &str) -> Result<Vec<Option<usize>>, String> {
    check_quotes(header)?;
    let names = fields(header)?;
    let mut columns = vec![None; FIELDS.len()];
    for (at, name) in names.iter().enumerate() {
        let name = name.trim();
        let Some(field) = FIELDS.iter().position(|f| *f == name) else {
            return Err(format!(
                "the header names an unknown column '{name}'; the columns are {}",
                FIELDS.join(", ")
            ));
        };
        if columns[field].replace(at).is_some() {
            return Err(format!("the header names column '{name}' twice"));
        }
    }
    Ok(columns)
}

fn invalid(index: u64, id: Option<String>, message: String) -> Item {
    Item {
        index,
        id,
        fields: Err(UsageError::new(UsageErrorCode::InvalidCsv, "", message)),
    }
}

/// Reads one data row (without its line end).
fn row(index: u64, line: &str, columns: &[Option<usize>], width: usize) -> Item {
    if let Err(why) = check_quotes(line) {
        return invalid(index, None, format!("line {}: {why}", index + 2));
    }
    let record = match fields(line) {
        Ok(record) => record,
        Err(why) => return invalid(index, None, format!("line {}: {why}", index + 2)),
    };
    let get = |field: usize| {
        columns[field]
            .and_then(|c| record.get(c))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let id = get(0);
    if record.len() != width {
        let message = format!(
            "line {}: the row has {} fields; the header has {width}",
            index + 2,
            record.len()
        );
        return invalid(index, id, message);
    }
    let fields = match columns[9]
        .and_then(|c| record.get(c))
        .map(canonical::instance_data_text)
    {
        Some(Err(err)) => Err(err),
        instance => Ok(RawUsage {
            id: id.clone(),
            cloud_id: get(1),
            tenant_id: get(2),
            subscription_id: get(3),
            meter_id: get(4),
            quantity: get(5),
            usage_start_time: get(6),
            usage_end_time: get(7),
            reported_time: get(8),
            instance_data: instance.and_then(Result::ok).flatten(),
        }),
    };
    Item { index, id, fields }
}

/// Reads CSV with a header row; `index` is the 0-based data line (the header not counted).
pub(crate) fn read_csv<R, E, F>(reader: R, sink: &mut F) -> Result<(), ReadError<E>>
where
    R: BufRead,
    F: FnMut(Item) -> Result<(), E>,
{
    let mut lines = Lines::new(reader, MAX_LINE_BYTES);
    let header = match lines.next().map_err(ReadError::Io)? {
        Line::End => return Ok(()),
        Line::TooLong => {
            return Err(ReadError::Input(format!(
                "the CSV header is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        Line::Text => String::from_utf8_lossy(lines.text()).into_owned(),
    };
    let header = header.trim_end_matches(['\n', '\r']);
    let columns = columns(header).map_err(|why| ReadError::Input(format!("CSV header: {why}")))?;
    let width = fields(header).map_or(0, |record| record.len());
    let mut index = 0u64;
    loop {
        let item = match lines.next().map_err(ReadError::Io)? {
            Line::End => return Ok(()),
            Line::TooLong => Some(invalid(
                index,
                None,
                format!("line {}: longer than {MAX_LINE_BYTES} bytes", index + 2),
            )),
            Line::Text => match std::str::from_utf8(lines.text()) {
                Ok(text) if text.trim().is_empty() => None,
                Ok(text) => Some(row(
                    index,
                    text.trim_end_matches(['\n', '\r']),
                    &columns,
                    width,
                )),
                Err(_) => Some(invalid(
                    index,
                    None,
                    format!("line {}: not UTF-8", index + 2),
                )),
            },
        };
        if let Some(item) = item {
            sink(item).map_err(ReadError::Sink)?;
        }
        index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_checked_per_line() {
        assert!(check_quotes(r#"a,"b,c",d"#).is_ok());
        assert!(check_quotes(r#"a,"say ""hi""",d"#).is_ok());
        assert!(check_quotes(r#"a,"b"#).is_err());
        assert!(check_quotes(r#"a,b"c,d"#).is_err());
        assert!(check_quotes(r#"a,"b"c,d"#).is_err());
    }
}
