//! The origin fixture: items as the origin service wrote them, in DynamoDB JSON.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::json::parse_item;

/// Absolute, so tests find it whatever their working directory.
const ORIGIN_ITEMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/origin-items.json");

/// The items of tests/fixtures/origin-items.json (DynamoDB JSON: `{"user_id": ..., "items":
/// [ {"pk": {"S": ...}, ...}, ... ]}`), parsed into AttributeValue maps exactly as they
/// are (S, N, BOOL, NULL, M, L, SS, NS; B/BS as base64).
pub fn origin_items() -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
    let fixture = load()?;
    fixture
        .get("items")
        .and_then(Value::as_array)
        .with_context(|| format!("{ORIGIN_ITEMS} has no \"items\" array"))?
        .iter()
        .enumerate()
        .map(|(index, item)| {
            parse_item(item).with_context(|| format!("item {index} of {ORIGIN_ITEMS}"))
        })
        .collect()
}

/// The items the existing handlers' own code wrote (tests/fixtures/origin-written.json, same
/// form as origin-items.json) and their user.
pub fn origin_written() -> anyhow::Result<(String, Vec<HashMap<String, AttributeValue>>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/origin-written.json");
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let fixture: Value = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let items = fixture
        .get("items")
        .and_then(Value::as_array)
        .with_context(|| format!("{path} has no \"items\" array"))?
        .iter()
        .enumerate()
        .map(|(index, item)| parse_item(item).with_context(|| format!("item {index} of {path}")))
        .collect::<anyhow::Result<_>>()?;
    let user = fixture
        .get("user_id")
        .and_then(Value::as_str)
        .with_context(|| format!("{path} has no string \"user_id\""))?;
    Ok((user.to_owned(), items))
}

/// The user_id of the fixture file.
pub fn origin_user_id() -> anyhow::Result<String> {
    load()?
        .get("user_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{ORIGIN_ITEMS} has no string \"user_id\""))
}

fn load() -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(Path::new(ORIGIN_ITEMS))
        .with_context(|| format!("reading {ORIGIN_ITEMS}"))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {ORIGIN_ITEMS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_origin_item_belongs_to_the_origin_user() -> anyhow::Result<()> {
        let user_id = origin_user_id()?;
        let items = origin_items()?;
        assert!(!items.is_empty());
        for item in &items {
            let pk = item
                .get("pk")
                .context("pk")?
                .as_s()
                .ok()
                .context("pk is S")?;
            assert_eq!(pk, &format!("USER#{user_id}"));
            assert!(item.get("sk").is_some_and(AttributeValue::is_s), "{item:?}");
        }
        Ok(())
    }
}
