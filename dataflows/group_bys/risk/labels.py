"""
Label GroupBys (offline only) for the risk team's label joins.

    checkout_outcomes_v1  scenario I: no-aggregation ENTITY label GroupBy on data.checkout_outcomes
    refunds_7d_v1         scenario J: EVENTS label GroupBy on data.refunds, SUM(refund_cents) over exactly one
                          7-day window (label aggregations allow a single aggregation with a single DAYS window)
"""

from ai.chronon.api.ttypes import EntitySource, EventSource, Source
from ai.chronon.group_by import Aggregation, GroupBy, Operation, TimeUnit, Window
from ai.chronon.query import Query, select

checkout_outcomes_v1 = GroupBy(
    sources=[
        Source(
            entities=EntitySource(
                snapshotTable="data.checkout_outcomes",
                query=Query(
                    selects=select("user_id", "is_fraud", "dispute_count"),
                    start_partition="2026-01-01",
                ),
            )
        )
    ],
    keys=["user_id"],
    aggregations=None,
    online=False,
)

refunds_7d_v1 = GroupBy(
    sources=[
        Source(
            events=EventSource(
                table="data.refunds",
                query=Query(
                    selects=select("user_id", "refund_cents"),
                    time_column="ts",
                    start_partition="2026-01-01",
                ),
            )
        )
    ],
    keys=["user_id"],
    aggregations=[
        Aggregation(
            input_column="refund_cents",
            operation=Operation.SUM,
            windows=[Window(length=7, timeUnit=TimeUnit.DAYS)],
        ),
    ],
    online=False,
)
