"""
Risk team's online checkout model with log-based data refresh.

    v1                  scenario B: left = risk.risk_driver_table_log_union_v1 (logged drivers after the logging cutoff
                        UNION pre-logging drivers); row_ids=["event_id"]; event_id (+ merchant_id, amount, so the log
                        union can rebuild the left) passed as contextual fields; bootstrap_from_log=True appends
                        BootstrapPart(table="risk.risk_checkout_online_v1_logged") as the lowest-priority part.
    backfill_2026_02_10 scenario H: one-off backfill join for the single day 2026-02-10, restricted to the GroupBy
                        whose served values were broken (page_views.v1).
    patched_v1          scenario H: same model as v1, with the one-off backfill output as the first (highest
                        priority) bootstrap part, followed by v1's log table (lowest priority), so the corrected
                        values overwrite the incorrect logged values for 2026-02-10.
"""

from ai.chronon.join import BootstrapPart, ContextualSource, DataType, ExternalPart, Join, JoinPart
from ai.chronon.query import Query, select
from ai.chronon.utils import get_join_output_table_name

from common.drivers import driver_source
from common.features import join_part_columns
from group_bys.risk import page_views, purchases
from staging_queries.risk import driver_table

BROKEN_DS = "2026-02-10"

right_parts = [
    JoinPart(group_by=purchases.v1),
    JoinPart(group_by=page_views.v1),
]

contextual_part = ExternalPart(
    ContextualSource(
        fields=[
            ("event_id", DataType.STRING),
            ("merchant_id", DataType.STRING),
            ("amount", DataType.DOUBLE),
        ]
    )
)

# --- Scenario B ---------------------------------------------------------------------------------------------------
v1 = Join(
    # it is important to keep the SAME left table before and after logging starts
    left=driver_source(driver_table.log_union_v1),
    right_parts=right_parts,
    row_ids=["event_id"],
    online_external_parts=[contextual_part],
    bootstrap_from_log=True,
    online=True,
    sample_percent=100.0,
    offline_schedule="@daily",
)

# risk.risk_checkout_online_v1_logged (must match driver_table.CHECKOUT_ONLINE_V1_LOGGED_TABLE)
V1_LOGGED_TABLE = get_join_output_table_name(v1, full_name=True) + "_logged"
assert V1_LOGGED_TABLE == driver_table.CHECKOUT_ONLINE_V1_LOGGED_TABLE, V1_LOGGED_TABLE

# --- Scenario H ---------------------------------------------------------------------------------------------------
broken_part = JoinPart(group_by=page_views.v1)

backfill_2026_02_10 = Join(
    left=driver_source(driver_table.log_union_v1, start_partition=BROKEN_DS, end_partition=BROKEN_DS),
    right_parts=[broken_part],
    offline_schedule="@never",
)

patched_v1 = Join(
    left=driver_source(driver_table.log_union_v1),
    right_parts=right_parts,
    row_ids=["event_id"],
    online_external_parts=[contextual_part],
    bootstrap_parts=[
        # 1st = highest priority: corrected values for the broken day only
        BootstrapPart(
            table=get_join_output_table_name(backfill_2026_02_10, full_name=True),
            query=Query(
                selects=select("event_id", *join_part_columns(broken_part)),
                start_partition=BROKEN_DS,
                end_partition=BROKEN_DS,
            ),
        ),
        # last = lowest priority: v1's flattened log table (no selects => treated as a log bootstrap)
        BootstrapPart(table=V1_LOGGED_TABLE),
    ],
    offline_schedule="@never",
)
