//! The canonical text of `instanceData`, so that two records carrying the same data in
//! different forms (object or JSON string, Azure's `{"Microsoft.Resources":{...}}` wrapper,
//! any key order or spacing) compare equal.

use serde_json::Value;
use serde_json::value::RawValue;
use stackbill_core::{UsageError, UsageErrorCode};

/// The key Azure wraps instance data in.
const AZURE_WRAPPER: &str = "Microsoft.Resources";

fn invalid(message: impl Into<String>) -> UsageError {
    UsageError::new(UsageErrorCode::InvalidField, "instanceData", message)
}

/// Canonicalizes `instanceData` given as raw JSON: `null`, an object, or a string holding an
/// object. Returns `None` when there is none.
pub fn instance_data(raw: &RawValue) -> Result<Option<String>, UsageError> {
    let value: Value =
        serde_json::from_str(raw.get()).map_err(|err| invalid(format!("instanceData: {err}")))?;
    let object = match value {
        Value::Null => return Ok(None),
        Value::String(text) if text.trim().is_empty() => return Ok(None),
        Value::String(text) => serde_json::from_str::<Value>(&text)
            .map_err(|err| invalid(format!("instanceData is not a JSON object: {err}")))?,
        other => other,
    };
    from_value(object)
}

/// Canonicalizes `instanceData` given as the text of a CSV column.
pub fn instance_data_text(text: &str) -> Result<Option<String>, UsageError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|err| invalid(format!("instanceData is not a JSON object: {err}")))?;
    from_value(value)
}

fn from_value(value: Value) -> Result<Option<String>, UsageError> {
    let Value::Object(mut object) = value else {
        return Err(invalid("instanceData must be a JSON object"));
    };
    if object.len() == 1 && object.contains_key(AZURE_WRAPPER) {
        match object.remove(AZURE_WRAPPER) {
            Some(Value::Object(inner)) => object = inner,
            _ => {
                return Err(invalid(
                    "instanceData's Microsoft.Resources must be an object",
                ));
            }
        }
    }
    let mut text = String::new();
    write_canonical(&Value::Object(object), &mut text);
    Ok(Some(text))
}

/// Compact JSON with object keys sorted at every level.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(json: &str) -> Result<Option<String>, UsageErrorCode> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        instance_data(&raw).map_err(|e| e.code)
    }

    #[test]
    fn every_form_of_the_same_data_is_one_text() {
        let expected =
            Some(r#"{"location":"local","resourceUri":"/x","tags":{"a":1,"b":"2"}}"#.to_owned());
        for form in [
            r#"{"resourceUri":"/x","location":"local","tags":{"b":"2","a":1}}"#,
            r#"{ "tags" : {"a":1,"b":"2"}, "location":"local", "resourceUri":"/x" }"#,
            r#""{\"resourceUri\":\"/x\",\"location\":\"local\",\"tags\":{\"a\":1,\"b\":\"2\"}}""#,
            r#"{"Microsoft.Resources":{"resourceUri":"/x","location":"local","tags":{"a":1,"b":"2"}}}"#,
            r#""{\"Microsoft.Resources\":{\"resourceUri\":\"/x\",\"location\":\"local\",\"tags\":{\"a\":1,\"b\":\"2\"}}}""#,
        ] {
            assert_eq!(canon(form), Ok(expected.clone()), "{form}");
        }
        assert_eq!(canon("null"), Ok(None));
        assert_eq!(canon(r#""""#), Ok(None));
        assert_eq!(canon(r#"{"n":1.50}"#), Ok(Some(r#"{"n":1.50}"#.to_owned())));
    }

    #[test]
    fn non_objects_are_invalid() {
        for form in [
            "5",
            "[1]",
            r#""not json""#,
            r#""[1]""#,
            r#"{"Microsoft.Resources":5}"#,
        ] {
            assert_eq!(canon(form), Err(UsageErrorCode::InvalidField), "{form}");
        }
    }
}
