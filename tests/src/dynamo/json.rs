//! Decoding DynamoDB JSON (`{"S": "..."}`, `{"M": {...}}`, ...) into SDK attribute values.
//!
//! Strict on purpose: fixtures are meant to be exactly what DynamoDB stores, so anything
//! that is not valid DynamoDB JSON is an error naming where it is, not a guess.

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::Value;

/// An item: a JSON object mapping attribute names to DynamoDB JSON values.
pub fn parse_item(value: &Value) -> anyhow::Result<HashMap<String, AttributeValue>> {
    value
        .as_object()
        .with_context(|| format!("an item must be a JSON object, got {value}"))?
        .iter()
        .map(|(name, value)| {
            let value =
                parse_attribute_value(value).with_context(|| format!("attribute {name:?}"))?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// One DynamoDB JSON value: an object with exactly one type key (S, N, BOOL, NULL, M, L,
/// SS, NS, B, BS). Numbers stay strings, exactly as written; binaries are base64.
pub fn parse_attribute_value(value: &Value) -> anyhow::Result<AttributeValue> {
    let mut entries = value
        .as_object()
        .with_context(|| format!("a DynamoDB JSON value must be an object, got {value}"))?
        .iter();
    let (Some((tag, inner)), None) = (entries.next(), entries.next()) else {
        anyhow::bail!(
            "a DynamoDB JSON value must have exactly one type key, like {{\"S\": \"text\"}}, got {value}"
        );
    };
    let parsed = match tag.as_str() {
        "S" => AttributeValue::S(string(inner)?),
        "N" => AttributeValue::N(string(inner)?),
        "BOOL" => AttributeValue::Bool(
            inner
                .as_bool()
                .with_context(|| format!("BOOL must be true or false, got {inner}"))?,
        ),
        "NULL" => {
            anyhow::ensure!(
                *inner == Value::Bool(true),
                "NULL must be true, got {inner}"
            );
            AttributeValue::Null(true)
        }
        "M" => AttributeValue::M(parse_item(inner).context("in M")?),
        "L" => AttributeValue::L(
            array(inner)?
                .iter()
                .enumerate()
                .map(|(index, element)| {
                    parse_attribute_value(element).with_context(|| format!("L element {index}"))
                })
                .collect::<anyhow::Result<_>>()?,
        ),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "B" => AttributeValue::B(blob(inner)?),
        "BS" => AttributeValue::Bs(
            array(inner)?
                .iter()
                .map(blob)
                .collect::<anyhow::Result<_>>()?,
        ),
        other => anyhow::bail!("unknown DynamoDB type {other:?} in {value}"),
    };
    Ok(parsed)
}

fn string(value: &Value) -> anyhow::Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("expected a JSON string, got {value}"))
}

fn array(value: &Value) -> anyhow::Result<&Vec<Value>> {
    value
        .as_array()
        .with_context(|| format!("expected a JSON array, got {value}"))
}

fn strings(value: &Value) -> anyhow::Result<Vec<String>> {
    array(value)?.iter().map(string).collect()
}

fn blob(value: &Value) -> anyhow::Result<Blob> {
    let encoded = string(value)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .with_context(|| format!("binary values are base64, got {encoded:?}"))?;
    Ok(Blob::new(bytes))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_every_type_as_written() -> anyhow::Result<()> {
        let item = parse_item(&json!({
            "s": {"S": "text"},
            "n": {"N": "1.50"},
            "bool": {"BOOL": false},
            "null": {"NULL": true},
            "m": {"M": {"inner": {"N": "-3"}}},
            "l": {"L": [{"S": "a"}, {"NULL": true}]},
            "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1", "2.0"]},
            "b": {"B": "aGk="},
            "bs": {"BS": ["aGk=", "AA=="]},
        }))?;
        let expected = HashMap::from([
            ("s".to_owned(), AttributeValue::S("text".to_owned())),
            ("n".to_owned(), AttributeValue::N("1.50".to_owned())),
            ("bool".to_owned(), AttributeValue::Bool(false)),
            ("null".to_owned(), AttributeValue::Null(true)),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "inner".to_owned(),
                    AttributeValue::N("-3".to_owned()),
                )])),
            ),
            (
                "l".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::S("a".to_owned()),
                    AttributeValue::Null(true),
                ]),
            ),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["a".to_owned(), "b".to_owned()]),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(vec!["1".to_owned(), "2.0".to_owned()]),
            ),
            ("b".to_owned(), AttributeValue::B(Blob::new(b"hi".to_vec()))),
            (
                "bs".to_owned(),
                AttributeValue::Bs(vec![Blob::new(b"hi".to_vec()), Blob::new(vec![0])]),
            ),
        ]);
        assert_eq!(item, expected);
        Ok(())
    }

    #[test]
    fn rejects_what_is_not_dynamodb_json() {
        for bad in [
            json!({"x": "plain"}),
            json!({"x": {"S": "a", "N": "1"}}),
            json!({"x": {}}),
            json!({"x": {"N": 1}}),
            json!({"x": {"NULL": false}}),
            json!({"x": {"B": "not base64!"}}),
            json!({"x": {"Q": "a"}}),
            json!({"x": {"M": {"y": {"L": [{"S": 1}]}}}}),
        ] {
            let error = parse_item(&bad).expect_err("invalid DynamoDB JSON");
            assert!(
                format!("{error:#}").contains("attribute \"x\""),
                "{error:#}"
            );
        }
    }
}
