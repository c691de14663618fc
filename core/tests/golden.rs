//! Golden fixture tables: every input file under `tests/fixtures/{request,
//! response,error,stream}/<from>/` is converted to each protocol and compared
//! with `<name>.to-<to>.<ext>`. A new case is a new input file; run with
//! `SHADOWGATE_BLESS=1` to write its expected output, then review it.

// Tests read their fixtures from disk; the I/O ban is for the core itself.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use serde_json::json;
use shadowgate_core::streaming::{StreamOptions, convert_stream};
use shadowgate_core::{Protocol, dispatch};

fn run_table(kind: &str, op: &str) -> usize {
    let mut n = 0;
    for from in Protocol::ALL {
        for input in inputs(kind, from, "json") {
            let bytes = std::fs::read(&input).unwrap();
            for to in Protocol::ALL {
                let header = json!({"ctx": ctx(), "from": from.as_str(), "to": to.as_str()});
                let out = dispatch(op, &framed(header, &bytes));
                check_golden(&expected_path(&input, to), &pretty(&out));
                n += 1;
            }
        }
    }
    n
}

#[test]
fn requests() {
    assert!(run_table("request", "compat.request") >= 20);
}

#[test]
fn responses() {
    assert!(run_table("response", "compat.response") >= 20);
}

#[test]
fn errors() {
    assert!(run_table("error", "compat.error") >= 8);
}

#[test]
fn streams() {
    let mut n = 0;
    for (input, from, bytes) in stream_inputs() {
        for to in Protocol::ALL {
            let opts = StreamOptions {
                from: from.as_str().into(),
                to: to.as_str().into(),
                include_usage: true,
                max_event_bytes: None,
            };
            let (out, _err) = convert_stream(&ctx(), &opts, &[&bytes]).unwrap();
            check_golden(&expected_path(&input, to), &out);
            n += 1;
        }
    }
    assert!(n >= 24);
}
