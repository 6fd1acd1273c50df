//! Documents (the free-form JSON of a goal's schedule, context, rewards, metadata) as protobuf
//! `Struct`/`Value`/`ListValue`, and back. A document is built straight from its JSON text, and a
//! wire value is refused, naming the field, when it holds what JSON cannot (a non-finite number).

use crate::error::Error;
use crate::model::Document;
use prost_types::value::Kind;

/// A document as a protobuf `Value`.
pub fn value_of(document: &Document) -> prost_types::Value {
    proto_value_of(document).unwrap_or_default()
}

/// A document that is a map, as a protobuf `Struct`; `None` for anything else.
pub fn struct_of(document: &Document) -> Option<prost_types::Struct> {
    if !document.is_object() {
        return None;
    }
    match proto_value_of(document)?.kind {
        Some(Kind::StructValue(fields)) => Some(fields),
        _ => None,
    }
}

pub(super) fn list_of(document: &Option<Document>) -> Option<prost_types::ListValue> {
    let document = document.as_ref().filter(|d| d.is_array())?;
    match proto_value_of(document)?.kind {
        Some(Kind::ListValue(list)) => Some(list),
        _ => None,
    }
}

/// Builds the protobuf value straight from the document's JSON text: a sidecar answer from the
/// cache never builds a `serde_json::Value` tree in between.
fn proto_value_of(document: &Document) -> Option<prost_types::Value> {
    serde_json::from_str::<ProtoValue>(document.as_json())
        .ok()
        .map(|value| value.0)
}

/// A protobuf `Value` deserialized from any self-describing format.
struct ProtoValue(prost_types::Value);

impl ProtoValue {
    fn of(kind: Kind) -> Self {
        Self(prost_types::Value { kind: Some(kind) })
    }
}

impl<'de> serde::Deserialize<'de> for ProtoValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ProtoValueVisitor)
    }
}

struct ProtoValueVisitor;

impl<'de> serde::de::Visitor<'de> for ProtoValueVisitor {
    type Value = ProtoValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::NullValue(0)))
    }
    fn visit_none<E>(self) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::NullValue(0)))
    }
    fn visit_bool<E>(self, b: bool) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::BoolValue(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::NumberValue(n as f64)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::NumberValue(n as f64)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::NumberValue(n)))
    }
    fn visit_str<E>(self, s: &str) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::StringValue(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<ProtoValue, E> {
        Ok(ProtoValue::of(Kind::StringValue(s)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ProtoValue, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(ProtoValue(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(ProtoValue::of(Kind::ListValue(prost_types::ListValue {
            values,
        })))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ProtoValue, A::Error> {
        let mut fields = std::collections::BTreeMap::new();
        while let Some((key, ProtoValue(value))) = map.next_entry::<String, ProtoValue>()? {
            fields.insert(key, value);
        }
        Ok(ProtoValue::of(Kind::StructValue(prost_types::Struct {
            fields,
        })))
    }
}

/// A protobuf `Value` as a document. Whole numbers come back as integers, so `10` stays `10`.
pub fn document_of(value: &prost_types::Value) -> Result<Document, Error> {
    json_of(value).map(Document::from)
}

/// A protobuf `Struct` as a document map.
pub fn document_of_struct(value: &prost_types::Struct) -> Result<Document, Error> {
    json_of_struct(value).map(Document::from)
}

fn json_of(value: &prost_types::Value) -> Result<serde_json::Value, Error> {
    use serde_json::Value as Json;
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n)?,
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            Json::Array(list.values.iter().map(json_of).collect::<Result<_, _>>()?)
        }
        Some(Kind::StructValue(s)) => json_of_struct(s)?,
    })
}

fn json_of_struct(value: &prost_types::Struct) -> Result<serde_json::Value, Error> {
    Ok(serde_json::Value::Object(
        value
            .fields
            .iter()
            .map(|(k, v)| Ok((k.clone(), json_of(v)?)))
            .collect::<Result<_, Error>>()?,
    ))
}

fn number(n: f64) -> Result<serde_json::Value, Error> {
    if !n.is_finite() {
        return Err(Error::invalid("document", "numbers must be finite"));
    }
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return Ok(serde_json::Value::from(n as i64));
    }
    serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .ok_or_else(|| Error::invalid("document", "numbers must be finite"))
}

pub(super) fn opt_struct(value: &Option<prost_types::Struct>) -> Result<Option<Document>, Error> {
    value.as_ref().map(document_of_struct).transpose()
}

pub(super) fn opt_list(value: &Option<prost_types::ListValue>) -> Result<Option<Document>, Error> {
    value
        .as_ref()
        .map(|list| {
            document_of(&prost_types::Value {
                kind: Some(Kind::ListValue(list.clone())),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_survive_the_wire() {
        let document = Document::from(serde_json::json!({
            "frequency": "daily",
            "allow_skip_days": 1,
            "ratio": 0.81,
            "times": ["07:30", "18:00"],
            "nested": {"none": null, "flag": true},
        }));
        let wire = struct_of(&document).expect("a map");
        assert_eq!(
            wire.fields["allow_skip_days"],
            value_of(&Document::from(serde_json::json!(1)))
        );
        assert_eq!(document_of_struct(&wire).expect("valid"), document);
        let list = Document::from(serde_json::json!(["a", 2, null]));
        assert_eq!(struct_of(&list), None);
        let wire = list_of(&Some(list.clone())).expect("a list");
        assert_eq!(wire.values.len(), 3);
        assert_eq!(opt_list(&Some(wire)).expect("valid"), Some(list));
    }
}
