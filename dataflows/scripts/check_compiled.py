#!/usr/bin/env python3
"""
Sanity checks for the compiled configs under production/ (run by compile.sh; needs PYTHONPATH=<dataflows root>).

  1. every file under production/ is valid JSON;
  2. the set of compiled files equals the set of Python definitions (team/module/variable of every
     GroupBy / Join / StagingQuery object defined in group_bys/, joins/, staging_queries/);
  3. cross-config checks that Chronon's compiler does not do:
       - every table read is one of the raw input tables (README "TABLES") or a table produced by this repo
         (staging query outputs, join outputs, join `_logged` tables);
       - selected identifier columns / time columns of raw-table sources exist in the raw table schema;
       - every join left is an EventSource with a `ts` select;
       - table bootstrap parts only select row ids / keys / ts / ds and fields of the join (chronon-semantics 4.4);
         bootstrap parts without selects must be log tables;
       - label parts follow chronon-semantics 7.2;
  4. prints a summary table of compiled files.
Exits non-zero on any failure.
"""

import json
import os
import re
import sys

import ai.chronon.repo.extract_objects as eo
import ai.chronon.utils as chronon_utils
from ai.chronon.api.ttypes import GroupBy, Join, StagingQuery

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(__file__)))
PRODUCTION = os.path.join(ROOT, "production")
FOLDERS = {"staging_queries": StagingQuery, "group_bys": GroupBy, "joins": Join}

# Raw input tables (keep in sync with README.md "TABLES"); all partitioned by ds, ts = epoch millis UTC.
RAW_TABLES = {
    "data.checkouts": ["event_id", "user_id", "merchant_id", "amount", "ts"],
    "data.purchases": ["user_id", "merchant_id", "amount_cents", "category", "ts"],
    "data.page_views": ["user_id", "page", "dwell_ms", "ts"],
    "data.users": ["user_id", "country", "account_age_days", "is_verified"],
    "data.merchants": ["merchant_id", "merchant_category", "rating"],
    "data.refunds": ["user_id", "refund_cents", "ts"],
    "data.checkout_outcomes": ["user_id", "is_fraud", "dispute_count"],
    "data.legacy_checkout_features": ["event_id", "legacy_purchase_sum_7d", "legacy_purchase_count_7d"],
    "data.external_user_backfill": [
        "event_id",
        "request_context",
        "ext_service_user_country",
        "ext_service_user_phone_country",
    ],
}
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

errors = []


def fail(msg):
    errors.append(msg)


def sanitize(name):
    return re.sub("[^a-zA-Z0-9_]", "_", name)


def output_table(conf):
    return f"{conf['metaData']['outputNamespace']}.{sanitize(conf['metaData']['name'])}"


# ---------------------------------------------------------------------------------------------------------------------
# 1. valid JSON
compiled = {}  # relative path -> parsed json
all_files = set()
for folder in FOLDERS:
    for dirpath, _, files in os.walk(os.path.join(PRODUCTION, folder)):
        for f in files:
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, PRODUCTION)
            all_files.add(rel)
            try:
                with open(path) as fh:
                    compiled[rel] = json.load(fh)
            except Exception as e:  # noqa: BLE001
                fail(f"{rel}: invalid JSON ({e})")
for dirpath, _, files in os.walk(PRODUCTION):
    for f in files:
        rel = os.path.relpath(os.path.join(dirpath, f), PRODUCTION)
        if rel.split(os.sep)[0] not in FOLDERS:
            fail(f"unexpected file under production/: {rel}")

# ---------------------------------------------------------------------------------------------------------------------
# 2. compiled files == Python definitions
chronon_utils.chronon_root_path = ROOT
expected = {}
for folder, cls in FOLDERS.items():
    for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
        for f in sorted(files):
            if not f.endswith(".py") or f == "__init__.py":
                continue
            for name in eo.from_file(ROOT, os.path.join(dirpath, f), cls):
                team, rest = name.split(".", 1)
                expected[os.path.join(folder, team, rest)] = name
missing = sorted(set(expected) - set(compiled))
extra = sorted(all_files - set(expected))
for m in missing:
    fail(f"definition {expected[m]} has no compiled file production/{m}")
for x in extra:
    fail(f"stale compiled file without Python definition: production/{x}")
for rel, conf in compiled.items():
    if rel in expected and conf.get("metaData", {}).get("name") != expected[rel]:
        fail(f"{rel}: metaData.name {conf.get('metaData', {}).get('name')} != {expected[rel]}")

# ---------------------------------------------------------------------------------------------------------------------
# 3. cross-config checks
staging = {r: c for r, c in compiled.items() if r.startswith("staging_queries")}
joins = {r: c for r, c in compiled.items() if r.startswith("joins")}
group_bys = {r: c for r, c in compiled.items() if r.startswith("group_bys")}

