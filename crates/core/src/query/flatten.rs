//! JSON events to fields, the way CloudWatch Logs flattens them: nested objects become dotted
//! names (`input.inputTokenCount`), array elements take their index (`output.outputBodyJson.0.type`).

use super::eval::Row;
use super::value::Value;

/// Adds every scalar of `v` to `row` under its dotted path (below `prefix`).
pub fn flatten_json(v: &serde_json::Value, prefix: &str, row: &mut Row) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten_json(x, &name, row);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten_json(x, &format!("{prefix}.{i}"), row);
            }
        }
        serde_json::Value::String(s) => row.set(prefix, Value::Str(s.clone())),
        serde_json::Value::Number(n) => row.set(prefix, n.as_f64().map(Value::Num).unwrap_or(Value::Null)),
        serde_json::Value::Bool(b) => row.set(prefix, Value::Bool(*b)),
        serde_json::Value::Null => {}
    }
}
