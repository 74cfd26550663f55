"""Reading and writing volumes. The only place where file formats and LPS coordinates appear.

``read_volume(path)`` accepts NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha,
.mhd) and a folder holding a DICOM series; ``write_volume(volume, path)`` writes NIfTI, NRRD or
MetaImage (.mha), chosen by the suffix, with the volume's exact geometry. See docs/io.md.
"""

from __future__ import annotations

from lungspread.io.readers import read_volume
from lungspread.io.writers import write_volume

__all__ = ["read_volume", "write_volume"]
