"""``bench run --suite kernels``: CRF kernels against pytorch-crf in the same process.

For each size (B, L, T) and operation (log-likelihood forward, forward+backward, Viterbi) it times
our automatic path (numba on CPU, Triton on CUDA), our plain reference loop and pytorch-crf, as
medians of repeated runs after warm-up (CUDA events on GPU), checks that all give the same
answer, and writes ``results/kernels-<device>.json`` and ``reports/kernels.md``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tabulate import tabulate

from bench.records import RESULTS_DIR, provenance, reports_dir_for
from fewshot_ner import crf

SIZES: tuple[tuple[int, int, int], ...] = ((64, 40, 9), (256, 64, 9), (1024, 64, 9), (256, 64, 37))
OPS = ("log-partition", "llh forward", "llh forward+backward", "viterbi")


def make_inputs(b: int, length: int, n_tags: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random emissions, variable lengths (the first full), tags and CRF parameters."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (b,), generator=g)
    lengths[0] = length
    data = {
        "emissions": torch.randn(b, length, n_tags, generator=g),
        "mask": torch.arange(length)[None] < lengths[:, None],
        "tags": torch.randint(0, n_tags, (b, length), generator=g),
        "transitions": torch.randn(n_tags, n_tags, generator=g) * 0.5,
        "start": torch.randn(n_tags, generator=g) * 0.5,
        "end": torch.randn(n_tags, generator=g) * 0.5,
    }
    return {k: v.to(device) for k, v in data.items()}


def time_fn(fn: Callable[[], object], device: str, repeats: int, warmup: int = 3) -> float:
    """Median wall time in milliseconds (CUDA events on GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _ours(x: dict[str, torch.Tensor], impl: crf.Impl) -> dict[str, Callable[[], object]]:
    params = (x["transitions"], x["start"], x["end"])

    def log_z() -> torch.Tensor:
        return crf.log_partition(x["emissions"], x["mask"], *params, impl=impl)

    def llh() -> torch.Tensor:
        return -crf.nll(x["emissions"], x["mask"], x["tags"], *params, reduction="none", impl=impl)

    def fwd_bwd() -> None:
        em = x["emissions"].detach().requires_grad_(True)
        tr = x["transitions"].detach().requires_grad_(True)
        (-crf.nll(em, x["mask"], x["tags"], tr, x["start"], x["end"], reduction="sum", impl=impl)).backward()

    def decode() -> torch.Tensor:
        return crf.viterbi(x["emissions"], x["mask"], *params, impl=impl)[0]

    return {"log-partition": log_z, "llh forward": llh, "llh forward+backward": fwd_bwd, "viterbi": decode}


def _peer(x: dict[str, torch.Tensor]) -> dict[str, Callable[[], object]]:
    from torchcrf import CRF

    n_tags = x["emissions"].size(-1)
    peer = CRF(n_tags, batch_first=True).to(x["emissions"].device)
    with torch.no_grad():
        peer.transitions.copy_(x["transitions"])
        peer.start_transitions.copy_(x["start"])
        peer.end_transitions.copy_(x["end"])

    def log_z() -> torch.Tensor:  # pytorch-crf's own normaliser (a private method; sequence-first)
        with torch.no_grad():
            return peer._compute_normalizer(x["emissions"].transpose(0, 1), x["mask"].transpose(0, 1))

    def llh() -> torch.Tensor:
        with torch.no_grad():
            return peer(x["emissions"], x["tags"], x["mask"], reduction="none")

    def fwd_bwd() -> None:
        em = x["emissions"].detach().requires_grad_(True)
        peer.zero_grad()
        peer(em, x["tags"], x["mask"], reduction="sum").backward()

    def decode() -> list[list[int]]:
        return peer.decode(x["emissions"], x["mask"])

    return {"log-partition": log_z, "llh forward": llh, "llh forward+backward": fwd_bwd, "viterbi": decode}


def check_agreement(x: dict[str, torch.Tensor], ours: dict, reference: dict, peer: dict) -> dict[str, bool]:
    """Same log-likelihood (to float tolerance) and the same Viterbi paths, for every path."""
    with torch.no_grad():
        llh = [f["llh forward"]().float().cpu() for f in (ours, reference, peer)]
    paths_ours = [p[p >= 0].tolist() for p in ours["viterbi"]().cpu()]
    paths_ref = [p[p >= 0].tolist() for p in reference["viterbi"]().cpu()]
    return {
        "llh_matches_peer": bool(torch.allclose(llh[0], llh[2], rtol=1e-4, atol=1e-3)),
        "log_partition_matches_peer": bool(
            torch.allclose(
                ours["log-partition"]().float().cpu(), peer["log-partition"]().float().cpu(), rtol=1e-4, atol=1e-3
            )
        ),
        "llh_matches_reference": bool(torch.allclose(llh[0], llh[1], rtol=1e-4, atol=1e-3)),
        "paths_match_peer": paths_ours == peer["viterbi"](),
        "paths_match_reference": paths_ours == paths_ref,
    }


def run_kernels(device: str = "cpu", results_dir: Path | None = None, repeats: int | None = None, sizes=SIZES) -> Path:
    """Time every (size, op) for ours / reference / pytorch-crf; write the JSON and the report."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    results_dir = results_dir or RESULTS_DIR
    repeats = repeats or (50 if device.startswith("cuda") else 15)
    backend = crf._backend(torch.empty(0, device=device), "auto")
    rows = []
    for b, length, n_tags in sizes:
        x = make_inputs(b, length, n_tags, device)
        ours, reference, peer = _ours(x, "auto"), _ours(x, "reference"), _peer(x)
        checks = check_agreement(x, ours, reference, peer)
        for op in OPS:
            peer_repeats = repeats if op != "viterbi" or device == "cpu" else max(5, repeats // 5)
            t_ours = time_fn(ours[op], device, repeats)
            t_ref = time_fn(reference[op], device, repeats)
            t_peer = time_fn(peer[op], device, peer_repeats)
            rows.append(
                {
                    "B": b,
                    "L": length,
                    "T": n_tags,
                    "op": op,
                    "ours_ms": t_ours,
                    "reference_ms": t_ref,
                    "pytorch_crf_ms": t_peer,
                    "speedup_vs_pytorch_crf": t_peer / t_ours,
                    "speedup_vs_reference": t_ref / t_ours,
                    **checks,
                }
            )
            print(
                f"({b},{length},{n_tags}) {op:22s} ours {t_ours:8.3f} ms  reference {t_ref:8.3f} ms  pytorch-crf {t_peer:8.3f} ms"
            )
    name = "cuda" if device.startswith("cuda") else device
    out = {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "fast_path": backend.__name__ if backend else "reference",
        "repeats": repeats,
        "rows": rows,
        **provenance(),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"kernels-{name}.json"
    path.write_text(json.dumps(out, indent=1))
    write_kernel_report(results_dir)
    return path


def write_kernel_report(results_dir: Path, reports_dir: Path | None = None) -> Path:
    sections = []
    for path in sorted(results_dir.glob("kernels-*.json")):
        data = json.loads(path.read_text())
        table = [
            [
                f"({r['B']},{r['L']},{r['T']})",
                r["op"],
                f"{r['ours_ms']:.3f}",
                f"{r['reference_ms']:.3f}",
                f"{r['pytorch_crf_ms']:.3f}",
                f"{r['speedup_vs_pytorch_crf']:.1f}x",
                "yes"
                if r["llh_matches_peer"] and r["paths_match_peer"] and r.get("log_partition_matches_peer", True)
                else "NO",
            ]
            for r in data["rows"]
        ]
        head = ["(B,L,T)", "op", "ours ms", "plain loop ms", "pytorch-crf ms", "vs pytorch-crf", "same answer"]
        env = data["env"]
        sections.append(
            f"## {data['device_name']} (`{path.name}`)\n\nFast path: `{data['fast_path']}`; medians of {data['repeats']} runs "
            f"after warm-up; torch {env['packages']['torch']}, {env['torch_threads']} threads, commit "
            f"`{(data['git']['commit'] or '')[:10]}`, {data['date']}.\nCommand: `{data['command']}`\n\n"
            + tabulate(table, headers=head, tablefmt="github")
        )
    reports_dir = reports_dir or reports_dir_for(results_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    out = reports_dir / "kernels.md"
    out.write_text(
        "# CRF kernels against pytorch-crf\n\nWritten by `bench run --suite kernels --device cpu|cuda` from "
        "`results/kernels-*.json`. 'same answer': log-likelihoods agree to float tolerance and every Viterbi "
        "path is identical.\n\n" + "\n\n".join(sections) + "\n"
    )
    return out
