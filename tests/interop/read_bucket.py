"""Reads shadowgate's tables from an S3 bucket with pyarrow, independently of
the Rust reader: each table as one Hive-partitioned dataset over every
instance's files. Prints rows per table, per instance and per date as JSON."""

import json
import sys
from collections import Counter
from urllib.parse import urlparse

import pyarrow.dataset as ds
import pyarrow.fs as pafs


def main(endpoint: str, root: str) -> None:
    url = urlparse(endpoint)
    fs = pafs.S3FileSystem(
        endpoint_override=url.netloc,
        scheme=url.scheme,
        access_key="test",
        secret_key="test",
        region="us-east-1",
    )
    out = {}
    for table in ("diffs", "cases"):
        t = ds.dataset(f"{root}/{table}", filesystem=fs, format="parquet", partitioning="hive").to_table()
        out[table] = {
            "rows": t.num_rows,
            "instances": dict(Counter(t.column("instance_id").to_pylist())),
            "dates": dict(Counter(str(d) for d in t.column("date").to_pylist())),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
