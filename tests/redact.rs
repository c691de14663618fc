//! Redaction on a seeded corpus of secrets and PII: a scan of the output finds
//! none of them, structure is kept, and harmless look-alikes survive.

use serde_json::{Value, json};
use shadowgate::sink::redact::{REDACTED, Redactor};
use std::collections::BTreeMap;

const SECRETS: &[&str] = &[
    "sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz",
    "sk-ant-api03-Q1w2E3r4T5y6U7i8O9p0AaSsDdFf",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "AKIAIOSFODNN7EXAMPLE",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "hunter2-correct-horse",
    "tok-live-5f3e2d1c0b9a",
];
const PII: &[&str] = &[
    "jane.doe@example.com",
    "+1 415-555-0132",
    "203.0.113.42",
    "2001:db8:85a3:0:0:8a2e:370:7334",
    "4111 1111 1111 1111",
    "cust-2231",
];

fn corpus() -> Value {
    json!({
        "model": "gpt-4.1",
        "max_tokens": 1024,
        "user": "analyst@corp.example",
        "metadata": {"user_id": "cust-2231", "trace": "abc"},
        "api_key": SECRETS[8],
        "credentials": {"password": SECRETS[7]},
        "messages": [
            {"role": "system", "content": "Key in use: sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz, backup sk-ant-api03-Q1w2E3r4T5y6U7i8O9p0AaSsDdFf."},
            {"role": "user", "content": [
                {"type": "text", "text": "I'm Jane (jane.doe@example.com, +1 415-555-0132), on 203.0.113.42 and 2001:db8:85a3:0:0:8a2e:370:7334. Card 4111 1111 1111 1111, order 1234 5678 9012 3456. What's the weather in Paris at 10:15:00 on 2026-11-22T10:15:00Z?"},
                {"type": "text", "text": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U and AWS AKIAIOSFODNN7EXAMPLE, google AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q, gh ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"},
                {"type": "text", "text": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"}
            ]}
        ],
        "usage": {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 0}
    })
}

fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), shape(x))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => json!("s"),
        other => other.clone(),
    }
}

fn redactor(key: &str) -> Redactor {
    Redactor::new(key.as_bytes(), &["/metadata/user_id".to_string()]).unwrap()
}

#[test]
fn no_secret_or_pii_survives_and_structure_is_kept() {
    let r = redactor("a-deployment-key-of-32-bytes-000");
    let original = corpus();
    let mut v = original.clone();
    r.json(&mut v);
    let text = v.to_string();
    for needle in SECRETS.iter().chain(PII) {
        assert!(!text.contains(needle), "{needle} survived in {text}");
    }
    assert!(!text.contains("analyst@corp.example"));
    assert_eq!(shape(&v), shape(&original), "structure changed");
    assert_eq!((v["max_tokens"].as_u64(), v["usage"]["output_tokens"].as_u64()), (Some(1024), Some(7)));
    assert_eq!((v["api_key"].as_str(), v["credentials"]["password"].as_str()), (Some(REDACTED), Some(REDACTED)));
    assert_eq!(v["metadata"]["user_id"], json!(r.hash("cust-2231")));
    let said = v["messages"][1]["content"][0]["text"].as_str().unwrap();
    // Harmless look-alikes stay: an order number failing the Luhn check, times, dates, plain words.
    for kept in ["1234 5678 9012 3456", "10:15:00", "2026-11-22T10:15:00Z", "weather in Paris"] {
        assert!(said.contains(kept), "{kept} was lost: {said}");
    }
    assert!(said.contains(&r.hash("jane.doe@example.com")), "PII is hashed in place: {said}");
}

#[test]
fn hashes_are_keyed_and_linkable() {
    let (a, b) = (redactor("deployment-key-number-one-000000"), redactor("deployment-key-number-two-000000"));
    assert_eq!(a.hash("jane.doe@example.com"), a.hash("jane.doe@example.com"));
    assert_ne!(a.hash("jane.doe@example.com"), b.hash("jane.doe@example.com"));
    assert!(a.hash("x").starts_with("sha256:") && a.hash("x").len() == "sha256:".len() + 64);
    assert!(Redactor::new(b"short", &[]).is_err());
    assert_ne!(Redactor::ephemeral(&[]).hash("x"), Redactor::ephemeral(&[]).hash("x"));
}

#[test]
fn streams_and_headers_are_redacted_and_stay_well_formed() {
    let r = redactor("a-deployment-key-of-32-bytes-000");
    let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"mail jane.doe@example.com key sk-proj-Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0Lz\"}}]}\n\ndata: [DONE]\n\n";
    let out = r.text(sse);
    assert!(!out.contains("jane.doe") && !out.contains("sk-proj-"));
    for line in out.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| *l != "[DONE]") {
        serde_json::from_str::<Value>(line).expect("redacted events stay JSON");
    }
    let headers: BTreeMap<String, String> = [
        ("Authorization", "Bearer sk-live-abc"),
        ("x-api-key", "k"),
        ("x-request-id", "req-7"),
        ("x-user", "jane.doe@example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let h = r.headers(&headers);
    assert_eq!(
        (h["Authorization"].as_str(), h["x-api-key"].as_str(), h["x-request-id"].as_str()),
        (REDACTED, REDACTED, "req-7")
    );
    assert_eq!(h["x-user"], r.hash("jane.doe@example.com"));
}
