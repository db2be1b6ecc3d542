#!/usr/bin/env python3
"""Point-in-time join oracle for weft.

Computes Chronon's point-in-time join (event left, event GroupBys, SUM/COUNT, TEMPORAL or SNAPSHOT
accuracy) in DuckDB SQL straight from a compiled Join JSON and compares it with weft's output table.

    python3 tests/oracle/pit_join.py --warehouse DIR --conf PATH --start-ds D1 --end-ds D2 [--output-table ns.t]
    python3 tests/oracle/pit_join.py --self-test

Exit codes: 0 = match, 1 = mismatch, 2 = config not supported by the oracle / bad input.
Semantics: /work/shared/reference/chronon-semantics.md §1.1, §1.2, §2.2-§2.6, §3.3, §3.4.
"""

import argparse
import contextlib
import io
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from datetime import date, timedelta

import duckdb

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
INT_MAX = 2**31 - 1
TEMPORAL, SNAPSHOT = 0, 1                       # thrift Accuracy
UNITS = {0: (HOUR_MS, "h"), 1: (DAY_MS, "d")}   # thrift TimeUnit HOURS=0 DAYS=1
OPS = {6: "count", 7: "sum"}                    # thrift Operation COUNT=6 SUM=7
INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "BOOLEAN"}   # SUM -> BIGINT
FLOAT_TYPES = {"FLOAT", "DOUBLE"}                                     # SUM -> DOUBLE
REL_TOL, ABS_TOL = 1e-9, 1e-12


class Unsupported(Exception):
    """The config (or data) uses something this oracle does not model."""


def sanitize(s):
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


def qi(name):  # quote identifier
    return '"' + name.replace('"', '""') + '"'


def ql(s):  # quote literal
    return "'" + s.replace("'", "''") + "'"


def table_scan(root, table):
    if "/" in table:
        raise Unsupported(f"sub-partition specs in table names are not supported: {table}")
    ns, _, name = table.partition(".")
    if not ns or not name:
        raise Unsupported(f"table name must be ns.name: {table}")
    path = os.path.join(root, ns, name, "*", "*.parquet")
    return (f"read_parquet({ql(path)}, hive_partitioning=true, union_by_name=true, "
            f"hive_types={{'ds': 'VARCHAR'}})")


# ----------------------------------------------------------------------------------------------
# Config -> plan
# ----------------------------------------------------------------------------------------------

def check_fields(obj, allowed, what):
    for k, v in obj.items():
        if k not in allowed and v is not None and v is not False and v != [] and v != {}:
            raise Unsupported(f"{what}: field '{k}' is not supported by the oracle")


def check_query(query, what):
    check_fields(query, {"selects", "wheres", "timeColumn", "startPartition", "endPartition",
                         "setups", "partitionColumn"}, what)
    if query.get("setups"):
        raise Unsupported(f"{what}: setups are not supported")
    if query.get("partitionColumn") not in (None, "ds"):
        raise Unsupported(f"{what}: partitionColumn other than ds is not supported")
    texts = [v for v in (query.get("selects") or {}).values() if v]
    texts += list(query.get("wheres") or []) + [query.get("timeColumn") or ""]
    if any("{{" in t for t in texts):
        raise Unsupported(f"{what}: macros ({{{{ ... }}}}) are not supported")


def parse_window(w, accuracy, what):
    """-> (window_ms or None for unbounded, name suffix)."""
    length = w.get("length")
    if length is None or length <= 0 or length == INT_MAX:
        return None, ""
    unit = w.get("timeUnit")
    if unit not in UNITS:
        raise Unsupported(f"{what}: window timeUnit {unit!r} is not supported (HOURS=0, DAYS=1)")
    if accuracy == SNAPSHOT and unit == 0:
        raise Unsupported(f"{what}: hourly window with SNAPSHOT accuracy (Chronon rejects this)")
    unit_ms, suffix = UNITS[unit]
    return length * unit_ms, f"_{length}{suffix}"


