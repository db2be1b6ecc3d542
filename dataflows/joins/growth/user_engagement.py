"""
Scenario E: the growth team's engagement model reuses feature data of the risk team's checkout model
(same drivers: risk.risk_driver_table_v1).

    v1  right parts = risk's purchases.v1 (reused) + growth's engagement.v1 + risk's users.v1;
        bootstrap part = risk.risk_checkout_v1 (output of joins/risk/checkout.py v1) selecting only the
        purchases.v1 feature columns, so purchases.v1 is never recomputed for rows the risk join already covers.
"""

from ai.chronon.join import BootstrapPart, Join, JoinPart
from ai.chronon.query import Query, select
from ai.chronon.utils import get_join_output_table_name

from common.drivers import driver_source
from common.features import join_part_columns
from group_bys.growth import engagement
from group_bys.risk import purchases, users
from joins.risk import checkout
from staging_queries.risk import driver_table

reused_part = JoinPart(group_by=purchases.v1)

v1 = Join(
    left=driver_source(driver_table.v1),
    right_parts=[
        reused_part,
        JoinPart(group_by=engagement.v1),
        JoinPart(group_by=users.v1),
    ],
    row_ids=["event_id"],
    bootstrap_parts=[
        BootstrapPart(
            table=get_join_output_table_name(checkout.v1, full_name=True),
            query=Query(
                # select the list of features to reuse (+ the row id)
                selects=select("event_id", *join_part_columns(reused_part)),
            ),
        )
    ],
    offline_schedule="@daily",
)
