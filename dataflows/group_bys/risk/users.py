"""
User profile keyed by user_id from the data.users entity snapshot (partition ds = state at end of day).

    v1  no aggregation: country, account_age_days, is_verified
"""

from ai.chronon.api.ttypes import EntitySource, Source
from ai.chronon.group_by import GroupBy
from ai.chronon.query import Query, select

v1 = GroupBy(
    sources=[
        Source(
            entities=EntitySource(
                snapshotTable="data.users",
                query=Query(
                    selects=select("user_id", "country", "account_age_days", "is_verified"),
                    start_partition="2026-01-01",
                ),
            )
        )
    ],
    keys=["user_id"],
    aggregations=None,
    online=True,
)