def load_plan(conf):
    check_fields(conf, {"metaData", "left", "joinParts", "rowIds", "labelPart"}, "join")
    if set(conf["left"]) != {"events"}:
        raise Unsupported("only an events left source is supported")
    ev = conf["left"]["events"]
    check_fields(ev, {"table", "query", "topic"}, "left.events")
    query = ev.get("query") or {}
    check_query(query, "left.query")
    selects = query.get("selects")
    if not selects:
        raise Unsupported("left.query.selects must be set (select * is not supported)")
    if "ts" not in selects:
        raise Unsupported("left.query.selects must contain 'ts' (compiled configs always do)")
    if "ds" in selects:
        raise Unsupported("left.query.selects must not select 'ds'")
    left = {"table": ev["table"], "selects": [(k, v or qi(k)) for k, v in selects.items()],
            "wheres": list(query.get("wheres") or []),
            "start": query.get("startPartition"), "end": query.get("endPartition")}

    columns = [name for name, _ in left["selects"]]
    parts = []
    for i, jp in enumerate(conf["joinParts"]):
        check_fields(jp, {"groupBy", "keyMapping", "prefix"}, f"joinParts[{i}]")
        gb = jp["groupBy"]
        gname = gb["metaData"]["name"]
        what = f"groupBy {gname}"
        check_fields(gb, {"metaData", "sources", "keyColumns", "aggregations", "accuracy",
                          "backfillStartDate"}, what)
        sources = []
        for s in gb["sources"]:
            if set(s) != {"events"}:
                raise Unsupported(f"{what}: only events sources are supported, got {sorted(s)}")
            e = s["events"]
            check_fields(e, {"table", "query", "topic"}, f"{what} source")  # isCumulative=true rejected
            sq = e.get("query") or {}
            check_query(sq, f"{what} source query")
            sources.append((e["table"], sq))
        acc = gb.get("accuracy")
        if acc is None:
            acc = TEMPORAL if any(s["events"].get("topic") for s in gb["sources"]) else SNAPSHOT
        if acc not in (TEMPORAL, SNAPSHOT):
            raise Unsupported(f"{what}: accuracy {acc!r}")
        if acc == TEMPORAL and any(not sq.get("timeColumn") for _, sq in sources):
            raise Unsupported(f"{what}: TEMPORAL events source needs a timeColumn")
        keys = list(gb["keyColumns"])
        right_to_left = {k: k for k in keys}
        for lcol, rkey in (jp.get("keyMapping") or {}).items():
            if rkey not in keys:
                raise Unsupported(f"{what}: keyMapping value {rkey!r} is not a key column")
            right_to_left[rkey] = lcol
        for rkey, lcol in right_to_left.items():
            if lcol not in columns:
                raise Unsupported(f"{what}: left column {lcol!r} (for key {rkey!r}) is not selected")
        prefix = jp.get("prefix")
        full_prefix = (prefix + "_" if prefix is not None else "") + sanitize(gname)
        aggs = []
        for a in gb.get("aggregations") or []:
            check_fields(a, {"inputColumn", "operation", "argMap", "windows"}, f"{what} aggregation")
            if a["operation"] not in OPS:
                raise Unsupported(f"{what}: operation {a['operation']} (only SUM=7 and COUNT=6)")
            op = OPS[a["operation"]]
            windows = a.get("windows")
            if windows is None:
                windows = [{"length": INT_MAX}]
            elif not windows:
                raise Unsupported(f"{what}: explicit empty windows list")
            for w in windows:
                window_ms, suffix = parse_window(w, acc, what)
                aggs.append({"input": a["inputColumn"], "op": op, "window": window_ms,
                             "col": f"{full_prefix}_{a['inputColumn']}_{op}{suffix}"})
        if not aggs:
            raise Unsupported(f"{what}: no aggregations")
        columns += [a["col"] for a in aggs]
        parts.append({"name": gname, "sources": sources, "accuracy": acc, "keys": keys,
                      "left_keys": [right_to_left[k] for k in keys], "aggs": aggs})
    if len(set(columns)) != len(columns):
        raise Unsupported(f"duplicate output columns: {columns}")
    out_ns = conf["metaData"].get("outputNamespace")
    output_table = f"{out_ns}.{sanitize(conf['metaData']['name'])}" if out_ns else None
    return {"left": left, "parts": parts, "columns": columns, "output_table": output_table}


# ----------------------------------------------------------------------------------------------
# Expected output in SQL
# ----------------------------------------------------------------------------------------------

def tail_hop(window_ms):  # FiveMinuteResolution (§2.6)
    if window_ms >= 12 * DAY_MS:
        return DAY_MS
    if window_ms >= 12 * HOUR_MS:
        return HOUR_MS
    return 5 * MINUTE_MS


def types_of(con, relation):
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {relation}").fetchall()}


