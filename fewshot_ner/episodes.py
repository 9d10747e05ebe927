"""N-way K-shot episodes by the minimum-including rule (Hou et al. 2020), over entity types.

Support and query are each drawn by the rule: add sentences holding a type until every type
occurs in at least K chosen sentences, then drop every sentence whose removal keeps all types at
K or more. Episodes are cut from a domain without replacement until the pool cannot fill one
more (or the cap is reached), deterministically for a seed, and saved as versioned JSON so that
every method sees the same ones.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from fewshot_ner.data import QuerySentence, Sentence
from fewshot_ner.datasets import Domain
from fewshot_ner.labels import bio_labels
from fewshot_ner.paths import atomic_path, cache_dir

SCHEMA_VERSION = 2  # 2: sentence keys carry the domain


class EpisodeError(ValueError):
    """The domain cannot provide the episodes asked for."""


@dataclass(frozen=True)
class Episode:
    """A support set and a query set over the same entity types."""

    index: int
    support: tuple[Sentence, ...]
    query: tuple[Sentence, ...]
    types: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return bio_labels(self.types)

    def for_prediction(self) -> TestEpisode:
        """What ``predict`` receives: the support with its tags, the query without them."""
        return TestEpisode(self.index, self.support, tuple(s.untagged() for s in self.query), self.types)


@dataclass(frozen=True)
class TestEpisode:
    """A test episode as a method sees it: the support tagged, the query untagged."""

    __test__ = False  # not a pytest class

    index: int
    support: tuple[Sentence, ...]
    query: tuple[QuerySentence, ...]
    types: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return bio_labels(self.types)


class _Pool:
    """Sentences not yet used, with per-type candidate lists for O(1) random draws."""

    def __init__(self, sentences: tuple[Sentence, ...], types: tuple[str, ...], rng: random.Random) -> None:
        self.rng = rng
        self.sent_types = [s.types & set(types) for s in sentences]
        self.available = [bool(t) for t in self.sent_types]
        self.cands: dict[str, list[int]] = {t: [] for t in types}
        self.member: dict[str, set[int]] = {t: set() for t in types}
        for i, ts in enumerate(self.sent_types):
            for t in sorted(ts):
                self.cands[t].append(i)
                self.member[t].add(i)

    def draw(self, etype: str) -> int | None:
        """Take a random available sentence holding ``etype``; None when there is none."""
        cands, member = self.cands[etype], self.member[etype]
        while cands:
            j = self.rng.randrange(len(cands))
            idx = cands[j]
            cands[j] = cands[-1]
            cands.pop()
            member.discard(idx)
            if self.available[idx]:
                self.available[idx] = False
                return idx
        return None

    def give_back(self, idx: int) -> None:
        self.available[idx] = True
        for t in self.sent_types[idx]:
            if idx not in self.member[t]:
                self.cands[t].append(idx)
                self.member[t].add(idx)


def _type_counts(
    indices: list[int], sent_types: list[set[str]] | list[frozenset[str]], types: tuple[str, ...]
) -> dict[str, int]:
    counts = dict.fromkeys(types, 0)
    for i in indices:
        for t in sent_types[i]:
            counts[t] += 1
    return counts


def _draw_set(pool: _Pool, types: tuple[str, ...], k: int) -> list[int] | None:
    """One minimum-including set, or None (and the pool unchanged) if the pool runs dry."""
    chosen: list[int] = []
    counts = dict.fromkeys(types, 0)
    for etype in types:
        while counts[etype] < k:
            idx = pool.draw(etype)
            if idx is None:
                for i in chosen:
                    pool.give_back(i)
                return None
            chosen.append(idx)
            for t in pool.sent_types[idx]:
                counts[t] += 1
    kept: list[int] = []
    for pos, idx in enumerate(chosen):
        rest = kept + chosen[pos + 1 :]
        if all(c >= k for c in _type_counts(rest, pool.sent_types, types).values()):
            pool.give_back(idx)  # redundant: back into the pool
        else:
            kept.append(idx)
    return kept


def episode_file(domain: Domain, k: int, seed: int, max_episodes: int | None, purpose: str) -> Path:
    cap = "all" if max_episodes is None else str(max_episodes)
    name = f"{domain.name}-{purpose}-k{k}-s{seed}-cap{cap}-{domain.episode_hash[:12]}-v{SCHEMA_VERSION}.json"
    return cache_dir() / "episodes" / name


def cached_episodes(
    domain: Domain, k: int, seed: int, max_episodes: int | None = 200, purpose: str = "test"
) -> EpisodeSet:
    """Episodes from the on-disk JSON if present, else sampled and written there; once per process (an
    ``EpisodeSet`` is immutable, and its file's name holds everything that decides it)."""
    path = episode_file(domain, k, seed, max_episodes, purpose)
    if path in _LOADED:
        return _LOADED[path]
    if path.is_file():
        episodes = EpisodeSet.load(path)
    else:
        episodes = sample_episodes(domain, k, seed, max_episodes, purpose)
        episodes.save(path)
    _LOADED[path] = episodes
    return episodes


_LOADED: dict[Path, EpisodeSet] = {}  # episode file -> its episodes, loaded once per process


@dataclass(frozen=True)
class EpisodeSet:
    """Episodes of one domain as sentence keys: what is saved, hashed and shared by methods."""

    domain: str
    data_hash: str
    k: int
    seed: int
    types: tuple[str, ...]
    episodes: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (support keys, query keys)
    purpose: str = "test"

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "domain": self.domain,
            "data_hash": self.data_hash,
            "k": self.k,
            "seed": self.seed,
            "purpose": self.purpose,
            "types": list(self.types),
            "episodes": [{"support": list(s), "query": list(q)} for s, q in self.episodes],
        }

    @property
    def sha256(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path | str) -> EpisodeSet:
        path = Path(path)
        d = json.loads(path.read_text())
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{path}: episode schema_version {d.get('schema_version')!r}, expected {SCHEMA_VERSION}")
        eps = tuple((tuple(e["support"]), tuple(e["query"])) for e in d["episodes"])
        return cls(d["domain"], d["data_hash"], int(d["k"]), int(d["seed"]), tuple(d["types"]), eps, d["purpose"])

    @classmethod
    def whole(cls, domain: Domain) -> EpisodeSet:
        """Every sentence of ``domain`` as the query of one episode with no support: the full-data
        protocol's test set (a domain that is one standard split, scored at once)."""
        keys = tuple(s.key for s in domain.sentences)
        return cls(domain.name, domain.episode_hash, 0, 0, domain.types, (((), keys),), "fulldata")

    def materialize(self, domain: Domain, limit: int | None = None) -> list[Episode]:
        """Resolve keys to sentences of ``domain`` (checks it is the same data)."""
        if domain.episode_hash != self.data_hash:
            raise ValueError(
                f"episodes of {self.domain} were cut from other data "
                f"({self.data_hash[:12]} != {domain.episode_hash[:12]})"
            )
        table = domain.by_key()
        chosen = self.episodes if limit is None else self.episodes[:limit]
        return [
            Episode(i, tuple(table[k] for k in s), tuple(table[k] for k in q), self.types)
            for i, (s, q) in enumerate(chosen)
        ]


