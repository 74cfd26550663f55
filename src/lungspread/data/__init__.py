"""MSD-format datasets: reading and checking, download, inspection, normalization, splits, cache.

Modules (import what you need; nothing heavy happens on import):

* :mod:`lungspread.data.msd` - :class:`~lungspread.data.msd.MSDDataset` (``dataset.json``,
  ``imagesTr/``, ``labelsTr/``), :class:`~lungspread.data.msd.MSDCase`, checked case loading.
* :mod:`lungspread.data.download` - the official Task06_Lung archive, resumable and verified
  (lungspread's only network access); :mod:`lungspread.data.archive` - safe extraction.
* :mod:`lungspread.data.inspect` - the exploratory analysis (JSON, PNG plots, Markdown).
* :mod:`lungspread.data.normalization` - nnU-Net's CT normalization and per-image z-score.
* :mod:`lungspread.data.splits` - deterministic patient-level k-fold splits.
* :mod:`lungspread.data.preprocess` - fingerprint, target spacing, preprocessed-case cache;
  :mod:`lungspread.data.denoise` - optional noise reduction.
* :mod:`lungspread.data.convert` - the real 2D Task06 derivatives as MSD folders.
"""
