"""The thin torch model layer: tensors and arrays in, tensors and arrays out.

Every model takes ``device`` ("auto" picks CUDA, then MPS, then CPU) and ``seed``, batches its
work, and uses bf16 autocast where the device supports it. This package imports no Panel,
napari, Qt or anndata. Sub-modules import torch; import them explicitly.
"""
