//! Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant whitespace, numbers
//! and strings as serde_json writes them. The same value always gives the same bytes, and so the
//! same digest, whatever order a struct declares its fields in or a map was filled in, and whether
//! or not some dependency turns on serde_json's `preserve_order` feature (keys are sorted here
//! explicitly, not by relying on the map type).

use serde::Serialize;
use serde_json::Value;

/// Serializes `value` canonically.
pub fn to_canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&v, &mut out)?;
    Ok(out)
}

/// Re-serializes JSON text canonically.
pub fn canonicalize(bytes: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let v: Value = serde_json::from_slice(bytes)?;
    to_canonical_json(&v)
}

fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_recursively_without_whitespace() {
        let input = br#"{ "b": [ {"z": 1, "a": "x\u003cy"} ], "a": null, "A": 1.5 }"#;
        let out = canonicalize(input).unwrap();
        assert_eq!(out, br#"{"A":1.5,"a":null,"b":[{"a":"x<y","z":1}]}"#);
        assert_eq!(canonicalize(&out).unwrap(), out);
    }
}
