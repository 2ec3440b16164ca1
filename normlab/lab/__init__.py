"""The lab: what turns recipes into a report.

``plan`` resolves recipes and their configs (``configs``: Config <-> JSON <-> CLI)
into ``RunSpec``s (``runs``); ``budget`` estimates them; ``sweep`` executes them
(``execute``: one run) in worker processes or on Dask into the ``store``;
``analyses`` hands each recipe its (spec, result) pairs; ``report`` and
``figures`` write the report; ``rundir`` owns the run directory's files and lock;
``progress`` prints what happens.
"""
