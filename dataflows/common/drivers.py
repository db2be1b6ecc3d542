"""
Left-side (driver) sources shared by the joins.

Every join left is an EventSource over a driver table so that `ts` is present; the join left query selects
event_id, user_id, merchant_id, amount and maps ts through time_column (Chronon adds "ts" to the selects).
"""

from typing import Optional

from ai.chronon.api.ttypes import EventSource, Source
from ai.chronon.query import Query, select
from ai.chronon.utils import get_staging_query_output_table_name

DRIVER_COLUMNS = ("event_id", "user_id", "merchant_id", "amount")


def driver_source(
    staging_query,
    start_partition: Optional[str] = None,
    end_partition: Optional[str] = None,
) -> Source:
    """Event source over the output table of a driver StagingQuery (e.g. risk.risk_driver_table_v1)."""
    return Source(
        events=EventSource(
            table=get_staging_query_output_table_name(staging_query, full_name=True),
            query=Query(
                selects=select(*DRIVER_COLUMNS),
                time_column="ts",
                start_partition=start_partition,
                end_partition=end_partition,
            ),
        )
    )
