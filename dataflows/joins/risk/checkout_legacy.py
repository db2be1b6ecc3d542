"""
Scenario G: leverage feature data from a legacy pipeline.

    v1  left = risk.risk_driver_table_legacy_union_v1 (legacy-period drivers UNION new drivers);
        row_ids=["event_id"]; data.legacy_checkout_features is a bootstrap part whose columns are renamed to the
        Chronon output column names of purchases.weekly_v1 (which has exactly the two legacy features), so for
        legacy-period rows that GroupBy is fully covered and skipped; page_views.v1 is always backfilled.
"""

from ai.chronon.join import BootstrapPart, Join, JoinPart
from ai.chronon.query import Query

from common.drivers import driver_source
from common.features import join_part_columns
from group_bys.risk import page_views, purchases
from staging_queries.risk import driver_table

legacy_part = JoinPart(group_by=purchases.weekly_v1)

# chronon output column name -> legacy table column name
CHRONON_TO_LEGACY_NAME_MAPPING = {
    "event_id": "event_id",
    "risk_purchases_weekly_v1_amount_cents_sum_7d": "legacy_purchase_sum_7d",
    "risk_purchases_weekly_v1_amount_cents_count_7d": "legacy_purchase_count_7d",
}
assert set(CHRONON_TO_LEGACY_NAME_MAPPING) - {"event_id"} == set(join_part_columns(legacy_part))

v1 = Join(
    # driver table with union history
    left=driver_source(driver_table.legacy_union_v1),
    right_parts=[legacy_part, JoinPart(group_by=page_views.v1)],
    # event_id has to be unique in order to facilitate bootstrap
    row_ids=["event_id"],
    bootstrap_parts=[
        BootstrapPart(
            table="data.legacy_checkout_features",
            query=Query(
                selects=CHRONON_TO_LEGACY_NAME_MAPPING,
                end_partition=driver_table.LEGACY_CUTOFF_DS,
            ),
        )
    ],
    offline_schedule="@daily",
)
