"""workbench: from a perturbation screen to hypotheses and the next experiment.

The package is organised in layers (see ``README.md``):

* :mod:`workbench.data` - the Study store, its schema, readers for public formats and the
  demo-world simulator (numpy, pandas, anndata, zarr, dask only);
* :mod:`workbench.models` - the thin torch model layer (encoders, dictionaries, GFlowNets,
  interaction tests): arrays in, arrays out;
* :mod:`workbench.tools` - steps that read a Study, run models and write results back with
  provenance;
* :mod:`workbench.dashboards` and :mod:`workbench.napari` - the front ends.

``import workbench`` is cheap: it imports none of torch, Panel, HoloViews, napari or Qt.
Heavy sub-packages load when first used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("workbench")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from workbench.errors import WorkbenchError

__all__ = ["Study", "WorkbenchError", "__version__", "open_study", "create_study"]

_LAZY = {
    "Study": "workbench.data.study",
    "open_study": "workbench.data.study",
    "create_study": "workbench.data.study",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
