"""
Merchant attributes keyed by merchant_id from the data.merchants entity snapshot (partition ds = state at end of day).

    v1        no aggregation: merchant_category, rating as of the snapshot
    stats_v1  unwindowed AVERAGE / MAX of rating over the snapshot rows of the key (entity aggregation, no ts needed)
"""

from ai.chronon.api.ttypes import EntitySource, Source
from ai.chronon.group_by import Aggregation, GroupBy, Operation
from ai.chronon.query import Query, select


def _merchants_source(*columns):
    return Source(
        entities=EntitySource(
            snapshotTable="data.merchants",
            query=Query(selects=select(*columns), start_partition="2026-01-01"),
        )
    )


v1 = GroupBy(
    sources=[_merchants_source("merchant_id", "merchant_category", "rating")],
    keys=["merchant_id"],
    aggregations=None,
    online=True,
)

stats_v1 = GroupBy(
    sources=[_merchants_source("merchant_id", "rating")],
    keys=["merchant_id"],
    aggregations=[
        Aggregation(input_column="rating", operation=Operation.AVERAGE),
        Aggregation(input_column="rating", operation=Operation.MAX),
    ],
    online=True,
)
