"""What a cell will cost, from the records: its finished peers, else its row's other cells scaled.

A cell's expected seconds are the median of the finished cells of its row, target and K (here or
committed). A cell with none, such as the first 5-shot or T15 -> T17 cell of a new grid row, is
scaled from its own row: the row's median at another (target, K) it has finished, times the median
ratio between those two (target, K) over the other rows of the same method (and protocol, where it has
one) that have finished both (any suite, any encoder: what moving from one target or K to the other costs
that method); a (target, K) whose cells ran the cell's own options is the preferred basis. A row that has
finished nothing is scaled from its twin (the same suite row label at another encoder or precision) by the
median ratio of the two settings over the same method's cells that ran at both. Without either it stays unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.records import RESULTS_DIR, times_partial
from fewshot_ner.defaults import DEFAULT_ENCODER, DEFAULT_PRECISION

CELL_FILE = re.compile(r"^(?P<target>.+)-k(?P<k>\d+)-s(?P<seed>\d+)\.json$")
Where = tuple[str, int]  # (target, K)


def record_seconds(record: Path, field: str = "wall_s") -> float | None:
    """A record's ``wall_s`` (or another seconds field, ``cpu_s``); None where the record lacks it, or its
    seconds leave out part of its training (``times_partial``)."""
    return _seconds_in(_read(record), field)


def _read(record: Path) -> dict | None:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _seconds_in(data: dict | None, field: str) -> float | None:
    try:
        return None if data is None or times_partial(data) else float(data[field])
    except (KeyError, TypeError, ValueError):
        return None


def median_seconds(path: Path, field: str = "wall_s") -> float | None:
    """Median ``field`` (wall or CPU seconds) of the finished cells beside ``path`` (same row, target and K)."""
    siblings = path.parent.glob(f"{path.name.rsplit('-s', 1)[0]}-s*.json")
    walls = [w for p in siblings if not p.name.endswith(".trace.json") and (w := record_seconds(p, field)) is not None]
    return float(np.median(walls)) if walls else None


def peer_seconds(path: Path, results_dir: Path, committed_dir: Path, field: str = "wall_s") -> float | None:
    """The median ``field`` of the finished cells of ``path``'s row, target and K, here or in ``committed_dir``."""
    committed = committed_dir / path.relative_to(results_dir) if path.is_relative_to(results_dir) else path
    return median_seconds(path, field) or median_seconds(committed, field)


Setting = tuple[str, str]  # (encoder, precision) a row ran at


@dataclass
class _Row:
    method: str | None
    medians: dict[Where, float]  # (target, K) -> median seconds of its finished cells
    options: dict[Where, set[str]] = field(default_factory=dict)  # (target, K) -> its cells' method options (JSON)
    label: str | None = None  # the suite's row label (the record's ``row``), untagged by encoder or precision
    setting: Setting | None = None
    protocol: str | None = None  # the record's ``config["protocol"]``, where the method has one (BERT+CRF's)

    @property
    def kind(self) -> str | None:
        """What a row's cost scales like: its method, and the protocol where it has one (BERT+CRF's support cells
        cost their test episodes, its transfer cells a source training: their ratios between targets differ)."""
        return self.method if self.protocol is None else f"{self.method} ({self.protocol})"


@dataclass(frozen=True)
class CellKey:
    """What a cell to estimate is, where its folder holds no record to say it: its method, suite row label,
    (encoder, precision) and method options."""

    method: str
    label: str
    setting: Setting
    options: dict[str, Any] = field(default_factory=dict)


def _setting(data: dict) -> Setting:
    return (str(data.get("encoder") or DEFAULT_ENCODER), str(data.get("precision") or DEFAULT_PRECISION))


def _options_key(options: dict[str, Any] | None) -> str:
    return json.dumps(options or {}, sort_keys=True, default=str)