def sample_episodes(
    domain: Domain, k: int, seed: int, max_episodes: int | None = 200, purpose: str = "test"
) -> EpisodeSet:
    """Cut episodes from ``domain`` without replacement.

    Deterministic for ``(domain, k, seed, purpose)``; ``purpose`` ("test" or "train") gives
    training episodes of a source domain a stream of their own.
    """
    if k < 1:
        raise EpisodeError(f"k must be >= 1, got {k}")
    rng = random.Random(f"episodes:{purpose}:{domain.name}:{k}:{seed}")
    pool = _Pool(domain.sentences, domain.types, rng)
    episodes = []
    while max_episodes is None or len(episodes) < max_episodes:
        support = _draw_set(pool, domain.types, k)
        if support is None:
            break
        query = _draw_set(pool, domain.types, k)
        if query is None:
            for i in support:
                pool.give_back(i)
            break
        keys = [domain.sentences[i].key for i in support], [domain.sentences[i].key for i in query]
        episodes.append((tuple(keys[0]), tuple(keys[1])))
    if not episodes:
        raise EpisodeError(
            f"{domain.name}: too small for one {k}-shot episode over types {list(domain.types)} "
            f"({len(domain.sentences)} sentences)"
        )
    return EpisodeSet(domain.name, domain.episode_hash, k, seed, domain.types, tuple(episodes), purpose)
