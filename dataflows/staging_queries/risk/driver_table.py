"""
Driver tables (left sides) for the risk team's checkout models.

Every driver table produces one row per training example with the columns
    event_id STRING, user_id STRING, merchant_id STRING, amount DOUBLE, ts LONG (epoch millis UTC), ds STRING
and is partitioned by ds. Joins read them through common.drivers.driver_source(...).

Output tables (namespace "risk", name = <team>_<module>_<variable>):
    v1             -> risk.risk_driver_table_v1             (scenario A, and base of C/E/F/I/J)
    v2             -> risk.risk_driver_table_v2             (scenario D: v1 drivers + a new driver segment)
    log_union_v1   -> risk.risk_driver_table_log_union_v1   (scenario B: logged requests after the logging cutoff
                                                             UNION pre-logging drivers; also used by H)
    legacy_union_v1-> risk.risk_driver_table_legacy_union_v1 (scenario G: legacy-period drivers UNION new drivers)
"""

from ai.chronon.api.ttypes import MetaData, StagingQuery
from ai.chronon.utils import get_staging_query_output_table_name

NAMESPACE = "risk"
START_PARTITION = "2026-01-01"

# Scenario B: the flattened log table of joins/risk/checkout_online.py `v1` (= <ns>.<join cleanName>_logged).
# Hard-coded here because joins import this module (a staging query cannot import the join).
CHECKOUT_ONLINE_V1_LOGGED_TABLE = "risk.risk_checkout_online_v1_logged"
# Last ds served by the pre-logging driver table; logged drivers are used strictly after it.
LOGGING_CUTOFF_DS = "2026-02-01"

# Scenario G: last ds covered by the legacy pipeline table data.legacy_checkout_features.
LEGACY_CUTOFF_DS = "2026-01-31"


def _meta(dependencies):
    return MetaData(outputNamespace=NAMESPACE, dependencies=dependencies)


# --- Scenario A: brand-new driver table = every checkout event -----------------------------------------------------
v1 = StagingQuery(
    query="""
SELECT
    event_id,
    user_id,
    merchant_id,
    amount,
    ts,
    ds
FROM data.checkouts
WHERE ds BETWEEN '{{ start_date }}' AND '{{ end_date }}'
""",
    startPartition=START_PARTITION,
    setups=[],
    metaData=_meta(["data.checkouts/ds={{ ds }}"]),
)

V1_TABLE = get_staging_query_output_table_name(v1, full_name=True)  # risk.risk_driver_table_v1

# --- Scenario D: expand the model to a new set of drivers ------------------------------------------------------------
# Old drivers (the v1 table) UNION ALL a new driver segment: large checkouts re-scored by a manual-review endpoint.
# The new rows get a distinct event_id (<event_id>_review) so row ids stay unique across the union.
v2 = StagingQuery(
    query=f"""
SELECT
    event_id,
    user_id,
    merchant_id,
    amount,
    ts,
    ds
FROM {V1_TABLE}
WHERE ds BETWEEN '{{{{ start_date }}}}' AND '{{{{ end_date }}}}'
UNION ALL
SELECT
    concat(event_id, '_review') AS event_id,
    user_id,
    merchant_id,
    amount,
    ts,
    ds
FROM data.checkouts
WHERE ds BETWEEN '{{{{ start_date }}}}' AND '{{{{ end_date }}}}'
  AND amount >= 100.0
""",
    startPartition=START_PARTITION,
    setups=[],
    metaData=_meta([f"{V1_TABLE}/ds={{{{ ds }}}}", "data.checkouts/ds={{ ds }}"]),
)

# --- Scenario B: log-based data refresh --------------------------------------------------------------------------------
# After the cutoff the drivers come from the join's own flattened log table (deduplicated per event_id and ds, latest
# ts wins); up to the cutoff they come from the pre-logging driver table v1. event_id, merchant_id and amount are
# logged as contextual fields of joins/risk/checkout_online.py `v1`; user_id is the join key and is logged as a key.
log_union_v1 = StagingQuery(
    query=f"""
WITH
log_drivers AS (
    SELECT event_id, user_id, merchant_id, amount, ts, ds
    FROM (
        SELECT
            event_id, user_id, merchant_id, amount, ts, ds,
            ROW_NUMBER() OVER (PARTITION BY event_id, ds ORDER BY ts DESC) AS rn
        FROM {CHECKOUT_ONLINE_V1_LOGGED_TABLE}
        WHERE ds BETWEEN '{{{{ start_date }}}}' AND '{{{{ end_date }}}}'
          AND ds > '{LOGGING_CUTOFF_DS}'
    ) a
    WHERE rn = 1
),
init_drivers AS (
    SELECT event_id, user_id, merchant_id, amount, ts, ds
    FROM {V1_TABLE}
    WHERE ds BETWEEN '{{{{ start_date }}}}' AND '{{{{ end_date }}}}'
      AND ds <= '{LOGGING_CUTOFF_DS}'
)
SELECT * FROM log_drivers
UNION ALL
SELECT * FROM init_drivers
""",
    startPartition=START_PARTITION,
    setups=[],
    metaData=_meta(
        [
            f"{V1_TABLE}/ds={{{{ ds }}}}",
            f"{CHECKOUT_ONLINE_V1_LOGGED_TABLE}/ds={{{{ ds }}}}",
        ]
    ),
)

# --- Scenario G: legacy data pipeline ----------------------------------------------------------------------------------
# Up to the legacy cutoff: the checkout events that the legacy pipeline produced features for;
# after the cutoff: every checkout event (new Chronon-only period).
legacy_union_v1 = StagingQuery(
    query=f"""
WITH
legacy_drivers AS (
    SELECT c.event_id, c.user_id, c.merchant_id, c.amount, c.ts, c.ds
    FROM data.checkouts c
    JOIN data.legacy_checkout_features l
      ON c.event_id = l.event_id AND c.ds = l.ds
    WHERE c.ds BETWEEN '{{{{ start_date }}}}' AND '{{{{ end_date }}}}'
      AND c.ds <= '{LEGACY_CUTOFF_DS}'
),
new_drivers AS (
    SELECT event_id, user_id, merchant_id, amount, ts, ds
    FROM data.checkouts
    WHERE ds BETWEEN '{{{{ start_date }}}}' AND '{{{{ end_date }}}}'
      AND ds > '{LEGACY_CUTOFF_DS}'
)
SELECT * FROM legacy_drivers
UNION ALL
SELECT * FROM new_drivers
""",
    startPartition=START_PARTITION,
    setups=[],
    metaData=_meta(["data.checkouts/ds={{ ds }}", "data.legacy_checkout_features/ds={{ ds }}"]),
)
