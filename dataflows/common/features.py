"""
Helpers computing Chronon output column names, used to build explicit bootstrap selects
(a bootstrap table may only contain its keys, ts and fields of the join; see chronon-semantics.md 4.4 / 4.12).
"""

from typing import List

from ai.chronon.api import ttypes
from ai.chronon.group_by import get_output_col_names
from ai.chronon.utils import sanitize


def group_by_value_columns(group_by: ttypes.GroupBy) -> List[str]:
    """GroupBy value columns (before GroupBy derivations), mirroring GroupByOps.valueColumns in Scala."""
    if group_by.aggregations:
        return [name for agg in group_by.aggregations for name in get_output_col_names(agg)]
    source = group_by.sources[0]
    query = (source.entities or source.events or source.joinSource).query
    return [col for col in query.selects if col not in group_by.keyColumns]


def join_part_columns(join_part: ttypes.JoinPart) -> List[str]:
    """Join output feature columns of one JoinPart: [<prefix>_]<groupBy cleanName>_<value column>."""
    group_by = join_part.groupBy
    assert not group_by.derivations, "group-by derivations are not supported by this helper"
    assert group_by.metaData.name, "JoinPart(...) sets the GroupBy name; build the JoinPart first"
    full_prefix = "_".join(p for p in [join_part.prefix, sanitize(group_by.metaData.name)] if p)
    return [f"{full_prefix}_{col}" for col in group_by_value_columns(group_by)]
