//! Decoding DynamoDB JSON (`{"S": "..."}`, `{"M": {...}}`, ...) into SDK attribute values, with
//! serde_dynamo's decoder (its `AttributeValue` reads DynamoDB JSON, and converts to the SDK's).
//!
//! Strict on purpose: fixtures are meant to be exactly what DynamoDB stores, so anything
//! that is not valid DynamoDB JSON is an error naming where it is, not a guess.

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue;
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
    let parsed: serde_dynamo::AttributeValue = serde_path_to_error::deserialize(value)
        .map_err(|error| anyhow::anyhow!("at `{}`: {}", error.path(), error.inner()))
        .with_context(|| format!("not DynamoDB JSON: {value}"))?;
    check_nulls(&parsed)?;
    Ok(parsed.into())
}

/// DynamoDB writes `{"NULL": true}` only; serde_dynamo also reads `false`.
fn check_nulls(value: &serde_dynamo::AttributeValue) -> anyhow::Result<()> {
    use serde_dynamo::AttributeValue::{Null, L, M};
    match value {
        Null(false) => anyhow::bail!("NULL must be true"),
        M(map) => map.values().try_for_each(check_nulls),
        L(list) => list.iter().try_for_each(check_nulls),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::primitives::Blob;
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
