//! JSON as Perl's `JSON->pretty->canonical` prints it (3-space indent, ` : ` separators, keys
//! sorted), used by `qm guest` and `pvesh --output-format json-pretty`.

use serde_json::Value;

/// Pretty-print `v` with a trailing newline.
pub fn pretty(v: &Value) -> String {
    let mut out = String::new();
    write(v, 0, &mut out);
    out.push('\n');
    out
}

fn write(v: &Value, depth: usize, out: &mut String) {
    let pad = |d: usize| "   ".repeat(d);
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(m) => {
            out.push_str("{\n");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(" : ");
                write(&m[*k], depth + 1, out);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(a) => {
            out.push_str("[\n");
            for (i, e) in a.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                write(e, depth + 1, out);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_guest_exec_output() {
        let v = serde_json::json!({"out-data": "hello\n", "exited": 1, "exitcode": 0});
        assert_eq!(
            pretty(&v),
            "{\n   \"exitcode\" : 0,\n   \"exited\" : 1,\n   \"out-data\" : \"hello\\n\"\n}\n"
        );
        let n = serde_json::json!({"a": [1, {"b": 2}]});
        assert_eq!(
            pretty(&n),
            "{\n   \"a\" : [\n      1,\n      {\n         \"b\" : 2\n      }\n   ]\n}\n"
        );
    }
}
