"""
Browsing features keyed by user_id from the data.page_views event table.

    v1  SNAPSHOT, COUNT(page) over 1d and 7d, SUM(dwell_ms) over 7d   -- scenario A workhorse ("first join")
"""

from ai.chronon.api.ttypes import EventSource, Source
from ai.chronon.group_by import Accuracy, Aggregation, GroupBy, Operation, TimeUnit, Window
from ai.chronon.query import Query, select

v1 = GroupBy(
    sources=[
        Source(
            events=EventSource(
                table="data.page_views",
                query=Query(
                    selects=select("user_id", "page", "dwell_ms"),
                    time_column="ts",
                    start_partition="2026-01-01",
                ),
            )
        )
    ],
    keys=["user_id"],
    aggregations=[
        Aggregation(
            input_column="page",
            operation=Operation.COUNT,
            windows=[Window(length=1, timeUnit=TimeUnit.DAYS), Window(length=7, timeUnit=TimeUnit.DAYS)],
        ),
        Aggregation(
            input_column="dwell_ms",
            operation=Operation.SUM,
            windows=[Window(length=7, timeUnit=TimeUnit.DAYS)],
        ),
    ],
    accuracy=Accuracy.SNAPSHOT,
    online=True,
)
