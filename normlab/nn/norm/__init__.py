"""The normalizations: one core (statistics, normalize, backward over any axes, with the
blocked kernels as its fast path for batch norm's layout), batch norm, and layer/group/instance norm."""
