//! The contract's REST shapes from whatever an external tool server answers.
//!
//! The built-in provider already answers in these shapes. Other MCP servers
//! differ in small ways (a document as plain text, a list of names, a list
//! wrapped in an object); the frontend must still get
//! `[{"name", "doc_count"}]`, `[{"path", "type"}]` and
//! `{"content", "metadata": {"repo", "path", "size"}}`. Values already in
//! shape pass through untouched.

use serde_json::{Value, json};

/// Unwraps `{"<key>": [...]}` (or `{"result": [...]}`) around a list.
fn list(value: Value, keys: &[&str]) -> Value {
    match value {
        Value::Object(mut m) => {
            for k in keys.iter().chain(["result", "items"].iter()) {
                if m.get(*k).is_some_and(Value::is_array) {
                    return m.remove(*k).unwrap_or(Value::Null);
                }
            }
            Value::Object(m)
        }
        other => other,
    }
}

pub fn repositories(value: Value) -> Value {
    match list(value, &["repositories", "repos"]) {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|r| match r {
                    Value::String(name) => json!({ "name": name, "doc_count": 0 }),
                    Value::Object(mut m) => {
                        m.entry("doc_count").or_insert(json!(0));
                        Value::Object(m)
                    }
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

pub fn tree(value: Value) -> Value {
    match list(value, &["docs", "documents", "files"]) {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|d| match d {
                    Value::String(path) => json!({ "path": path, "type": "file" }),
                    Value::Object(mut m) => {
                        m.entry("type").or_insert(json!("file"));
                        Value::Object(m)
                    }
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

pub fn document(value: Value, repo: &str, path: &str) -> Value {
    let mut doc = match value {
        Value::String(content) => json!({ "content": content }),
        Value::Object(m) if m.contains_key("content") => Value::Object(m),
        other => return other,
    };
    let size = doc["content"].as_str().map(str::len).unwrap_or(0);
    let meta = doc.as_object_mut().and_then(|m| {
        m.entry("metadata").or_insert(json!({}));
        m.get_mut("metadata").and_then(Value::as_object_mut)
    });
    if let Some(meta) = meta {
        meta.entry("repo").or_insert(json!(repo));
        meta.entry("path").or_insert(json!(path));
        meta.entry("size").or_insert(json!(size));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_shapes_pass_through() {
        let repos = json!([{"name": "a", "doc_count": 3, "description": "x"}]);
        assert_eq!(repositories(repos.clone()), repos);
        let t = json!([{"path": "a.md", "type": "file"}]);
        assert_eq!(tree(t.clone()), t);
        let d = json!({"content": "x", "metadata": {"repo": "r", "path": "p", "size": 1, "title": "T"}});
        assert_eq!(document(d.clone(), "r", "p"), d);
    }

    #[test]
    fn other_shapes_are_normalised() {
        assert_eq!(
            repositories(json!({"repositories": ["a"]})),
            json!([{"name": "a", "doc_count": 0}])
        );
        assert_eq!(
            tree(json!(["x/y.md"])),
            json!([{"path": "x/y.md", "type": "file"}])
        );
        assert_eq!(
            tree(json!({"files": [{"path": "z.md"}]})),
            json!([{"path": "z.md", "type": "file"}])
        );
        assert_eq!(
            document(json!("héllo"), "r", "p.md"),
            json!({"content": "héllo", "metadata": {"repo": "r", "path": "p.md", "size": 6}})
        );
        assert_eq!(
            document(json!({"content": "ab"}), "r", "p"),
            json!({"content": "ab", "metadata": {"repo": "r", "path": "p", "size": 2}})
        );
    }
}
