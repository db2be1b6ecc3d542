"""
Scenario F: advanced (external + contextual) features.

    v1  online join with
          - a ContextualSource carrying event_id and request_context (logged, never fetched);
          - an ExternalSource "service_user" keyed by user_id returning country / phone_country
            (output columns ext_service_user_country, ext_service_user_phone_country);
        Chronon cannot backfill external features, so historical values are ingested from the custom backfill table
        data.external_user_backfill (bounded by start/end partitions); after that, values come from the join's own
        log table (bootstrap_from_log=True, lowest priority).
"""

from ai.chronon.join import BootstrapPart, ContextualSource, DataType, ExternalPart, ExternalSource, Join, JoinPart
from ai.chronon.query import Query, select

from common.drivers import driver_source
from group_bys.risk import purchases
from staging_queries.risk import driver_table

EXTERNAL_BACKFILL_START = "2026-01-01"
EXTERNAL_BACKFILL_END = "2026-01-31"

v1 = Join(
    left=driver_source(driver_table.v1),
    right_parts=[JoinPart(group_by=purchases.v1)],
    online_external_parts=[
        # contextual fields: request id and request context string
        ExternalPart(
            ContextualSource(
                fields=[
                    ("event_id", DataType.STRING),
                    ("request_context", DataType.STRING),
                ]
            )
        ),
        # external feature definition that calls the user service to fetch user features
        ExternalPart(
            ExternalSource(
                name="service_user",
                team="risk",
                key_fields=[("user_id", DataType.STRING)],
                value_fields=[
                    ("country", DataType.STRING),
                    ("phone_country", DataType.STRING),
                ],
            )
        ),
    ],
    row_ids=["event_id"],
    bootstrap_parts=[
        BootstrapPart(
            table="data.external_user_backfill",
            query=Query(
                # selected names must match the join's field names
                selects=select(
                    "event_id",
                    "request_context",
                    "ext_service_user_country",
                    "ext_service_user_phone_country",
                ),
                start_partition=EXTERNAL_BACKFILL_START,
                end_partition=EXTERNAL_BACKFILL_END,
            ),
        )
    ],
    bootstrap_from_log=True,
    online=True,
    sample_percent=100.0,
)
