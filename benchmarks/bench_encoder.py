"""Encoder throughput and peak memory: our ViT-MAE encoder against a peer ViT of the same size.

Usage::

    python benchmarks/bench_encoder.py [--quick] [--device cpu|cuda] [--bf16] [--img 128]
                                       [--batch 64] [--size small]

Each configuration runs in its own subprocess (so that peak memory is its own), with
warm-up batches and the median over timed batches; ``--interleaved`` instead runs every row
in fp32 and bf16 in one process, one batch each in turn, so that load drift cancels
(times only). Rows:

* ``ours: all blocks`` - :meth:`MAEEncoder.extract`: one pass, every block's mean patch
  token and class token;
* ``ours: last block`` - the same forward pass keeping nothing but the last block
  (the block-extraction overhead is the ratio of the two);
* ``peer`` - timm ``vit_small_patch16_224`` (``in_chans=5``, no head) when timm imports;
  timm needs torchvision, which does not import beside the CPU torch wheel used here, so the
  fallback peer is a ViT of the same size built the standard way from torch's own
  ``nn.TransformerEncoder`` (pre-norm, GELU, batch-first; its fused inference fast path is
  used in eval mode).

Ratios are peer time / our time (> 1: we are faster) and our memory / peer memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = {"tiny": (64, 4, 4, 8), "small": (384, 12, 6, 16), "base": (768, 12, 12, 16)}


def peer_model(kind: str, size: str, img: int, chans: int):
    import torch
    from torch import nn

    if kind == "timm":
        import timm

        name = {"small": "vit_small_patch16_224", "base": "vit_base_patch16_224",
                "tiny": "vit_tiny_patch16_224"}[size]
        return timm.create_model(name, pretrained=False, in_chans=chans, img_size=img,
                                 num_classes=0)
    dim, depth, heads, patch = SIZES[size]

    class TorchViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(chans, dim, patch, stride=patch)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.zeros(1, 1 + (img // patch) ** 2, dim))
            layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0,
                                               activation="gelu", batch_first=True,
                                               norm_first=True, layer_norm_eps=1e-6)
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim, eps=1e-6)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1) + self.pos
            return self.norm(self.encoder(t))[:, 0]

    return TorchViT()


def build(row: str, a, dev, x):
    """The model of ``row`` on ``dev`` and a function running one batch ``x`` through it."""
    import torch
    from torch import nn

    if row.startswith("ours"):
        from workbench.models.vit_mae import MaskedAutoencoderViT, make_config

        model = MaskedAutoencoderViT(make_config(a.size, in_chans=a.chans, img_size=a.img))
        # inference needs no decoder: drop it, as a deployed encoder would
        model.decoder_blocks, model.decoder_embed = nn.ModuleList(), nn.Identity()
        model.decoder_pred, model.decoder_norm = nn.Identity(), nn.Identity()
        model = model.to(dev).eval()
        if row == "ours_all":
            def fwd():
                m, c = model.block_features(x)
                return torch.cat([m, c], 1)
        else:
            def fwd():
                h = model._with_cls(model.tokens(x))
                for blk in model.blocks:
                    h = blk(h)
                return h[:, 1:].mean(1)
    else:
        model = peer_model(a.peer, a.size, a.img, a.chans).to(dev).eval()

        def fwd():
            return model(x)
    return model, fwd


def worker(a) -> dict:
    import numpy as np
    import torch

    from workbench.models._device import autocast, resolve_device

    torch.manual_seed(0)
    dev = resolve_device(a.device)
    x = torch.randn(a.batch, a.chans, a.img, a.img, device=dev)
    model, fwd = build(a.row, a, dev, x)
    ts = []
    with torch.inference_mode(), autocast(dev, a.bf16):
        for i in range(a.warmup + a.iters):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fwd()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= a.warmup:
                ts.append(time.perf_counter() - t0)
    med = float(np.median(ts))
    mem = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"row": a.row, "crops_per_s": a.batch / med, "s_per_batch": med, "peak_mib": mem,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "threads": torch.get_num_threads(), "device": str(dev)}


def interleaved(a, peer: str) -> None:
    """All rows and both dtypes in one process, one batch each in turn per round, so that
    load drift on a shared machine hits every row alike (no per-row peak memory here)."""
    import numpy as np
    import torch

    from workbench.models._device import autocast, resolve_device

    a.peer = peer
    torch.manual_seed(0)
    dev = resolve_device(a.device)
    x = torch.randn(a.batch, a.chans, a.img, a.img, device=dev)
    rows = ("peer", "ours_last", "ours_all")
    fns = {r: build(r, a, dev, x)[1] for r in rows}
    times = {(r, bf): [] for r in rows for bf in (False, True)}
    with torch.inference_mode():
        for i in range(a.warmup + a.iters):
            for bf in (False, True):
                for r in rows:
                    with autocast(dev, bf):
                        if dev.type == "cuda":
                            torch.cuda.synchronize()
                        t0 = time.perf_counter()
                        fns[r]()
                        if dev.type == "cuda":
                            torch.cuda.synchronize()
                    if i >= a.warmup:
                        times[(r, bf)].append(time.perf_counter() - t0)
    print(f"ViT-{a.size} on {a.batch} x {a.chans} x {a.img}^2, device {dev}, rows interleaved, "
          f"median of {a.iters} rounds, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| dtype | model | crops/s | s/batch | speed vs peer |")
    print("|---|---|---|---|---|")
    for bf in (False, True):
        ref = float(np.median(times[("peer", bf)]))
        for r in rows:
            med = float(np.median(times[(r, bf)]))
            print(f"| {'bf16 autocast' if bf else 'fp32'} | {r} | {a.batch / med:.1f} | "
                  f"{med:.3f} | {ref / med:.2f}x |")


def peer_kind() -> str:
    try:
        import timm  # noqa: F401

        return "timm"
    except Exception:
        return "torch"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small input, few batches")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--img", type=int, default=128)
    p.add_argument("--chans", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--interleaved", action="store_true",
                   help="all rows and fp32 + bf16 in one process, interleaved batch by batch")
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--peer", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.row:
        print(json.dumps(worker(a)))
        return
    if a.quick:
        a.img, a.batch, a.iters, a.warmup = 64, 16, 3, 1
    peer = peer_kind()
    if a.interleaved:
        interleaved(a, peer)
        return
    base = [sys.executable, __file__, "--device", a.device, "--size", a.size, "--img",
            str(a.img), "--chans", str(a.chans), "--batch", str(a.batch), "--iters",
            str(a.iters), "--warmup", str(a.warmup), "--peer", peer] + (["--bf16"] if a.bf16 else [])
    rows = {}
    for row in ("peer", "ours_last", "ours_all"):
        out = subprocess.run(base + ["--row", row], capture_output=True, text=True, check=True)
        rows[row] = json.loads(out.stdout.strip().splitlines()[-1])
    ref = rows["peer"]
    label = {"peer": f"peer ({'timm' if peer == 'timm' else 'torch nn.TransformerEncoder'})",
             "ours_last": "ours: last block only", "ours_all": "ours: all blocks (mean + CLS)"}
    print(f"ViT-{a.size} on {a.batch} x {a.chans} x {a.img}^2, device {ref['device']}, "
          f"{'bf16 autocast' if a.bf16 else 'fp32'}, {ref['threads']} threads, "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| model | params (M) | crops/s | s/batch | peak MiB | speed vs peer | memory vs peer |")
    print("|---|---|---|---|---|---|---|")
    for k in ("peer", "ours_last", "ours_all"):
        r = rows[k]
        print(f"| {label[k]} | {r['params_m']:.2f} | {r['crops_per_s']:.1f} | "
              f"{r['s_per_batch']:.3f} | {r['peak_mib']:.0f} | "
              f"{r['crops_per_s'] / ref['crops_per_s']:.2f}x | {r['peak_mib'] / ref['peak_mib']:.2f}x |")
    over = rows["ours_last"]["crops_per_s"] / rows["ours_all"]["crops_per_s"] - 1
    print(f"\nblock-extraction overhead (all blocks vs last block, same model): {100 * over:+.1f}%")


if __name__ == "__main__":
    main()
