//! JSON whose objects keep their key order.
//!
//! The workspace's `serde_json` sorts object keys (its `preserve_order` feature is off, and must
//! stay off: the SDK's `Document` relies on sorted keys for its canonical text). The existing
//! handlers answer keys in their models' field order, so response bodies are built as [`Json`]
//! trees, which serialize their objects' entries in the order they were pushed.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// A JSON value whose objects are ordered lists of entries.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn object() -> Self {
        Json::Object(Vec::new())
    }

    /// Appends `key: value` to an object (no-op on anything else); returns `self` for chaining.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.push(key, value);
        self
    }

    /// Appends `key: value` to an object (no-op on anything else).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Json>) {
        if let Json::Object(entries) = self {
            entries.push((key.into(), value.into()));
        }
    }

    /// A float: `10000` becomes `10000.0`, as Python prints a float.
    pub fn float(value: f64) -> Self {
        serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number)
    }

    /// The compact JSON text.
    pub fn to_text(&self) -> String {
        // Serializing this tree cannot fail: keys are strings and numbers are finite.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The text Python's `json.dumps` writes: `", "` and `": "` separators, non-ASCII escaped
    /// as `\uXXXX` (what the existing handlers answer for listings, progress, archive and errors;
    /// pydantic's `model_dump_json` bodies are compact, [`to_text`](Self::to_text)).
    pub fn to_python_text(&self) -> String {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
        if self.serialize(&mut serializer).is_err() {
            return "{}".to_owned();
        }
        String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The value as a `serde_json::Value` (keys sorted), for tests and comparisons.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(s),
            Value::Array(items) => Json::Array(items.into_iter().map(Json::from).collect()),
            Value::Object(map) => {
                Json::Object(map.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl From<&str> for Json {
    fn from(text: &str) -> Self {
        Json::String(text.to_owned())
    }
}

impl From<String> for Json {
    fn from(text: String) -> Self {
        Json::String(text)
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Json::Number(n.into())
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

impl From<Vec<Json>> for Json {
    fn from(items: Vec<Json>) -> Self {
        Json::Array(items)
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(value: Option<T>) -> Self {
        value.map_or(Json::Null, Into::into)
    }
}

/// `json.dumps` defaults: `separators=(", ", ": ")`, `ensure_ascii=True`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        writer.write_all(python_float(value).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                let mut buffer = [0u8; 1];
                writer.write_all(c.encode_utf8(&mut buffer).as_bytes())?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `repr` of a finite float: the shortest round-trip digits, fixed notation for
/// decimal exponents in -4..16 (`10000.0`, `0.0001`), else `1e+16`, `1.5e-05`.
pub fn python_float(value: f64) -> String {
    // `{:e}` writes the shortest round-trip digits: `1.2345e-5`, `1e16`.
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        if point <= 0 {
            let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
            format!("{sign}0.{zeros}{digits}")
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            if digits.len() > point {
                format!("{sign}{}.{}", &digits[..point], &digits[point..])
            } else {
                let zeros = "0".repeat(point - digits.len());
                format!("{sign}{digits}{zeros}.0")
            }
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{sign}{first}{fraction}e{exponent_sign}{:02}",
            exponent.abs()
        )
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_order_and_floats_print_as_python_does() {
        let json = Json::object()
            .with("zeta", 1u64)
            .with("alpha", Json::float(10000.0))
            .with("none", Json::Null);
        assert_eq!(json.to_text(), r#"{"zeta":1,"alpha":10000.0,"none":null}"#);
        assert_eq!(Json::float(f64::NAN), Json::Null);
        let cases = [
            (10000.0, "10000.0"),
            (0.0, "0.0"),
            (-2.5, "-2.5"),
            (66.66666666666667, "66.66666666666667"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.25e-7, "-1.25e-07"),
            (123.456, "123.456"),
        ];
        for (value, text) in cases {
            assert_eq!(python_float(value), text, "{value}");
        }
        assert_eq!(Json::float(1e16).to_python_text(), "1e+16");
        let python = Json::object()
            .with("message", "Café ☕ 𝄞")
            .with("list", vec![Json::from(1u64), Json::Null]);
        assert_eq!(
            python.to_python_text(),
            r#"{"message": "Caf\u00e9 \u2615 \ud834\udd1e", "list": [1, null]}"#
        );
    }
}