DRIVER_COLUMNS = ["event_id", "user_id", "merchant_id", "amount", "ts"]
produced = {}  # table -> columns (None = unknown)
for conf in staging.values():
    produced[output_table(conf)] = DRIVER_COLUMNS
for conf in joins.values():
    produced[output_table(conf)] = None
    produced[output_table(conf) + "_logged"] = None
known_tables = dict(RAW_TABLES, **produced)


def check_table(where, table):
    if table not in known_tables:
        fail(f"{where}: reads unknown table {table}")


def check_query_columns(where, table, query):
    cols = known_tables.get(table)
    if cols is None:
        return
    cols = set(cols) | {"ds"}
    for out, expr in (query.get("selects") or {}).items():
        if IDENT.match(expr) and expr not in cols:
            fail(f"{where}: select {out}={expr} is not a column of {table} {sorted(cols)}")
    tc = query.get("timeColumn")
    if tc and IDENT.match(tc) and tc not in cols:
        fail(f"{where}: timeColumn {tc} is not a column of {table}")


def source_table_and_query(src):
    if "events" in src:
        return src["events"]["table"], src["events"]["query"]
    if "entities" in src:
        return src["entities"]["snapshotTable"], src["entities"]["query"]
    raise ValueError(f"unsupported source {list(src)}")


def op_suffix(agg):
    from ai.chronon.api.ttypes import Operation

    op = Operation._VALUES_TO_NAMES[agg["operation"]].lower()
    if op in ("last_k", "first_k", "top_k", "bottom_k"):
        return op[:-2] + agg["argMap"]["k"]
    return op


def gb_value_columns(gb):
    if gb.get("aggregations"):
        cols = []
        for agg in gb["aggregations"]:
            base = f"{agg['inputColumn']}_{op_suffix(agg)}"
            windowed = [
                base if w["length"] <= 0 or w["length"] >= 2**31 - 1 else f"{base}_{w['length']}{'hd'[w['timeUnit']]}"
                for w in (agg.get("windows") or [{"length": 0, "timeUnit": 1}])
            ]
            if agg.get("buckets"):
                windowed = [f"{n}_by_{b}" for b in agg["buckets"] for n in windowed]
            cols.extend(windowed)
    else:
        _, q = source_table_and_query(gb["sources"][0])
        cols = [c for c in q["selects"] if c not in gb["keyColumns"]]
    derivations = gb.get("derivations")
    if derivations:
        renamed = {d["expression"] for d in derivations if IDENT.match(d["expression"]) and d["name"] != "*"}
        out = []
        for d in derivations:
            if d["name"] == "*":
                out.extend(c for c in cols if c not in renamed)
            else:
                out.append(d["name"])
        cols = out
    return cols


def check_group_by(where, gb):
    for src in gb["sources"]:
        table, q = source_table_and_query(src)
        check_table(where, table)
        check_query_columns(where, table, q)


def join_fields(join):
    """Field universe of a join (chronon-semantics 4.3) + left columns."""
    left_cols = set(join["left"]["events"]["query"]["selects"]) if "events" in join["left"] else set()
    fields = set()
    for jp in join["joinParts"]:
        gb = jp["groupBy"]
        prefix = "_".join(p for p in [jp.get("prefix"), sanitize(gb["metaData"]["name"])] if p)
        fields |= {f"{prefix}_{c}" for c in gb_value_columns(gb)}
        right_to_left = {v: k for k, v in (jp.get("keyMapping") or {}).items()}
        fields |= {right_to_left.get(k, k) for k in gb["keyColumns"]}
    for ep in join.get("onlineExternalParts") or []:
        src = ep["source"]
        name = src["metadata"]["name"]
        full = "ext_" + "_".join(p for p in [ep.get("prefix"), sanitize(name)] if p)
        key_to_left = {v: k for k, v in (ep.get("keyMapping") or {}).items()}
        keys = [p["name"] for p in src["keySchema"].get("params", [])]
        values = [p["name"] for p in src["valueSchema"].get("params", [])]
        fields |= {key_to_left.get(k, k) for k in keys}
        fields |= {f"{full}_{v}" for v in values}
        if name == "contextual":
            fields |= set(values)
    derivations = join.get("derivations") or []
    fields |= {d["name"] for d in derivations if d["name"] != "*"}
    if any(d["name"] == "*" for d in derivations):
        fields |= left_cols
    return fields, left_cols


for rel, sq in sorted(staging.items()):
    for table in re.findall(r"(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*)", sq["query"], re.I):
        check_table(rel, table)
    if not sq.get("startPartition"):
        fail(f"{rel}: missing startPartition")

for rel, gb in sorted(group_bys.items()):
    check_group_by(rel, gb)

