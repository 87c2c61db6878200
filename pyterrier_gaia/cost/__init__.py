"""The hardware-independent cost model.

- :mod:`.counts` -- operation counts that stages report (postings, FLOPs, weight bytes ...)
- :mod:`.records` -- ledger records as the model reads them: which are usable, design matrices
- :mod:`.fit` -- batch NNLS and EW-RLS (forgetting factor, outlier clipping, non-negative projection)
- :mod:`.hardware` -- hardware profiles (peak FLOP/s per precision, bandwidth, TDP, idle power)
- :mod:`.host` -- this host's CPU from /proc/cpuinfo and sysfs, its SIMD rates, a measured copy bandwidth
- :mod:`.cpu_tdp` -- CPU TDP from CodeCarbon's table (shared with the energy model)
- :mod:`.model` -- :class:`~pyterrier_gaia.cost.model.CostModel` (``gaia.CostModel``)
- :mod:`.scaling` -- a job's parts on N nodes (``gaia.scaling``): time, energy, what stops scaling first

Nothing heavy is imported here (scipy only when a model is fitted).
"""
