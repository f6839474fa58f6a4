"""Read ``.npz`` files without running code from them.

``numpy.load(..., allow_pickle=True)`` unpickles object members, and a pickle can call any
function: a crafted file would run code during ``workbench import``. DeepProfiler keeps a
small metadata dict in such a member, so we read object members with an unpickler that
knows only plain containers, strings and numbers, and numpy's own array and scalar
reconstructors. Anything else in the pickle is refused with :class:`InputFormatError`.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from workbench.errors import InputFormatError

_ALLOWED = {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes",
                              "bytearray", "int", "float", "complex", "bool", "slice")
} | {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, fh, where: str):
        super().__init__(fh)
        self.where = where

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module == "numpy" and name.endswith("DType"):  # numpy.dtypes classes
            return super().find_class(module, name)
        if module == "numpy.dtypes":
            return super().find_class(module, name)
        raise InputFormatError(
            f"{self.where} holds a pickled {module}.{name}; only plain data (dicts, lists, "
            "strings, numbers, arrays) is read from .npz files, so nothing in it runs.",
            "export the file again with plain data, or convert it with a tool you trust.")


def load_npz(path: str | Path) -> dict[str, object]:
    """All members of an ``.npz``: plain arrays as arrays, object members unpickled safely
    (a 0-d object array becomes the object it holds).

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.npz`` file.

    Returns
    -------
    dict
        Member name (without ``.npy``) to array, or to the object an object member holds;
        only plain containers, numbers, strings and numpy arrays are unpickled.
    """
    path = Path(path)
    out: dict[str, object] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            with zf.open(info) as raw:
                fh = io.BytesIO(raw.read())
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            if dtype.hasobject:
                obj = _PlainUnpickler(fh, f"{path.name}:{key}").load()
                if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
                    obj = obj.item()
                out[key] = obj
            else:
                fh.seek(0)
                out[key] = np.lib.format.read_array(fh, allow_pickle=False)
    return out
