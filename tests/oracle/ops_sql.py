#!/usr/bin/env python3
"""DuckDB cross-check of single-column aggregations in a weft join output.

For the operations SQL can express (SUM, COUNT, AVERAGE, MIN, MAX, VARIANCE via var_pop,
UNIQUE_COUNT, FIRST/LAST via arg_min/arg_max, FIRST_K/LAST_K via ordered lists), computes each
feature column with a point-in-time join in DuckDB and compares it with weft's output table.
It does not read the Join JSON: the test describes the columns in a small spec file.

    python3 tests/oracle/ops_sql.py --warehouse DIR --spec SPEC.json

Spec:
    {"output": "ns.t", "left": "ns.t", "row_id": "row_id", "left_ts": "ts",
     "parts": [{"table": "ns.t", "left_key": "user", "right_key": "user",
                "input": "i", "accuracy": "temporal" | "snapshot",
                "columns": [{"name": "...", "op": "sum", "window_ms": 86400000 | null, "k": 3}]}]}

Rules (chronon-semantics §2.3, §2.6, §3.4): TEMPORAL includes right rows with
floor(q - W, hop(W)) <= ts < q (hop 1 d if W >= 12 d, 1 h if W >= 12 h, else 5 min); SNAPSHOT
includes T - W <= ts < T with T the UTC midnight of the left ts's day; unbounded windows drop the
lower bound. NULL inputs are ignored, a NULL left key matches nothing, and an empty aggregation
is NULL (also for COUNT). Timestamps per key must be distinct (FIRST/LAST ties are not modelled).

Exit codes: 0 = match (prints "oracle: N rows match"), 1 = mismatch, 2 = bad input.
"""

import argparse
import json
import math
import os
import sys

import duckdb

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def hop(w):
    if w >= 12 * DAY_MS:
        return DAY_MS
    if w >= 12 * HOUR_MS:
        return HOUR_MS
    return 5 * MINUTE_MS


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def scan(root, table):
    ns, _, name = table.partition(".")
    path = os.path.join(root, ns, name, "*", "*.parquet").replace("'", "''")
    return (f"read_parquet('{path}', hive_partitioning=true, union_by_name=true, "
            f"hive_types={{'ds': 'VARCHAR'}})")


def agg_sql(op, k):
    v = "r.v"
    nn = f"FILTER (WHERE {v} IS NOT NULL)"
    some = f"count({v}) > 0"
    if op == "sum":
        return f"sum({v})"
    if op == "count":
        return f"NULLIF(count({v}), 0)"
    if op == "average":
        return f"avg({v})"
    if op in ("min", "max"):
        return f"{op}({v})"
    if op == "variance":
        return f"var_pop({v})"
    if op == "unique_count":
        return f"NULLIF(count(DISTINCT {v}), 0)"
    if op == "first":
        return f"arg_min({v}, r.ts) {nn}"
    if op == "last":
        return f"arg_max({v}, r.ts) {nn}"
    if op in ("first_k", "last_k"):
        order = "ASC" if op == "first_k" else "DESC"
        return f"(CASE WHEN {some} THEN list({v} ORDER BY r.ts {order}) {nn} END)[1:{int(k)}]"
    raise SystemExit(f"ops_sql: operation {op!r} is not expressible here")


def window_sql(accuracy, w):
    if accuracy == "temporal":
        cond = "r.ts < l.q"
        if w is not None:
            h = hop(w)
            cond += f" AND r.ts >= ((l.q - {w}) // {h}) * {h}"
        return cond
    if accuracy == "snapshot":
        t = f"((l.q // {DAY_MS}) * {DAY_MS})"
        cond = f"r.ts < {t}"
        if w is not None:
            cond += f" AND r.ts >= {t} - {w}"
        return cond
    raise SystemExit(f"ops_sql: accuracy {accuracy!r}")


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(close(x, y) for x, y in zip(a, b)))
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= max(1e-12, 1e-9 * max(abs(a), abs(b)))
    return a == b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--spec", required=True)
    args = ap.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    root = args.warehouse
    con = duckdb.connect()
    rid, lts = spec["row_id"], spec["left_ts"]
    out_cols = {c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {scan(root, spec['output'])}").fetchall()}
    problems = []
    total = 0
    for p in spec["parts"]:
        for c in p["columns"]:
            name = c["name"]
            if name not in out_cols:
                problems.append(f"column {name} is missing from {spec['output']}")
                continue
            sql = f"""
                WITH l AS (SELECT {qi(rid)} AS rid, {qi(p['left_key'])} AS key, {qi(lts)} AS q
                           FROM {scan(root, spec['left'])}),
                     r AS (SELECT {qi(p['right_key'])} AS key, {qi(p['input'])} AS v, ts
                           FROM {scan(root, p['table'])}),
                     x AS (SELECT l.rid, {agg_sql(c['op'], c.get('k'))} AS v
                           FROM l LEFT JOIN r ON r.key = l.key AND {window_sql(p['accuracy'], c.get('window_ms'))}
                           GROUP BY l.rid),
                     o AS (SELECT {qi(rid)} AS rid, {qi(name)} AS v FROM {scan(root, spec['output'])})
                SELECT x.rid, x.v, o.v FROM x FULL OUTER JOIN o ON x.rid = o.rid ORDER BY 1
            """
            rows = con.execute(sql).fetchall()
            total = max(total, len(rows))
            bad = [r for r in rows if not close(r[1], r[2])]
            for r in bad[:10]:
                problems.append(f"{name} ({c['op']}): row_id={r[0]}: duckdb {r[1]!r}, weft {r[2]!r}")
            if len(bad) > 10:
                problems.append(f"{name}: {len(bad) - 10} more rows differ")
    if problems:
        print("oracle: weft and DuckDB disagree:\n" + "\n".join(problems))
        sys.exit(1)
    print(f"oracle: {total} rows match")


if __name__ == "__main__":
    main()
