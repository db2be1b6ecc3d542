"""
Purchase-history features keyed by user_id, computed from the data.purchases event table.

    v1           TEMPORAL, SUM/COUNT(amount_cents) over 1d, 7d, 30d   -- scenario A workhorse ("first join")
    snapshot_v1  SNAPSHOT, SUM/COUNT(amount_cents) over 7d, 30d      -- scenario A snapshot variant
    weekly_v1    TEMPORAL, SUM/COUNT(amount_cents) over 7d           -- scenario G (exactly the legacy features)
    v2           TEMPORAL, richer operations (AVERAGE, LAST_K, APPROX_UNIQUE_COUNT, MAX, UNIQUE_COUNT,
                 bucketed SUM by category, hourly windows, unbounded windows)    -- scenario C experimental features
    derived_v1   TEMPORAL, SUM/COUNT 30d plus GroupBy derivations
"""

from ai.chronon.api.ttypes import EventSource, Source
from ai.chronon.group_by import Accuracy, Aggregation, Derivation, GroupBy, Operation, TimeUnit, Window
from ai.chronon.query import Query, select

START_PARTITION = "2026-01-01"


def _purchases_source(*columns):
    return Source(
        events=EventSource(
            table="data.purchases",
            query=Query(
                selects=select(*columns),
                time_column="ts",
                start_partition=START_PARTITION,
            ),
        )
    )


def _days(*lengths):
    return [Window(length=n, timeUnit=TimeUnit.DAYS) for n in lengths]


v1 = GroupBy(
    sources=[_purchases_source("user_id", "amount_cents")],
    keys=["user_id"],
    aggregations=[
        Aggregation(input_column="amount_cents", operation=Operation.SUM, windows=_days(1, 7, 30)),
        Aggregation(input_column="amount_cents", operation=Operation.COUNT, windows=_days(1, 7, 30)),
    ],
    accuracy=Accuracy.TEMPORAL,
    online=True,
)

snapshot_v1 = GroupBy(
    sources=[_purchases_source("user_id", "amount_cents")],
    keys=["user_id"],
    aggregations=[
        Aggregation(input_column="amount_cents", operation=Operation.SUM, windows=_days(7, 30)),
        Aggregation(input_column="amount_cents", operation=Operation.COUNT, windows=_days(7, 30)),
    ],
    accuracy=Accuracy.SNAPSHOT,
    online=True,
)

weekly_v1 = GroupBy(
    sources=[_purchases_source("user_id", "amount_cents")],
    keys=["user_id"],
    aggregations=[
        Aggregation(input_column="amount_cents", operation=Operation.SUM, windows=_days(7)),
        Aggregation(input_column="amount_cents", operation=Operation.COUNT, windows=_days(7)),
    ],
    accuracy=Accuracy.TEMPORAL,
    online=True,
)

v2 = GroupBy(
    sources=[_purchases_source("user_id", "merchant_id", "amount_cents", "category")],
    keys=["user_id"],
    aggregations=[
        # averages over day windows
        Aggregation(input_column="amount_cents", operation=Operation.AVERAGE, windows=_days(7, 30)),
        # hourly + daily windows (TEMPORAL accuracy is required for hour windows)
        Aggregation(
            input_column="amount_cents",
            operation=Operation.MAX,
            windows=[Window(length=1, timeUnit=TimeUnit.HOURS), Window(length=1, timeUnit=TimeUnit.DAYS)],
        ),
        Aggregation(
            input_column="amount_cents",
            operation=Operation.SUM,
            windows=[Window(length=6, timeUnit=TimeUnit.HOURS)],
        ),
        # last 5 categories purchased in the last 7 days (argMap {"k": "5"})
        Aggregation(input_column="category", operation=Operation.LAST_K(5), windows=_days(7)),
        # distinct merchants (sketch) and distinct categories (exact)
        Aggregation(input_column="merchant_id", operation=Operation.APPROX_UNIQUE_COUNT, windows=_days(30)),
        Aggregation(input_column="category", operation=Operation.UNIQUE_COUNT, windows=_days(30)),
        # bucketed aggregation: map<category, sum>
        Aggregation(input_column="amount_cents", operation=Operation.SUM, windows=_days(7), buckets=["category"]),
        # unbounded (no windows) aggregations
        Aggregation(input_column="amount_cents", operation=Operation.COUNT),
        Aggregation(input_column="amount_cents", operation=Operation.MAX),
    ],
    accuracy=Accuracy.TEMPORAL,
    online=True,
)

derived_v1 = GroupBy(
    sources=[_purchases_source("user_id", "amount_cents")],
    keys=["user_id"],
    aggregations=[
        Aggregation(input_column="amount_cents", operation=Operation.SUM, windows=_days(30)),
        Aggregation(input_column="amount_cents", operation=Operation.COUNT, windows=_days(30)),
    ],
    derivations=[
        # keep every aggregation column ...
        Derivation(name="*", expression="*"),
        # ... plus a computed column (explicit DOUBLE division, NULL when there is no purchase)
        Derivation(
            name="amount_cents_avg_30d",
            expression=(
                "CASE WHEN amount_cents_count_30d > 0 "
                "THEN CAST(amount_cents_sum_30d AS DOUBLE) / amount_cents_count_30d ELSE NULL END"
            ),
        ),
    ],
    accuracy=Accuracy.TEMPORAL,
    online=True,
)
