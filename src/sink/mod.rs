//! What leaves the process: redaction now; the Parquet `diffs/` and `cases/`
//! writer lands with the sink issue.

pub mod redact;
