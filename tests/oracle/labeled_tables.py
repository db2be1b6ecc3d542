#!/usr/bin/env python3
"""Recomputes a label join's `_labeled` and `_labeled_latest` tables (chronon-semantics §7.7) in
DuckDB SQL, straight from the Parquet files of the feature table and the label table, and
compares them with the tables weft wrote. Uses no weft code.

    python3 tests/oracle/labeled_tables.py --warehouse DIR --join ns.features:id1,id2 [--join …]

Tables: `ns.t` is `DIR/ns/t/`; the feature table and the labeled tables are partitioned by `ds`,
the label table `<features>_labels` by `label_ds` then `ds` (hive folders, no partition columns in
the files).

Exit codes: 0 every table matches (prints "oracle: N … rows match" per join), 1 a mismatch
(column names, types, or rows; the first unmatched rows of each side are printed).
"""

import argparse
import os
import sys
from datetime import date, timedelta

import duckdb


def q(name):
    return '"' + name.replace('"', '""') + '"'


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def table_dir(wh, name):
    ns, t = name.split(".", 1)
    return os.path.join(wh, ns, t)


def scan(wh, name, depth, partition_cols):
    """read_parquet over a hive-partitioned table, partition values kept as VARCHAR."""
    pattern = os.path.join(table_dir(wh, name), *(["*"] * depth), "*.parquet")
    types = ", ".join(f"{lit(c)}: VARCHAR" for c in partition_cols)
    return (
        f"read_parquet({lit(pattern)}, hive_partitioning = true, union_by_name = true, "
        f"hive_types = {{{types}}})"
    )


def columns(con, relation):
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def label_partitions(wh, labels):
    """(label_ds, ds) of every label partition folder (Chronon lists partitions, not rows)."""
    out = []
    root = table_dir(wh, labels)
    for outer in sorted(os.listdir(root)):
        if not outer.startswith("label_ds="):
            continue
        for inner in sorted(os.listdir(os.path.join(root, outer))):
            if inner.startswith("ds="):
                out.append((outer[len("label_ds="):], inner[len("ds="):]))
    return out


def latest_filter(partitions):
    """Chronon's getLatestLabelMapping + createLatestLabelView: latest(ds) = max(label_ds); ds
    values grouped by their latest label_ds and chunked into ranges of consecutive days; a CASE
    keeping the latest version inside each range and every row elsewhere."""
    latest = {}
    for label_ds, ds in partitions:
        latest[ds] = max(latest.get(ds, label_ds), label_ds)
    by_label = {}
    for ds, label_ds in latest.items():
        by_label.setdefault(label_ds, []).append(date.fromisoformat(ds))
    whens = []
    for label_ds, days in sorted(by_label.items()):
        days.sort()
        start = prev = days[0]
        for d in days[1:] + [None]:
            if d is not None and d == prev + timedelta(days=1):
                prev = d
                continue
            whens.append(
                f"WHEN ds BETWEEN {lit(start.isoformat())} AND {lit(prev.isoformat())} "
                f"THEN label_ds = {lit(label_ds)}"
            )
            if d is not None:
                start = prev = d
    if not whens:
        return "true"
    return "CASE " + " ".join(whens) + " ELSE true END"


def compare(con, what, expected, actual):
    exp_cols = columns(con, expected)
    act_cols = columns(con, actual)
    if exp_cols != act_cols:
        print(f"{what}: columns differ\n  expected {exp_cols}\n  weft     {act_cols}")
        return None
    missing = con.execute(
        f"SELECT * FROM {expected} EXCEPT ALL SELECT * FROM {actual}"
    ).fetchall()
    extra = con.execute(
        f"SELECT * FROM {actual} EXCEPT ALL SELECT * FROM {expected}"
    ).fetchall()
    n_exp = con.execute(f"SELECT count(*) FROM {expected}").fetchone()[0]
    n_act = con.execute(f"SELECT count(*) FROM {actual}").fetchone()[0]
    if missing or extra:
        print(f"{what}: {n_exp} expected rows, {n_act} weft rows")
        names = [c for c, _ in exp_cols]
        print(f"  columns: {names}")
        for r in missing[:20]:
            print(f"  only expected: {r}")
        for r in extra[:20]:
            print(f"  only weft:     {r}")
        return None
    return n_exp


def check(wh, features, ids):
    """Compares one join's labeled tables; returns the row counts, or None on a mismatch."""
    labels, labeled, latest = (features + s for s in ("_labels", "_labeled", "_labeled_latest"))
    con = duckdb.connect()
    con.execute(f"CREATE VIEW f AS SELECT * FROM {scan(wh, features, 1, ['ds'])}")
    con.execute(f"CREATE VIEW l AS SELECT * FROM {scan(wh, labels, 2, ['label_ds', 'ds'])}")
    con.execute(f"CREATE VIEW weft_labeled AS SELECT * FROM {scan(wh, labeled, 1, ['ds'])}")
    con.execute(f"CREATE VIEW weft_latest AS SELECT * FROM {scan(wh, latest, 1, ['ds'])}")

    feature_cols = [c for c, _ in columns(con, "f") if c != "ds"]
    label_cols = [c for c, _ in columns(con, "l") if c not in ids and c not in ("label_ds", "ds")]
    select = [f"f.{q(c)}" for c in ids]
    select += [f"f.{q(c)}" for c in feature_cols if c not in ids]
    for c in label_cols:
        select.append(f"l.{q(c)}" if c.startswith("label") else f"l.{q(c)} AS {q('label_' + c)}")
    select += ["l.label_ds", "f.ds"]
    on = " AND ".join(f"f.{q(c)} = l.{q(c)}" for c in ids + ["ds"])
    con.execute(
        f"CREATE VIEW expected_labeled AS SELECT {', '.join(select)} FROM f LEFT OUTER JOIN l ON {on}"
    )
    con.execute(
        "CREATE VIEW expected_latest AS SELECT * FROM expected_labeled WHERE "
        + latest_filter(label_partitions(wh, labels))
    )
    n1 = compare(con, labeled, "expected_labeled", "weft_labeled")
    n2 = compare(con, latest, "expected_latest", "weft_latest")
    if n1 is None or n2 is None:
        return None
    return n1, n2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warehouse", required=True)
    ap.add_argument(
        "--join",
        action="append",
        required=True,
        metavar="FEATURES:IDS",
        help="a join's feature table (ns.name) and its row identifier columns without ds "
        "(comma-separated); repeatable",
    )
    a = ap.parse_args()
    status = 0
    for spec in a.join:
        features, ids = spec.split(":", 1)
        ids = [c for c in ids.split(",") if c]
        n = check(a.warehouse, features, ids)
        if n is None:
            status = 1
        else:
            print(
                f"oracle: {n[0]} {features}_labeled rows and {n[1]} {features}_labeled_latest "
                "rows match"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