@dataclass
class CostIndex:
    """The finished cells' medians of every row (``suite/row`` folder) under the results and committed folders,
    read once, for scaling the cells that have no finished peer. ``seconds_field``: ``wall_s`` or ``cpu_s``."""

    results_dir: Path
    committed_dir: Path
    seconds_field: str = "wall_s"
    _rows: dict[Path, _Row] = field(default_factory=dict)

    def row(self, folder: Path) -> _Row:
        """A row folder's method and medians; a folder in both places counts the cells of either once."""
        key = folder.resolve()
        if key not in self._rows:
            seconds: dict[Where, dict[str, float]] = {}
            options: dict[Where, set[str]] = {}
            method = label = setting = protocol = None
            for base in self._both(folder):
                for path in sorted(base.glob("*-k*-s*.json")) if base.is_dir() else []:
                    match = CELL_FILE.match(path.name)
                    if match is None or path.name.endswith(".trace.json"):
                        continue
                    data = _read(path)  # once: its seconds, and the row's method
                    value = _seconds_in(data, self.seconds_field)
                    if value is None:
                        continue
                    where = (match["target"], int(match["k"]))
                    seconds.setdefault(where, {}).setdefault(path.name, value)
                    options.setdefault(where, set()).add(_options_key(data.get("options")))
                    if method is None and isinstance(data.get("method"), str):
                        method, label, setting = data["method"], data.get("row"), _setting(data)
                        config = data.get("config")
                        protocol = config.get("protocol") if isinstance(config, dict) else None
            medians = {where: float(np.median(list(by_name.values()))) for where, by_name in seconds.items()}
            self._rows[key] = _Row(method, medians, options, label, setting, protocol)
        return self._rows[key]

    def _both(self, folder: Path) -> list[Path]:
        """``folder`` and its twin in the other place (results or committed), when it lies under one of them."""
        for here, there in ((self.results_dir, self.committed_dir), (self.committed_dir, self.results_dir)):
            if folder.is_relative_to(here):
                twin = there / folder.relative_to(here)
                return [folder] if twin.resolve() == folder.resolve() else [folder, twin]
        return [folder]

    @cached_property
    def _all_rows(self) -> list[Path]:
        """Every row folder in either place, listed once per index (each scaled cell looks through them)."""
        folders = {}
        for base in (self.results_dir, self.committed_dir):
            for folder in base.glob("*/*/") if base.is_dir() else []:
                folders.setdefault(folder.relative_to(base), folder)
        return sorted(folders.values())

    def scaled(self, path: Path, cell: CellKey | None = None) -> tuple[float, str] | None:
        """Seconds for a cell with no finished peer, scaled from its row's other (target, K), else from its twin
        row at another encoder or precision (``twin_scaled``), and how.

        ``cell``: what the cell is, where known. A (target, K) whose cells ran the cell's options is preferred as
        the basis (a row's blocks may differ in options that change cost, ``step_tokens``), then the one whose
        ratio rests on the most rows.
        """
        match = CELL_FILE.match(path.name)
        if match is None:
            return None
        want: Where = (match["target"], int(match["k"]))
        own = self.row(path.parent)
        options = cell.options if cell is not None else None
        best: tuple[tuple[bool, int], float, str] | None = None  # ((same options, rows the ratio rests on), s, basis)
        for have, seconds in sorted(own.medians.items()) if own.method is not None else []:
            same = options is None or own.options.get(have) == {_options_key(options)}
            ratios = []
            for folder in self._all_rows:
                other = self.row(folder)
                if folder.resolve() == path.parent.resolve() or other.kind != own.kind:
                    continue
                if want in other.medians and have in other.medians:
                    ratios.append(other.medians[want] / other.medians[have])
            if ratios and (best is None or (same, len(ratios)) > best[0]):
                ratio = float(np.median(ratios))
                other = "" if same else "; its cells ran other options than this one"
                basis = f"{have[0]} K={have[1]} x {ratio:.2f} ({len(ratios)} row(s) of {own.kind}{other})"
                best = ((same, len(ratios)), seconds * ratio, basis)
        if best is not None:
            return best[1], best[2]
        return self.twin_scaled(want, cell) if cell is not None else None

    def twin_scaled(self, want: Where, cell: CellKey) -> tuple[float, str] | None:
        """Seconds for a cell of a row that has finished nothing: its twin's median at the same (target, K) (the
        same method and suite row label at another encoder or precision, as ``fulldata`` is ``fulldata-base``'s),
        times the median ratio of the two settings over the other pairs of rows of the same method that finished
        a (target, K) at both."""
        rows = [r for r in map(self.row, self._all_rows) if r.method == cell.method and r.setting is not None]
        best: tuple[int, float, str] | None = None  # (ratios it rests on, seconds, basis)
        for twin in rows:
            if twin.label != cell.label or twin.setting == cell.setting or want not in twin.medians:
                continue
            ratios = [
                a.medians[where] / b.medians[where]
                for a in rows
                if a.setting == cell.setting and a.label is not None and a.label != cell.label
                for b in rows
                if b.setting == twin.setting and b.label == a.label
                for where in a.medians.keys() & b.medians.keys()
            ]
            if ratios and (best is None or len(ratios) > best[0]):
                ratio = float(np.median(ratios))
                basis = (
                    f"its {'/'.join(twin.setting)} twin at {want[0]} K={want[1]} x {ratio:.2f} "
                    f"({len(ratios)} cell(s) of {cell.method} at both settings)"
                )
                best = (len(ratios), twin.medians[want] * ratio, basis)
        return None if best is None else (best[1], best[2])


def cell_seconds(
    paths: list[Path],
    results_dir: Path,
    committed_dir: Path = RESULTS_DIR,
    field: str = "wall_s",
    cells: list[CellKey] | None = None,
) -> list[float]:
    """Expected seconds of each cell: the median ``field`` (wall or CPU seconds) of the finished cells of its row,
    target and K, here or in ``committed_dir``; else its row's other cells or its twin scaled (``CostIndex.scaled``,
    with each cell's ``CellKey`` where given); else the median over all the others' expectations (else 60 s)."""
    index = CostIndex(results_dir, committed_dir, field)
    known: list[float | None] = []
    for i, path in enumerate(paths):
        seconds = peer_seconds(path, results_dir, committed_dir, field)
        if seconds is None and (scaled := index.scaled(path, cells[i] if cells else None)) is not None:
            seconds = scaled[0]
        known.append(seconds)
    fallback = float(np.median([k for k in known if k is not None])) if any(k is not None for k in known) else 60.0
    return [k if k is not None else fallback for k in known]
