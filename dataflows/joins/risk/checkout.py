"""
Risk team's checkout fraud model.

    v1           scenario A: brand-new feature set. Left = risk.risk_driver_table_v1; right = purchases.v1 (TEMPORAL)
                 + page_views.v1 (SNAPSHOT), SUM/COUNT day windows only. online=True with sample_percent (logging).
    snapshot_v1  scenario A variant: purchases.snapshot_v1 (SNAPSHOT accuracy) joined with prefix "snap".
    v2           scenario C: next model version = v1's production features + experimental features; v1's output
                 table is a bootstrap part (explicit selects) so production values are carried over.
    expanded_v1  scenario D: new driver table risk.risk_driver_table_v2 (v1 drivers + new segment); v1's output is a
                 bootstrap part so only the new drivers need a backfill.
"""

from ai.chronon.join import BootstrapPart, Join, JoinPart
from ai.chronon.query import Query, select
from ai.chronon.utils import get_join_output_table_name

from common.drivers import driver_source
from common.features import join_part_columns
from group_bys.risk import merchants, page_views, purchases, users
from staging_queries.risk import driver_table

# Shared between v1, v2 and expanded_v1 (the production feature list).
right_parts_production = [
    JoinPart(group_by=purchases.v1),
    JoinPart(group_by=page_views.v1),
]
# Experimental features added by v2 (scenario C).
right_parts_experimental = [
    JoinPart(group_by=purchases.v2),
    JoinPart(group_by=merchants.v1),
    JoinPart(group_by=users.v1),
]
PRODUCTION_FEATURES = [col for jp in right_parts_production for col in join_part_columns(jp)]

# --- Scenario A ---------------------------------------------------------------------------------------------------
v1 = Join(
    left=driver_source(driver_table.v1),
    right_parts=right_parts_production,
    online=True,
    sample_percent=100.0,
    offline_schedule="@daily",
)

snapshot_v1 = Join(
    left=driver_source(driver_table.v1),
    right_parts=[JoinPart(group_by=purchases.snapshot_v1, prefix="snap")],
    offline_schedule="@never",
)

V1_OUTPUT_TABLE = get_join_output_table_name(v1, full_name=True)  # risk.risk_checkout_v1

# Bootstrap from v1's output: only the row id + feature columns (left columns such as `amount` are not join fields,
# so a bare BootstrapPart(table=...) would fail Chronon's bootstrap validation).
v1_bootstrap = BootstrapPart(
    table=V1_OUTPUT_TABLE,
    query=Query(selects=select("event_id", *PRODUCTION_FEATURES)),
)

# --- Scenario C ---------------------------------------------------------------------------------------------------
v2 = Join(
    left=driver_source(driver_table.v1),
    right_parts=right_parts_production + right_parts_experimental,
    row_ids=["event_id"],
    bootstrap_parts=[v1_bootstrap],
    offline_schedule="@never",
)

# --- Scenario D ---------------------------------------------------------------------------------------------------
expanded_v1 = Join(
    left=driver_source(driver_table.v2),
    right_parts=right_parts_production,
    row_ids=["event_id"],
    bootstrap_parts=[v1_bootstrap],
    offline_schedule="@never",
)
