"""
Growth team's engagement features keyed by user_id from data.page_views.

    v1  TEMPORAL: AVERAGE(dwell_ms) 7d, UNIQUE_COUNT(page) 30d, LAST(page) (unbounded), COUNT(page) 30d
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
        Aggregation(input_column="dwell_ms", operation=Operation.AVERAGE, windows=[Window(7, TimeUnit.DAYS)]),
        Aggregation(input_column="page", operation=Operation.UNIQUE_COUNT, windows=[Window(30, TimeUnit.DAYS)]),
        Aggregation(input_column="page", operation=Operation.LAST),
        Aggregation(input_column="page", operation=Operation.COUNT, windows=[Window(30, TimeUnit.DAYS)]),
    ],
    accuracy=Accuracy.TEMPORAL,
    online=True,
)
