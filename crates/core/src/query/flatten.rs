//! JSON events to fields, the way CloudWatch Logs flattens them: nested objects become dotted
//! names (`input.inputTokenCount`), array elements take their index (`output.outputBodyJson.0.type`).
//!
//! [`flatten_json`] takes every field of a parsed value; [`extract_fields`] reads only the fields
//! a query needs straight from the line, skipping everything else in bulk with the record scanner
//! (a query over files reads bodies only when it names a field inside one).

use std::collections::HashSet;

use crate::record::RecordError;
use crate::scan::Scan;

use super::eval::Row;
use super::value::Value;

/// Adds every scalar of `v` to `row` under its dotted path (below `prefix`).
pub fn flatten_json(v: &serde_json::Value, prefix: &str, row: &mut Row) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_json(x, &name, row);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten_json(x, &format!("{prefix}.{i}"), row);
            }
        }
        serde_json::Value::String(s) => row.set(prefix, Value::Str(s.clone())),
        serde_json::Value::Number(n) => {
            row.set(prefix, n.as_f64().map(Value::Num).unwrap_or(Value::Null))
        }
        serde_json::Value::Bool(b) => row.set(prefix, Value::Bool(*b)),
        serde_json::Value::Null => {}
    }
}

/// The dotted field names a query reads, and every prefix of them (the objects to descend into).
#[derive(Debug, Clone, Default)]
pub struct FieldSet {
    exact: HashSet<String>,
    prefixes: HashSet<String>,
}

impl FieldSet {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> FieldSet {
        let mut f = FieldSet::default();
        for n in names {
            f.exact.insert(n.to_string());
            let mut p = n;
            while let Some(i) = p.rfind('.') {
                p = &p[..i];
                f.prefixes.insert(p.to_string());
            }
        }
        f
    }
}

/// Reads the fields of `fields` from one JSON object (a log line) into `row`; everything else is
/// skipped without being built. Errors only for broken JSON.
pub fn extract_fields(line: &[u8], fields: &FieldSet, row: &mut Row) -> Result<(), RecordError> {
    let mut sc = Scan::new(line);
    if sc.peek_value() != Some(b'{') {
        return Err(RecordError::NotAnObject("not an object"));
    }
    let mut path = String::new();
    walk(&mut sc, &mut path, fields, row)?;
    sc.ws();
    if !sc.at_end() {
        return Err(sc.err("trailing characters after the record"));
    }
    Ok(())
}

fn walk(
    sc: &mut Scan,
    path: &mut String,
    fields: &FieldSet,
    row: &mut Row,
) -> Result<(), RecordError> {
    let exact = !path.is_empty() && fields.exact.contains(path.as_str());
    let descend = path.is_empty() || fields.prefixes.contains(path.as_str());
    match sc.peek_value() {
        Some(b'{') if descend => sc.object(|sc, k| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&k);
            let r = walk(sc, path, fields, row);
            path.truncate(len);
            r
        }),
        Some(b'[') if descend => {
            let mut i = 0usize;
            sc.array(|sc| {
                let len = path.len();
                path.push('.');
                path.push_str(&i.to_string());
                i += 1;
                let r = walk(sc, path, fields, row);
                path.truncate(len);
                r
            })
        }
        Some(b'"') if exact => {
            let s = sc.string()?;
            row.set(path, Value::Str(s.into_owned()));
            Ok(())
        }
        Some(b'-' | b'0'..=b'9') if exact => {
            let n = sc.number()?;
            row.set(path, Value::Num(n));
            Ok(())
        }
        Some(b't' | b'f') if exact => {
            let b = sc.boolean()?;
            row.set(path, Value::Bool(b));
            Ok(())
        }
        _ => sc.skip_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_agrees_with_flattening() {
        let line =
            r#"{"a":{"b":1,"c":[{"d":"x"},{"d":"y\"z"}],"e":true},"f":null,"g":"h","i":[1,2.5e1]}"#;
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let mut all = Row::default();
        flatten_json(&v, "", &mut all);
        let names = ["a.b", "a.c.1.d", "a.e", "f", "g", "i.1", "a.c", "missing.x"];
        let mut some = Row::default();
        extract_fields(line.as_bytes(), &FieldSet::new(names), &mut some).expect("extract");
        for n in names {
            assert_eq!(some.get(n), all.get(n), "{n}");
        }
        assert_eq!(some.0.len(), 5);
        assert!(extract_fields(
            br#"{"a":[1,2}"#,
            &FieldSet::new(["a.0"]),
            &mut Row::default()
        )
        .is_err());
    }
}
