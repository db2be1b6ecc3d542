"""
Join derivations (chronon-semantics.md section 9) on the checkout drivers.

    v1  right parts purchases.v1, page_views.v1, users.v1 (entity, no-agg) and purchases.derived_v1 (GroupBy with its
        own derivations); join derivations:
          "*"                 keep every base feature column (except the renamed one)
          purchase_sum_7d     rename of risk_purchases_v1_amount_cents_sum_7d
          purchase_avg_7d     computed: average purchase amount over 7 days (DOUBLE, NULL without purchases)
          amount_vs_avg_30d   computed from a left column (amount, in currency units) and features (cents)
          is_new_user         computed from an entity feature
"""

from ai.chronon.join import Derivation, Join, JoinPart

from common.drivers import driver_source
from group_bys.risk import page_views, purchases, users
from staging_queries.risk import driver_table

v1 = Join(
    left=driver_source(driver_table.v1),
    right_parts=[
        JoinPart(group_by=purchases.v1),
        JoinPart(group_by=page_views.v1),
        JoinPart(group_by=users.v1),
        JoinPart(group_by=purchases.derived_v1),
    ],
    derivations=[
        Derivation(name="*", expression="*"),
        Derivation(name="purchase_sum_7d", expression="risk_purchases_v1_amount_cents_sum_7d"),
        Derivation(
            name="purchase_avg_7d",
            expression=(
                "CASE WHEN risk_purchases_v1_amount_cents_count_7d > 0 "
                "THEN CAST(risk_purchases_v1_amount_cents_sum_7d AS DOUBLE) / risk_purchases_v1_amount_cents_count_7d "
                "ELSE NULL END"
            ),
        ),
        Derivation(
            name="amount_vs_avg_30d",
            expression=(
                "CASE WHEN risk_purchases_derived_v1_amount_cents_avg_30d > 0 "
                "THEN amount * 100.0 / risk_purchases_derived_v1_amount_cents_avg_30d ELSE NULL END"
            ),
        ),
        Derivation(name="is_new_user", expression="risk_users_v1_account_age_days < 30"),
    ],
    offline_schedule="@daily",
)
