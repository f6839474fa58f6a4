"""The Study store, its schema, readers for public formats and the demo-world simulator.

This layer imports numpy, pandas, anndata, zarr and dask only: no torch, Panel or napari.
"""

from workbench.data.study import Study, create_study, open_study

__all__ = ["Study", "create_study", "open_study"]
