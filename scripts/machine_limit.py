"""The machine's limit, measured: GEMM throughput at the encoders' shapes, and the share of it a fit reaches.

1. In one process, at 1 thread and at 2, the matrix products one transformer layer makes, in fp32 and
   in bf16 (bfloat16 operands, as autocast hands them to the CPU's AMX tiles), at MiniLM's and
   mpnet-base's widths: tokens x hidden x hidden (the attention projections), tokens x hidden x 4
   hidden and back (the feed-forward), and the attention's own batched products (sentences x heads,
   length x 64 x length). Each product keeps the best of ``--rounds`` rounds; a layer's limit is its
   arithmetic over the sum of its products' best times (what a perfect layer would take).
2. MFNER's fit on the first ``--episodes`` Twitter-2017 training episodes (one pass), for each encoder
   in fp32 and in bf16 (default profile and ``fast``), best of ``--fit-rounds``; its arithmetic counted
   from the encoder calls it made (each call of the transformer, counted): forward ``2 x layer params x
   tokens`` plus the attention's ``4 x layers x batch x length^2 x hidden``, backward twice the forward
   of the layers it trains; divided by the fit's time, as a share of the one-thread layer limit at
   the fit's precision.

Writes ``results/machine-limit.json`` (or ``--out``) with the command, git commit and environment. Usage:
    python scripts/machine_limit.py --rounds 5 --fit-rounds 2 --episodes 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.records import provenance, write_text_atomic
from fewshot_ner.datasets import load_domain
from fewshot_ner.encoder import transformer_layers
from fewshot_ner.episodes import cached_episodes
from fewshot_ner.method import RunContext, SourceTask
from mfner.method import MFNER

#: name -> (hidden, layers, heads); the two encoders the harness bundles.
ENCODERS = {"minilm": (384, 6, 12), "mpnet-base": (768, 12, 12)}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def best_seconds(fn: Any, rounds: int, min_s: float = 0.05) -> float:
    """The fastest of ``rounds`` timings of ``fn``, each repeated until it lasts ``min_s``, per call."""
    fn()  # warm-up: first-call allocations and kernel selection
    best = float("inf")
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s:
                break
        best = min(best, elapsed / n)
    return best


def layer_products(hidden: int, heads: int, batch: int, length: int) -> dict[str, tuple[tuple[int, ...], ...]]:
    """The matrix products of one transformer layer on ``batch`` sentences of ``length`` tokens:
    name -> (shape of A, shape of B, how many times a layer makes it)."""
    tokens, head_dim = batch * length, hidden // heads
    return {
        "proj (T x H x H)": ((tokens, hidden), (hidden, hidden), (4,)),  # q, k, v, output
        "ffn up (T x H x 4H)": ((tokens, hidden), (hidden, 4 * hidden), (1,)),
        "ffn down (T x 4H x H)": ((tokens, 4 * hidden), (4 * hidden, hidden), (1,)),
        "scores (BN x S x d x S)": ((batch * heads, length, head_dim), (batch * heads, head_dim, length), (1,)),
        "context (BN x S x S x d)": ((batch * heads, length, length), (batch * heads, length, head_dim), (1,)),
    }


def flops_of(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    batch = a[0] if len(a) == 3 else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def gemm_limits(threads: int, rounds: int, batch: int, length: int) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    out = []
    for encoder, (hidden, _layers, heads) in ENCODERS.items():
        for precision, dtype in DTYPES.items():
            gen = torch.Generator().manual_seed(0)
            layer_flops, layer_s, products = 0.0, 0.0, {}
            for name, (sa, sb, (count,)) in layer_products(hidden, heads, batch, length).items():
                a = torch.randn(sa, generator=gen).to(dtype)
                b = torch.randn(sb, generator=gen).to(dtype)
                seconds = best_seconds(lambda a=a, b=b: torch.matmul(a, b), rounds)
                flops = flops_of(sa, sb)
                products[name] = round(flops / seconds / 1e9, 1)
                layer_flops += count * flops
                layer_s += count * seconds
            row = {"encoder": encoder, "precision": precision, "threads": threads, "batch": batch, "length": length}
            out.append(row | {"gflops_per_product": products, "layer_gflops": round(layer_flops / layer_s / 1e9, 1)})
            print(
                f"{threads} thread(s) {encoder:10s} {precision}: layer {out[-1]['layer_gflops']:7.1f} GFLOP/s "
                f"{products}",
                flush=True,
            )
    return out


class FlopCounter:
    """Counts a fit's encoder arithmetic from each call of the transformer (see the module docstring)."""

    def __init__(self, method: MFNER) -> None:
        model = method.encoder.model
        layers = transformer_layers(model)
        self.n_layers = len(layers)
        self.layer_params = sum(p.numel() for layer in layers for p in layer.parameters())
        self.hidden = method.encoder.hidden_size
        trained = {id(p) for p in method.encoder.top_parameters(method.cfg.train_layers)}
        self.trained_layers = sum(any(id(p) in trained for p in layer.parameters()) for layer in layers)
        self.forward = self.backward = 0.0
        self.tokens = 0

    def count(self, input_ids: torch.Tensor) -> None:
        batch, length = input_ids.shape
        per_layer = 2.0 * (self.layer_params / self.n_layers) * batch * length + 4.0 * batch * length**2 * self.hidden
        self.forward += per_layer * self.n_layers
        self.tokens += batch * length
        if torch.is_grad_enabled():
            self.backward += 2.0 * per_layer * self.trained_layers