def compute_expected(con, root, plan, d1, d2):
    """Creates temp table `expected` (columns: plan['columns'] + ds)."""
    left = plan["left"]
    conds = [f"ds BETWEEN {ql(d1)} AND {ql(d2)}"]
    if left["start"]:
        conds.append(f"ds >= {ql(left['start'])}")
    if left["end"]:
        conds.append(f"ds <= {ql(left['end'])}")
    conds += [f"({w})" for w in left["wheres"]]
    sel = ", ".join(f"{expr} AS {qi(name)}" for name, expr in left["selects"])
    # row id per left row so that duplicate left rows stay distinct (never deduplicated)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE left_rows AS
        SELECT row_number() OVER () AS __rid, * FROM (
            SELECT {sel}, ds FROM {table_scan(root, left['table'])} WHERE {' AND '.join(conds)})""")
    left_types = types_of(con, "left_rows")
    if left_types["ts"] not in INT_TYPES - {"BOOLEAN"}:
        raise Unsupported(f"left ts must be an integer (epoch millis), got {left_types['ts']}")
    if any(p["accuracy"] == TEMPORAL for p in plan["parts"]):
        if con.execute("SELECT count(*) FROM left_rows WHERE ts IS NULL").fetchone()[0]:
            raise Unsupported("left ts is NULL in some rows (Chronon fails the job)")

    joins, feature_cols = [], []
    for i, p in enumerate(plan["parts"]):
        inputs = sorted({a["input"] for a in p["aggs"]})
        scans = []
        for table, sq in p["sources"]:
            sels = sq.get("selects") or {}
            ts_expr = sq.get("timeColumn") or f"(epoch_ms(CAST(ds AS DATE)) + {DAY_MS} - 1)"

            def expr(c):
                return ts_expr if c == "ts" else (sels.get(c) or qi(c))
            cols = [f"{expr(k)} AS __k{j}" for j, k in enumerate(p["keys"])]
            cols += [f"{expr(c)} AS __v{j}" for j, c in enumerate(inputs)]
            cols.append(f"{ts_expr} AS __ts")
            where = []
            if sq.get("startPartition"):
                where.append(f"ds >= {ql(sq['startPartition'])}")
            if sq.get("endPartition"):
                where.append(f"ds <= {ql(sq['endPartition'])}")
            where += [f"({w})" for w in sq.get("wheres") or []]
            scans.append(f"SELECT {', '.join(cols)} FROM {table_scan(root, table)}"
                         + (f" WHERE {' AND '.join(where)}" if where else ""))
        any_key = " OR ".join(f"__k{j} IS NOT NULL" for j in range(len(p["keys"])))
        con.execute(f"CREATE OR REPLACE TEMP TABLE src_{i} AS SELECT * FROM ("
                    + " UNION ALL BY NAME ".join(f"({s})" for s in scans) + f") WHERE {any_key}")
        src_types = types_of(con, f"src_{i}")
        for j, (k, lk) in enumerate(zip(p["keys"], p["left_keys"])):
            if src_types[f"__k{j}"] != left_types[lk]:
                raise Unsupported(f"{p['name']}: join key {k} type {src_types[f'__k{j}']} "
                                  f"!= left {lk} type {left_types[lk]}")
        if src_types["__ts"] not in INT_TYPES - {"BOOLEAN"}:
            raise Unsupported(f"{p['name']}: ts must be an integer (epoch millis)")

        if p["accuracy"] == TEMPORAL:   # floor(q - W, hop) <= e.ts < q
            end = "l.ts"

            def start(w):
                return f"(((l.ts - {w}) // {tail_hop(w)}) * {tail_hop(w)})"
        else:                           # T - W <= e.ts < T, T = midnight of ts_ds(q)
            end = "epoch_ms(date_trunc('day', epoch_ms(l.ts)))"

            def start(w):
                return f"({end} - {w})"
        windows = [a["window"] for a in p["aggs"]]
        lower = ("TRUE" if None in windows
                 else " OR ".join(f"e.__ts >= {start(w)}" for w in sorted(set(windows))))
        on = [f"l.{qi(lk)} = e.__k{j}" for j, lk in enumerate(p["left_keys"])]
        on += [f"e.__ts < {end}", f"({lower})"]
        aggs = []
        for a in p["aggs"]:
            cond = "TRUE" if a["window"] is None else f"e.__ts >= {start(a['window'])}"
            v = f"e.__v{inputs.index(a['input'])}"
            vtype = src_types[v[2:]]
            if vtype.endswith("]") or vtype.startswith(("STRUCT", "MAP", "UNION")):
                raise Unsupported(f"{p['name']}: nested input type {vtype} for {a['input']}")
            if a["op"] == "count":
                agg = f"NULLIF(COUNT(CASE WHEN {cond} THEN {v} END), 0)"
            elif vtype in INT_TYPES:
                agg = f"CAST(SUM(CASE WHEN {cond} THEN CAST({v} AS BIGINT) END) AS BIGINT)"
            elif vtype in FLOAT_TYPES:  # NaN / +-Inf finalise to NULL
                s = f"SUM(CASE WHEN {cond} THEN CAST({v} AS DOUBLE) END)"
                agg = f"CASE WHEN isfinite({s}) THEN {s} END"
            else:
                raise Unsupported(f"{p['name']}: SUM over {vtype} input {a['input']}")
            aggs.append(f"{agg} AS {qi(a['col'])}")
            feature_cols.append(f"f{i}.{qi(a['col'])}")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE feat_{i} AS
            SELECT l.__rid, {', '.join(aggs)}
            FROM left_rows l LEFT JOIN src_{i} e ON {' AND '.join(on)}
            GROUP BY l.__rid""")
        joins.append(f"JOIN feat_{i} f{i} ON f{i}.__rid = l.__rid")

    left_cols = [f"l.{qi(name)}" for name, _ in left["selects"]]
    con.execute(f"CREATE OR REPLACE TEMP TABLE expected AS SELECT "
                f"{', '.join(left_cols + feature_cols)}, l.ds FROM left_rows l {' '.join(joins)}")


# ----------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------

class _Float:
    def __repr__(self):
        return "<float>"


FLOAT = _Float()


