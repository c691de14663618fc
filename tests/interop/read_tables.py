"""Reads shadowgate's Parquet tables with pyarrow and duckdb, independently of
the Rust reader, and prints what it found as JSON: row counts per table,
column names and types, and a DuckDB aggregate over the partitioned layout."""

import json
import sys

import duckdb
import pyarrow.dataset as ds


def main(data_dir: str) -> None:
    out = {}
    for table in ("diffs", "cases"):
        dataset = ds.dataset(f"{data_dir}/{table}", format="parquet", partitioning="hive")
        t = dataset.to_table()
        out[table] = {
            "rows": t.num_rows,
            "columns": {f.name: str(f.type) for f in t.schema},
        }
    con = duckdb.connect()
    rows = con.execute(
        f"""
        SELECT module, outcome, count(*) AS n
        FROM read_parquet('{data_dir}/diffs/*/*.parquet', hive_partitioning = true)
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    out["duckdb_diffs_by_module_outcome"] = [list(r) for r in rows]
    out["duckdb_cases"] = con.execute(
        f"SELECT count(*), count(DISTINCT case_id) FROM read_parquet('{data_dir}/cases/*/*.parquet')"
    ).fetchone()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