for rel, join in sorted(joins.items()):
    left = join["left"]
    if "events" not in left:
        fail(f"{rel}: join left must be an EventSource")
        continue
    lq = left["events"]["query"]
    if "ts" not in (lq.get("selects") or {}) or not lq.get("timeColumn"):
        fail(f"{rel}: join left must select ts (timeColumn)")
    check_table(rel, left["events"]["table"])
    check_query_columns(rel, left["events"]["table"], lq)
    for jp in join["joinParts"]:
        check_group_by(f"{rel} / {jp['groupBy']['metaData']['name']}", jp["groupBy"])
    fields, left_cols = join_fields(join)
    row_ids = join.get("rowIds") or []
    for i, bp in enumerate(join.get("bootstrapParts") or []):
        where = f"{rel} bootstrapParts[{i}] ({bp['table']})"
        check_table(where, bp["table"])
        keys = bp.get("keyColumns") or row_ids
        if not keys:
            fail(f"{where}: no bootstrap keys (set row_ids or key_columns)")
        selects = (bp.get("query") or {}).get("selects")
        if not selects:
            if not bp["table"].endswith("_logged"):
                fail(f"{where}: bootstrap without selects must be a log table (else left columns break validation)")
            continue
        check_query_columns(where, bp["table"], bp["query"])
        for k in keys:
            if k not in selects:
                fail(f"{where}: bootstrap key {k} is not selected")
        for col in selects:
            if col not in keys and col not in ("ts", "ds") and col not in fields:
                fail(f"{where}: column {col} is not a field of the join")
    lp = join.get("labelPart")
    if lp:
        if lp["leftStartOffset"] < lp["leftEndOffset"]:
            fail(f"{rel}: label leftStartOffset < leftEndOffset")
        for label in lp["labels"]:
            gb = label["groupBy"]
            check_group_by(f"{rel} label {gb['metaData']['name']}", gb)
            src = gb["sources"][0]
            if gb.get("aggregations"):
                aggs = gb["aggregations"]
                ok = (
                    "events" in src
                    and len(lp["labels"]) == 1
                    and len(aggs) == 1
                    and len(aggs[0].get("windows") or []) == 1
                    and aggs[0]["windows"][0]["timeUnit"] == 1
                    and lp["leftStartOffset"] == lp["leftEndOffset"] == aggs[0]["windows"][0]["length"]
                )
                if not ok:
                    fail(f"{rel}: aggregated label part violates chronon-semantics 7.2")
            elif "entities" not in src:
                fail(f"{rel}: non-aggregated label GroupBy must be an entity GroupBy")

# ---------------------------------------------------------------------------------------------------------------------
# 4. summary
KIND = {"staging_queries": "StagingQuery", "group_bys": "GroupBy", "joins": "Join"}
rows = []
for rel in sorted(compiled, key=lambda r: (list(FOLDERS).index(r.split(os.sep)[0]), r)):
    conf = compiled[rel]
    kind = KIND[rel.split(os.sep)[0]]
    detail = ""
    if kind == "Join":
        bits = [f"parts={len(conf['joinParts'])}"]
        if conf.get("bootstrapParts"):
            bits.append(f"bootstrap={len(conf['bootstrapParts'])}")
        if conf.get("onlineExternalParts"):
            bits.append(f"external={len(conf['onlineExternalParts'])}")
        if conf.get("labelPart"):
            bits.append("label")
        if conf.get("derivations"):
            bits.append(f"derivations={len(conf['derivations'])}")
        if conf["metaData"].get("online"):
            bits.append(f"online(sample={conf['metaData'].get('samplePercent')})")
        detail = " ".join(bits)
    elif kind == "GroupBy":
        acc = {0: "TEMPORAL", 1: "SNAPSHOT"}.get(conf.get("accuracy"), "inferred")
        src = "events" if "events" in conf["sources"][0] else "entities"
        aggs = conf.get("aggregations")
        detail = f"{src} {acc} " + (f"aggs={len(aggs)}" if aggs else "no-agg")
    rows.append((kind, "production/" + rel, output_table(conf), detail))

widths = [max(len(r[i]) for r in rows + [("kind", "file", "output table", "details")]) for i in range(4)]
fmt = "  ".join(f"{{:<{w}}}" for w in widths)
print(fmt.format("kind", "file", "output table", "details"))
print(fmt.format(*["-" * w for w in widths]))
for r in rows:
    print(fmt.format(*r))
print(f"\n{len(compiled)} compiled files ({len(staging)} staging queries, {len(group_bys)} group bys, {len(joins)} joins)")

if errors:
    print("\nCHECK FAILED:", file=sys.stderr)
    for e in errors:
        print("  - " + e, file=sys.stderr)
    sys.exit(1)
print("all checks passed")
