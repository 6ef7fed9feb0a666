//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the API.
//!
//! Hand-maintained JSON (`openapi.json` beside this file) rather than utoipa's derive macros:
//! utoipa and its proc-macro stack would add a noticeable share to the node's build on a 2-core
//! machine, and the contract is already written by hand in API.md/types.ts. A test keeps it
//! honest: every path of [`super::table`] must appear in the document, and every documented path
//! must be routed.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, embedded at compile time.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /api/openapi.json` (no auth).
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(super::DOCUMENT).expect("openapi.json is JSON")
    }

    #[test]
    fn every_routed_path_is_documented_and_every_documented_path_routed() {
        let doc = document();
        let documented: BTreeSet<String> =
            doc["paths"].as_object().unwrap().keys().cloned().collect();
        let routed: BTreeSet<String> = crate::api::table()
            .into_iter()
            .map(|(path, _)| path.to_owned())
            .collect();
        assert_eq!(
            routed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "routed but not in openapi.json"
        );
        assert_eq!(
            documented.difference(&routed).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "in openapi.json but not routed"
        );
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn every_schema_reference_resolves_and_operation_ids_are_unique() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            assert!(schemas.contains_key(name), "unresolved $ref {r}");
        }
        let mut ids = BTreeSet::new();
        for methods in doc["paths"].as_object().unwrap().values() {
            for op in methods.as_object().unwrap().values() {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            }
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap_or_default().to_owned());
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