def fit_share(rounds: int, n_episodes: int, limits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    t17 = load_domain("twitter2017")
    episodes = cached_episodes(t17, 1, 0, None, "train").materialize(t17, n_episodes)
    variants = {"default": {}, "fast": {"profile": "fast"}}
    out = []
    for encoder in ENCODERS:
        for precision in DTYPES:
            for variant, options in variants.items():
                best, counted = float("inf"), None
                for _ in range(rounds):
                    torch.manual_seed(0)
                    ctx = RunContext(seed=0, progress=False, encoder=encoder, precision=precision)
                    method = MFNER(ctx, passes=1, min_steps=0, **options)
                    counter = FlopCounter(method)
                    real = method.encoder.model.forward

                    def counting(*args: Any, _real: Any = real, _counter: FlopCounter = counter, **kw: Any) -> Any:
                        _counter.count(kw["input_ids"])
                        return _real(*args, **kw)

                    method.encoder.model.forward = counting
                    t0 = time.perf_counter()
                    method.fit([SourceTask(t17, episodes)])
                    seconds = time.perf_counter() - t0
                    if seconds < best:
                        best, counted = seconds, counter
                assert counted is not None
                limit = next(
                    r["layer_gflops"]
                    for r in limits
                    if r["encoder"] == encoder and r["precision"] == precision and r["threads"] == 1
                )
                flops = counted.forward + counted.backward
                achieved = flops / best / 1e9
                row = {"encoder": encoder, "precision": precision, "variant": variant, "episodes": n_episodes}
                row |= {"fit_s": round(best, 2), "tokens": counted.tokens, "gflop": round(flops / 1e9, 1)}
                row |= {
                    "gflops": round(achieved, 1),
                    "limit_gflops": limit,
                    "share_of_limit": round(achieved / limit, 4),
                }
                out.append(row)
                print(
                    f"fit {encoder:10s} {precision} {variant:8s}: {best:6.1f} s, {achieved:6.1f} GFLOP/s = "
                    f"{100 * achieved / limit:5.1f}% of the 1-thread layer limit {limit}",
                    flush=True,
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per product; each keeps its fastest")
    parser.add_argument("--fit-rounds", type=int, default=2, help="rounds per fit; each keeps its fastest")
    parser.add_argument("--episodes", type=int, default=12, help="Twitter-2017 training episodes a fit takes")
    parser.add_argument("--batch", type=int, default=32, help="sentences in a product's batch")
    parser.add_argument("--length", type=int, default=48, help="tokens a sentence (tweet, [SEP], caption)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="results/machine-limit.json")
    args = parser.parse_args()
    limits = [row for t in args.threads for row in gemm_limits(t, args.rounds, args.batch, args.length)]
    fits = fit_share(args.fit_rounds, args.episodes, limits)
    meta = provenance(["python", "scripts/machine_limit.py", *sys.argv[1:]])
    write_text_atomic(Path(args.out), json.dumps(meta | {"gemm": limits, "fits": fits}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
