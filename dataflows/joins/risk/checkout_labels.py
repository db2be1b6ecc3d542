"""
Label joins on the checkout drivers (left = risk.risk_driver_table_v1, row_ids=["event_id"]).

    v1  scenario I: pre-aggregated labels. label_part = no-aggregation ENTITY GroupBy labels.checkout_outcomes_v1
        (is_fraud, dispute_count from data.checkout_outcomes), left_start_offset=30, left_end_offset=10,
        label_offline_schedule="@weekly".
    v2  scenario J: aggregated labels. label_part = EVENTS GroupBy labels.refunds_7d_v1 (SUM(refund_cents) over
        7 days from data.refunds); offsets must equal the window: left_start_offset=7, left_end_offset=7.
"""

from ai.chronon.join import Join, JoinPart, LabelPart

from common.drivers import driver_source
from group_bys.risk import labels, purchases
from staging_queries.risk import driver_table

# --- Scenario I ---------------------------------------------------------------------------------------------------
v1 = Join(
    left=driver_source(driver_table.v1),
    right_parts=[JoinPart(group_by=purchases.v1)],
    row_ids=["event_id"],
    label_part=LabelPart(
        labels=[JoinPart(group_by=labels.checkout_outcomes_v1)],
        left_start_offset=30,
        left_end_offset=10,
        label_offline_schedule="@weekly",
    ),
)

# --- Scenario J ---------------------------------------------------------------------------------------------------
v2 = Join(
    left=driver_source(driver_table.v1),
    right_parts=[JoinPart(group_by=purchases.v1)],
    row_ids=["event_id"],
    label_part=LabelPart(
        labels=[JoinPart(group_by=labels.refunds_7d_v1)],
        left_start_offset=7,
        left_end_offset=7,
        label_offline_schedule="@weekly",
    ),
)