def _freeze(v):
    if isinstance(v, float):
        return FLOAT
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _floats_close(a, b):
    for x, y in zip(a, b):
        if math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif not math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            return False
    return True


def multiset_diff(expected, actual):
    """Rows only in expected, rows only in actual. Floats compared with tolerance, NULL == NULL."""
    def floats(row):
        return [v for v in row if isinstance(v, float)]
    groups = defaultdict(lambda: ([], []))
    for row in expected:
        groups[tuple(_freeze(v) for v in row)][0].append(row)
    for row in actual:
        groups[tuple(_freeze(v) for v in row)][1].append(row)
    only_exp, only_act = [], []
    for exp_rows, act_rows in groups.values():
        remaining = list(act_rows)
        for row in exp_rows:
            hit = next((k for k, r in enumerate(remaining) if _floats_close(floats(row), floats(r))), None)
            if hit is None:
                only_exp.append(row)
            else:
                remaining.pop(hit)
        only_act += remaining
    return only_exp, only_act


def compare(con, root, plan, output_table, d1, d2):
    cols = plan["columns"]
    exp_types = types_of(con, "expected")
    try:
        scan = table_scan(root, output_table)
        act_types = types_of(con, f"(SELECT * FROM {scan})")
    except duckdb.Error as e:
        print(f"oracle: MISMATCH: cannot read weft output table {output_table}: {e}")
        return False
    ok = True
    act_cols = [c for c in act_types if c != "ds"]
    if "ds" not in act_types:
        print("oracle: MISMATCH: output has no ds partition column")
        return False
    if act_cols != cols:
        ok = False
        print("oracle: MISMATCH in output columns")
        print(f"  expected: {cols}\n  actual:   {act_cols}")
        print(f"  missing: {[c for c in cols if c not in act_cols]}  "
              f"extra: {[c for c in act_cols if c not in cols]}")
        if set(act_cols) != set(cols):
            return False
    for c in cols:
        if exp_types[c] != act_types[c]:
            ok = False
            print(f"oracle: MISMATCH column type {c}: expected {exp_types[c]}, actual {act_types[c]}")
    sel = ", ".join(qi(c) for c in cols + ["ds"])
    exp_rows = con.execute(f"SELECT {sel} FROM expected").fetchall()
    act_rows = con.execute(f"SELECT {sel} FROM {scan} WHERE ds BETWEEN ? AND ?", [d1, d2]).fetchall()
    only_exp, only_act = multiset_diff(exp_rows, act_rows)
    if only_exp or only_act:
        ok = False
        print(f"oracle: MISMATCH in rows: expected {len(exp_rows)} rows, weft has {len(act_rows)}; "
              f"{len(only_exp)} expected rows unmatched, {len(only_act)} weft rows unmatched")
        print(f"  columns: {cols + ['ds']}")
        for label, rows in (("only in expected (oracle)", only_exp), ("only in weft output", only_act)):
            print(f"  {label} (first 20 of {len(rows)}):")
            for r in sorted(rows, key=repr)[:20]:
                print(f"    {r}")
    if ok:
        print(f"oracle: {len(exp_rows)} rows match")
    return ok


def run_oracle(warehouse, conf_path, d1, d2, output_table=None):
    with open(conf_path) as f:
        plan = load_plan(json.load(f))
    output_table = output_table or plan["output_table"]
    if not output_table:
        raise Unsupported("metaData.outputNamespace missing; pass --output-table")
    con = duckdb.connect()
    compute_expected(con, warehouse, plan, d1, d2)
    return compare(con, warehouse, plan, output_table, d1, d2)


# ----------------------------------------------------------------------------------------------
# Self-test: a naive Python loop implementation, written independently of the SQL above.
# ----------------------------------------------------------------------------------------------

EPOCH = date(1970, 1, 1)


def ms(y, mo, d, h=0, mi=0, s=0, milli=0):
    return (date(y, mo, d) - EPOCH).days * DAY_MS + ((h * 60 + mi) * 60 + s) * 1000 + milli


