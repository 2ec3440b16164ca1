"""The normalizations: one core (statistics, normalize, backward over any axes), batch norm, layer/group/instance norm, and the blocked fast path."""