def ds_of(ts):
    return (EPOCH + timedelta(days=ts // DAY_MS)).isoformat()


LEFT_COLS = [("event_id", "VARCHAR"), ("user_id", "VARCHAR"), ("merchant_id", "VARCHAR"),
             ("amount_x2", "DOUBLE"), ("ts", "BIGINT")]
INPUT_TYPES = {"amount_cents": "BIGINT", "dwell": "DOUBLE", "n_items": "BIGINT"}
W1D, W7D, W12D, W14D, W3H, W12H = ({"length": 1, "timeUnit": 1}, {"length": 7, "timeUnit": 1},
                                   {"length": 12, "timeUnit": 1}, {"length": 14, "timeUnit": 1},
                                   {"length": 3, "timeUnit": 0}, {"length": 12, "timeUnit": 0})
UNBOUNDED_0 = {"length": 0, "timeUnit": 1}


def gen_data(seed=7):
    rnd = random.Random(seed)
    users, merchants = ["u1", "u2", "u3", "u4", None], ["m1", "m2", "m3", None]

    def rand_ts(d0, d1):  # mix of exact-ms and minute/5min/hour aligned times to hit boundaries
        day = ms(2026, 1, 1) + rnd.randrange(d0, d1) * DAY_MS
        return day + rnd.choice([rnd.randrange(DAY_MS), rnd.randrange(24) * HOUR_MS,
                                 rnd.randrange(288) * 5 * MINUTE_MS, rnd.randrange(1440) * MINUTE_MS])

    left = []
    for i in range(220):
        ts = rand_ts(8, 13)  # 2026-01-09 .. 2026-01-13 (09 and 13 are outside the tested range)
        left.append({"event_id": f"e{i}", "user_id": rnd.choice(users),
                     "merchant_id": rnd.choice(merchants),
                     "amount": rnd.choice([None, round(rnd.uniform(1, 500), 2)]), "ts": ts, "ds": ds_of(ts)})
    left += [dict(r) for r in left[:6]] + [dict(left[0])]                # duplicate left rows
    q_h1 = ms(2026, 1, 11, 10, 17, 23, 456)
    left += [
        {"event_id": "h1", "user_id": "uh", "merchant_id": None, "amount": 1.5, "ts": q_h1, "ds": "2026-01-11"},
        {"event_id": "misfiled", "user_id": "u1", "merchant_id": "m1", "amount": 3.0,   # ts_ds != ds
         "ts": ms(2026, 1, 11, 23, 59, 59, 999), "ds": "2026-01-12"},
        {"event_id": "midnight", "user_id": "u2", "merchant_id": "m2", "amount": 2.0,
         "ts": ms(2026, 1, 11), "ds": "2026-01-11"},
        {"event_id": "skip_me", "user_id": "u1", "merchant_id": "m1", "amount": 1.0,     # left where
         "ts": ms(2026, 1, 11, 5), "ds": "2026-01-11"},
        {"event_id": "nobody", "user_id": "u9", "merchant_id": "m9", "amount": 1.0,
         "ts": ms(2026, 1, 11, 6), "ds": "2026-01-11"},
    ]

    purchases, merchant_events = [], []

    def purchase(user, ts):
        purchases.append({"user_id": user, "amount_cents": rnd.choice([None, rnd.randrange(1, 10_000)]),
                          "dwell": rnd.choice([None, rnd.uniform(0, 100)]), "ts": ts, "ds": ds_of(ts)})

    def merchant_event(merchant, user, ts):
        merchant_events.append({"merchant": merchant, "user_id": user,
                                "n_items": rnd.choice([None, rnd.randrange(1, 20)]), "ts": ts, "ds": ds_of(ts)})

    for _ in range(1500):
        purchase(rnd.choice(users), rand_ts(-12, 13))        # 2025-12-20 .. 2026-01-13
    for _ in range(600):
        merchant_event(rnd.choice(merchants), rnd.choice(users), rand_ts(-12, 13))
    # events exactly at (and 1 ms around) every window boundary of some left rows
    for row in left[::9] + left[-4:]:
        q = row["ts"]
        t = q - q % DAY_MS
        points = [q, q - 1, t, t - 1]
        for w in (DAY_MS, 7 * DAY_MS, 12 * DAY_MS, 14 * DAY_MS, 3 * HOUR_MS, 12 * HOUR_MS):
            hop = DAY_MS if w >= 12 * DAY_MS else HOUR_MS if w >= 12 * HOUR_MS else 5 * MINUTE_MS
            s = (q - w) // hop * hop
            points += [s, s - 1, t - w, t - w - 1]
        for p in points:
            purchase(row["user_id"] or "u1", p)
            merchant_event(row["merchant_id"] or "m1", row["user_id"], p)
    # same-millisecond events
    for e in rnd.sample(purchases, 60):
        purchase(e["user_id"], e["ts"])
    for e in rnd.sample(merchant_events, 30):
        merchant_event(e["merchant"], e["user_id"], e["ts"])
    # a NaN input (its windows' dwell sums finalise to NULL), a user whose only input is NULL
    purchases.append({"user_id": "u3", "amount_cents": 5, "dwell": float("nan"),
                      "ts": ms(2026, 1, 10, 12), "ds": "2026-01-10"})
    purchases.append({"user_id": "u4", "amount_cents": None, "dwell": None,
                      "ts": ms(2026, 1, 10, 12), "ds": "2026-01-10"})
    # all-keys-NULL events
    merchant_events.append({"merchant": None, "user_id": None, "n_items": 7, "ts": ms(2026, 1, 10), "ds": "2026-01-10"})
    # hand-checked user "uh" (see self_test)
    for ts, val in ((q_h1, 1000), (q_h1 - 1, 1), (ms(2026, 1, 10, 10), 10), (ms(2026, 1, 10, 10) - 1, 100)):
        purchases.append({"user_id": "uh", "amount_cents": val, "dwell": None, "ts": ts, "ds": ds_of(ts)})
    return {"left": left, "data.purchases": purchases, "data.merchant_events": merchant_events}


def part_spec(kind, accuracy, topic, prefix, aggs, cols, time_column="ts"):
    """A self-test join part: its GroupBy JSON bits plus literal expected column names."""
    if kind == "purchases":
        spec = {"gb_name": "selftest.purchases.v1", "table": "data.purchases", "keys": ["user_id"],
                "key_mapping": {}, "selects": ["user_id", "amount_cents", "dwell"]}
    else:
        spec = {"gb_name": "selftest.merchant_events.v1", "table": "data.merchant_events",
                "keys": ["merchant", "user_id"], "key_mapping": {"merchant_id": "merchant"},
                "selects": ["merchant", "user_id", "n_items"]}
    if time_column is None:
        spec["gb_name"] = spec["gb_name"].replace(".v1", ".no_ts_v1")
    spec.update(accuracy=accuracy, topic=topic, prefix=prefix, aggs=aggs, cols=cols,
                time_column=time_column, start_partition="2025-12-24")
    return spec


def build_conf(name, parts):
    jps = []
    for p in parts:
        query = {"selects": {c: c for c in p["selects"]}, "startPartition": p["start_partition"], "setups": []}
        if p["time_column"]:
            query["timeColumn"] = p["time_column"]
        events = {"table": p["table"], "query": query}
        if p["topic"]:
            events["topic"] = p["topic"]
        aggs = []
        for inp, op, windows in p["aggs"]:
            agg = {"inputColumn": inp, "operation": op, "argMap": {}}
            if windows is not None:
                agg["windows"] = windows
            aggs.append(agg)
        gb = {"metaData": {"name": p["gb_name"], "team": "selftest"}, "sources": [{"events": events}],
              "keyColumns": p["keys"], "aggregations": aggs}
        if p["accuracy"] is not None:
            gb["accuracy"] = p["accuracy"]
        jp = {"groupBy": gb}
        if p["key_mapping"]:
            jp["keyMapping"] = p["key_mapping"]
        if p["prefix"]:
            jp["prefix"] = p["prefix"]
        jps.append(jp)
    selects = {"event_id": "event_id", "user_id": "user_id", "merchant_id": "merchant_id",
               "amount_x2": "amount * 2", "ts": "ts"}
    return {"metaData": {"name": name, "outputNamespace": "selftest_out", "team": "selftest"},
            "left": {"events": {"table": "src.left_events",
                                "query": {"selects": selects, "wheres": ["event_id <> 'skip_me'"],
                                          "timeColumn": "ts", "setups": []}}},
            "joinParts": jps}


def naive_join(parts, data, d1, d2):
    """Loop over left rows and events; returns (column names, duckdb types, rows incl. ds)."""
    cols = [c for c, _ in LEFT_COLS]
    types = [t for _, t in LEFT_COLS]
    for p in parts:
        for inp, op, windows in p["aggs"]:
            for _ in windows if windows is not None else [None]:
                types.append("BIGINT" if op == 6 else INPUT_TYPES[inp])
        cols += p["cols"]
    out = []
    for l in data["left"]:
        if not d1 <= l["ds"] <= d2 or l["event_id"] == "skip_me":
            continue
        row = [l["event_id"], l["user_id"], l["merchant_id"],
               None if l["amount"] is None else l["amount"] * 2, l["ts"]]
        q = l["ts"]
        for p in parts:
            left_of = {k: k for k in p["keys"]}
            left_of.update({rk: lk for lk, rk in p["key_mapping"].items()})
            temporal = p["accuracy"] == TEMPORAL or (p["accuracy"] is None and p["topic"])
            events = [e for e in data[p["table"]] if e["ds"] >= p["start_partition"]
                      and any(e[k] is not None for k in p["keys"])]
            for inp, op, windows in p["aggs"]:
                for w in windows if windows is not None else [None]:
                    length = 0 if w is None else w["length"]
                    wms = None if length <= 0 else length * (HOUR_MS if w["timeUnit"] == 0 else DAY_MS)
                    if any(l[left_of[k]] is None for k in p["keys"]):
                        row.append(None)
                        continue
                    if temporal:
                        hi = q
                        if wms is None:
                            lo = None
                        else:
                            hop = 300_000
                            if wms >= 12 * 3_600_000:
                                hop = 3_600_000
                            if wms >= 12 * 86_400_000:
                                hop = 86_400_000
                            lo = (q - wms) // hop * hop
                    else:
                        hi = q - q % DAY_MS
                        lo = None if wms is None else hi - wms
                    vals = []
                    for e in events:
                        if any(e[k] != l[left_of[k]] for k in p["keys"]) or e[inp] is None:
                            continue
                        ets = e["ts"] if p["time_column"] else ms(*map(int, e["ds"].split("-"))) + DAY_MS - 1
                        if ets < hi and (lo is None or ets >= lo):
                            vals.append(e[inp])
                    if not vals:
                        row.append(None)
                    elif op == 6:
                        row.append(len(vals))
                    else:
                        total = sum(vals)
                        row.append(None if isinstance(total, float) and not math.isfinite(total) else total)
        out.append(tuple(row) + (l["ds"],))
    return cols, types, out


def write_table(con, root, table, columns, types, rows):
    """Writes rows (last value = ds) as a hive-partitioned parquet table <root>/<ns>/<name>/ds=.../"""
    con.execute("CREATE OR REPLACE TEMP TABLE __w ("
                + ", ".join(f"{qi(c)} {t}" for c, t in zip(columns + ["ds"], types + ["VARCHAR"])) + ")")
    if rows:
        con.executemany(f"INSERT INTO __w VALUES ({', '.join('?' * (len(columns) + 1))})", rows)
    ns, name = table.split(".", 1)
    path = os.path.join(root, ns, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    con.execute(f"COPY __w TO {ql(path)} (FORMAT parquet, PARTITION_BY (ds))")


def self_test():
    d1, d2 = "2026-01-10", "2026-01-12"
    root = tempfile.mkdtemp(prefix="pit_oracle_")
    con = duckdb.connect()
    data = gen_data()

    def dict_rows(rows, cols):
        return [tuple(r[c] for c in cols + ["ds"]) for r in rows]
    left_cols = ["event_id", "user_id", "merchant_id", "amount", "ts"]
    write_table(con, root, "src.left_events", left_cols,
                ["VARCHAR", "VARCHAR", "VARCHAR", "DOUBLE", "BIGINT"], dict_rows(data["left"], left_cols))
    write_table(con, root, "data.purchases", ["user_id", "amount_cents", "dwell", "ts"],
                ["VARCHAR", "BIGINT", "DOUBLE", "BIGINT"],
                dict_rows(data["data.purchases"], ["user_id", "amount_cents", "dwell", "ts"]))
    write_table(con, root, "data.merchant_events", ["merchant", "user_id", "n_items", "ts"],
                ["VARCHAR", "VARCHAR", "BIGINT", "BIGINT"],
                dict_rows(data["data.merchant_events"], ["merchant", "user_id", "n_items", "ts"]))

    pv, mv = "selftest_purchases_v1", "selftest_merchant_events_v1"
    purchases_t = part_spec(
        "purchases", TEMPORAL, None, None,
        [("amount_cents", 7, [W1D, W7D, W12D, W14D, W3H]), ("amount_cents", 6, None),
         ("dwell", 7, [W1D, UNBOUNDED_0]), ("dwell", 6, [W12H])],
        [f"{pv}_amount_cents_sum_1d", f"{pv}_amount_cents_sum_7d", f"{pv}_amount_cents_sum_12d",
         f"{pv}_amount_cents_sum_14d", f"{pv}_amount_cents_sum_3h", f"{pv}_amount_cents_count",
         f"{pv}_dwell_sum_1d", f"{pv}_dwell_sum", f"{pv}_dwell_count_12h"])
    purchases_s = part_spec(
        "purchases", SNAPSHOT, None, None,
        [("amount_cents", 7, [W1D, W7D, W14D]), ("amount_cents", 6, None), ("dwell", 7, [W1D, UNBOUNDED_0])],
        [f"{pv}_amount_cents_sum_1d", f"{pv}_amount_cents_sum_7d", f"{pv}_amount_cents_sum_14d",
         f"{pv}_amount_cents_count", f"{pv}_dwell_sum_1d", f"{pv}_dwell_sum"])

    def merchants(accuracy, topic):  # accuracy None -> inferred from topic
        return part_spec("merchants", accuracy, topic, "m",
                         [("n_items", 6, [W1D]), ("n_items", 7, None), ("n_items", 7, [W7D])],
                         [f"m_{mv}_n_items_count_1d", f"m_{mv}_n_items_sum", f"m_{mv}_n_items_sum_7d"])
    no_ts = part_spec("purchases", SNAPSHOT, None, "nots", [("amount_cents", 7, [W1D, W7D])],
                      ["nots_selftest_purchases_no_ts_v1_amount_cents_sum_1d",
                       "nots_selftest_purchases_no_ts_v1_amount_cents_sum_7d"], time_column=None)
    cases = {
        "temporal": [purchases_t, merchants(None, "merchant_topic")],
        "snapshot": [purchases_s, merchants(None, None), no_ts],
        "mixed": [purchases_t, merchants(SNAPSHOT, "merchant_topic")],
    }
    failures = []

    def check(cond, msg):
        print(f"  [{'ok' if cond else 'FAIL'}] {msg}")
        if not cond:
            failures.append(msg)

    def oracle_quiet(conf_path):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            ok = run_oracle(root, conf_path, d1, d2)
        return ok, buf.getvalue()

    for case, parts in cases.items():
        name = f"selftest.pit.{case}_v1"
        conf_path = os.path.join(root, f"{case}.json")
        with open(conf_path, "w") as f:
            json.dump(build_conf(name, parts), f, indent=2)
        out_table = f"selftest_out.{sanitize(name)}"
        cols, types, rows = naive_join(parts, data, d1, d2)
        write_table(con, root, out_table, cols, types, rows)
        print(f"case {case}: {len(rows)} naive rows, "
              f"{sum(v is not None for r in rows for v in r[5:-1])} non-null feature values")
        ok, out = oracle_quiet(conf_path)
        check(ok, f"{case}: SQL oracle agrees with naive loop ({out.strip().splitlines()[-1]})")
        if not ok:
            print(out)
        if case != "temporal":
            continue
        # the oracle must catch broken outputs
        fi = next(k for k in range(5, len(cols)) if types[k] == "BIGINT" and any(r[k] for r in rows))
        ri = next(k for k, r in enumerate(rows) if r[fi])
        di = next(k for k in range(5, len(cols)) if types[k] == "DOUBLE" and any(r[k] for r in rows))
        dj = next(k for k, r in enumerate(rows) if r[di])
        nulls = next(k for k, r in enumerate(rows) if r[cols.index(f"{pv}_amount_cents_sum_3h")] is None)
        dup = next(k for k, r in enumerate(rows) if rows.count(r) > 1)
        ci = cols.index(f"{pv}_amount_cents_sum_3h")

        def patched(k, col, value):
            r = list(rows[k])
            r[col] = value
            return rows[:k] + [tuple(r)] + rows[k + 1:]
        swapped = [c for c in cols]
        swapped[5], swapped[6] = swapped[6], swapped[5]
        broken = {
            "off-by-one BIGINT feature": (cols, types, patched(ri, fi, rows[ri][fi] + 1)),
            "NULL feature written as 0": (cols, types, patched(nulls, ci, 0)),
            "double off by 1e-6 relative": (cols, types, patched(dj, di, rows[dj][di] * (1 + 1e-6))),
            "one duplicate left row dropped": (cols, types, rows[:dup] + rows[dup + 1:]),
            "feature columns swapped": (swapped, types[:5] + [types[6], types[5]] + types[7:],
                                        [r[:5] + (r[6], r[5]) + r[7:] for r in rows]),
            "SUM written as DOUBLE": (cols, types[:fi] + ["DOUBLE"] + types[fi + 1:], rows),
        }
        for what, (bcols, btypes, brows) in broken.items():
            write_table(con, root, out_table, bcols, btypes, brows)
            ok, out = oracle_quiet(conf_path)
            check(not ok and "MISMATCH" in out, f"{case}: detects {what}")
        write_table(con, root, out_table, cols, types, patched(dj, di, rows[dj][di] * (1 + 1e-12)))
        check(oracle_quiet(conf_path)[0], f"{case}: tolerates 1e-12 relative double noise")
        write_table(con, root, out_table, cols, types, rows)

    # hand-computed values for left row h1 (user uh, q = 2026-01-11 10:17:23.456)
    # uh events: q (1000, same ms: excluded), q-1 (1), 2026-01-10 10:00:00.000 (10, = floor(q-1d, 1h)),
    # 2026-01-10 09:59:59.999 (100)
    for case, want in (("temporal", (11, 111, 3)), ("snapshot", (110, 110, 2))):
        with open(os.path.join(root, f"{case}.json")) as f:
            plan = load_plan(json.load(f))
        compute_expected(con, root, plan, d1, d2)
        got = con.execute(f"SELECT {qi(pv + '_amount_cents_sum_1d')}, {qi(pv + '_amount_cents_sum_7d')}, "
                          f"{qi(pv + '_amount_cents_count')} FROM expected WHERE event_id = 'h1'").fetchall()
        check(got == [want], f"{case}: hand-computed h1 features {want} (got {got})")

    # unsupported configs are rejected with a clear error
    bad = build_conf("selftest.bad.v1", [purchases_t])
    bad["joinParts"][0]["groupBy"]["aggregations"][0]["operation"] = 8
    for what, conf in (("AVERAGE", bad),
                       ("hourly SNAPSHOT window", build_conf("x.y", [part_spec(
                           "purchases", SNAPSHOT, None, None, [("amount_cents", 7, [W3H])], ["c"])])),
                       ("bootstrapParts", dict(build_conf("x.y", [purchases_t]), bootstrapParts=[{"table": "t"}]))):
        try:
            load_plan(conf)
            check(False, f"rejects {what}")
        except Unsupported as e:
            check(True, f"rejects {what}: {e}")

    shutil.rmtree(root)
    if failures:
        print(f"self-test FAILED: {len(failures)} check(s)")
        return 1
    print("self-test passed")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse")
    ap.add_argument("--conf")
    ap.add_argument("--start-ds")
    ap.add_argument("--end-ds")
    ap.add_argument("--output-table", help="ns.name of weft's output (default: outputNamespace.cleanName)")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not (args.warehouse and args.conf and args.start_ds and args.end_ds):
        ap.error("--warehouse, --conf, --start-ds and --end-ds are required")
    try:
        return 0 if run_oracle(args.warehouse, args.conf, args.start_ds, args.end_ds, args.output_table) else 1
    except Unsupported as e:
        print(f"oracle: unsupported: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
