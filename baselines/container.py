"""CONTaiNER (Das et al., ACL 2022): Gaussian word embeddings trained contrastively, then nearest neighbours.

Source training (``fit``): two heads on the encoder's word vectors ``h`` give each word a diagonal
Gaussian, mean ``Linear(ReLU(h))`` and variance ``ELU(Linear(ReLU(h))) + 1`` (``embedding_dim`` wide,
128 as the paper), and one pass over every labelled source sentence (batches of 32, Adam at 5e-5, as the
authors' run script) minimises the contrastive loss of ``contrastive_loss``: each entity word is pulled
towards the words of its type and pushed from the rest, with the symmetric KL divergence between their
Gaussians as the distance. Tags are IO (``B-X`` and ``I-X`` are one class, as the paper merges them).
Its weights are cached on disk as BERT+CRF transfer's are (``$MFNER_CACHE/transfer``, keyed by the
method, its configuration and ``embedding_dim``; the record's fit report names the file).

Per episode (``predict``): up to ``support_steps`` steps on the whole support with the same loss, every
support word an anchor (the authors' ``consider_mutual_O``), the encoder's layers and the heads trained
at ``support_lr``, stopped after the first step whose loss is above the step before it (the authors'
single-step patience); the weights are restored after the episode. Then each query word takes the class
of its nearest support word: by the squared distance between unit-length encoder vectors
(``decode: hidden``, the authors' ``euclidean_hidden_state``) or by the symmetric KL of the Gaussians
(``decode: gaussian``). With ``transition_power`` (the authors' ``temp_trans``, 0.01), the per-class
nearest scores go through a softmax and a Viterbi decoding over abstract IO transitions counted on the
source (StructShot's, each row raised to that power and normalised); 0 decodes word by word.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from baselines.nnshot import NNShot, abstract_counts, abstract_transitions, nearest_by_tag, repair_iob2
from fewshot_ner import crf
from fewshot_ner.data import Sentence
from fewshot_ner.episodes import TestEpisode
from fewshot_ner.features import Padded
from fewshot_ner.method import METHODS
from fewshot_ner.registry import check_choice
from fewshot_ner.trainer import restore, snapshot

DECODES = ("hidden", "gaussian")
MIN_VARIANCE = 1e-6  # the variance head's floor above zero (ELU + 1 reaches 0 only in the limit)


class GaussianHead(nn.Module):
    """Each word vector ``(..., H)`` to a diagonal Gaussian: mean and variance ``(..., D)``."""

    def __init__(self, hidden: int, dim: int, generator: torch.Generator | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.mean = nn.Linear(hidden, dim)
        self.log_scale = nn.Linear(hidden, dim)  # through ELU + 1: the variance
        with torch.no_grad():
            bound = hidden**-0.5  # nn.Linear's own range, drawn from the given generator
            for layer in (self.mean, self.log_scale):
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, vectors: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.relu(self.dropout(vectors))
        return self.mean(h), nn.functional.elu(self.log_scale(h)) + 1.0 + MIN_VARIANCE


def gaussian_distance(mu_a: Tensor, var_a: Tensor, mu_b: Tensor, var_b: Tensor) -> Tensor:
    """Symmetric KL divergence ``(KL(a||b) + KL(b||a)) / 2`` between diagonal Gaussians, every pair ``(N, M)``.

    ``mu_a``, ``var_a`` ``(N, D)``; ``mu_b``, ``var_b`` ``(M, D)``. The log-determinants cancel:
    ``1/4 [sum(var_a/var_b + var_b/var_a) + sum((mu_a - mu_b)^2 (1/var_a + 1/var_b)) - 2D]``, each sum a
    matrix product, so no ``(N, M, D)`` tensor is built.
    """
    inv_a, inv_b = 1.0 / var_a, 1.0 / var_b
    traces = var_a @ inv_b.T + inv_a @ var_b.T  # (N, M)
    # sum_d (mu_a - mu_b)^2 w for w = inv_a (a's weights) and w = inv_b, expanded into products
    sq_a = (mu_a**2 * inv_a).sum(-1, keepdim=True) - 2 * (mu_a * inv_a) @ mu_b.T + inv_a @ (mu_b**2).T
    sq_b = (mu_a**2) @ inv_b.T - 2 * mu_a @ (mu_b * inv_b).T + (mu_b**2 * inv_b).sum(-1)
    return 0.25 * (traces + sq_a + sq_b - 2 * mu_a.size(-1))


def contrastive_loss(dist: Tensor, ids: Tensor, anchors: Tensor) -> Tensor:
    """CONTaiNER's loss over one batch's words, from their distances ``(N, N)`` and class ids ``(N,)``.

    For each anchor word ``p`` (``anchors``, a bool ``(N,)``) with at least one other word of its class:
    ``-log(mean over q of its class, q != p, of exp(-d(p, q)) / sum over q != p of exp(-d(p, q)))``; the
    mean over those anchors (zero, with gradient, when there is none).
    """
    n = ids.size(0)
    other = ~torch.eye(n, dtype=torch.bool, device=dist.device)  # (N, N): q != p
    same = (ids[:, None] == ids[None, :]) & other  # (N, N)
    keep = anchors & same.any(1)  # (N,)
    if not keep.any():
        return dist.sum() * 0.0
    logits = (-dist).masked_fill(~other, -torch.inf)[keep]  # (A, N)
    pos = logits.masked_fill(~same[keep], -torch.inf)
    per_anchor = torch.logsumexp(logits, 1) - torch.logsumexp(pos, 1) + same[keep].sum(1).float().log()
    return per_anchor.mean()


def io_ids(tags: tuple[str, ...] | list[str], types: tuple[str, ...]) -> list[int]:
    """IO class ids of BIO tags: 0 for ``O``, ``1 + types.index(X)`` for ``B-X`` and ``I-X``."""
    return [0 if t == "O" else 1 + types.index(t[2:]) for t in tags]


def label_types(labels: tuple[str, ...]) -> tuple[str, ...]:
    """The entity types of a BIO label set, in their order."""
    return tuple(dict.fromkeys(lab[2:] for lab in labels if lab != "O"))


@METHODS.register("container")
class Container(NNShot):
    """CONTaiNER (Das et al. 2022): contrastive Gaussian embeddings on the source, support steps, nearest neighbour."""

    own_options: dict[str, Any] = {
        "embedding_dim": 128,
        "support_steps": 30,  # at most; stopped at the first step whose loss rises (0: no support steps)
        "support_lr": 5e-5,
        "decode": "hidden",
        "transition_power": 0.01,  # 0: word by word, no Viterbi
    }
    # the authors' source training: every layer (here the embeddings frozen, as every fine-tuned row), one
    # pass, batches of 32 sentences, one rate for encoder and heads
    tagger_defaults: dict[str, Any] = {
        "protocol": "transfer",
        "steps": 0,
        "transfer_batch_size": 32,
        "transfer_head_lr": 5e-5,
        "transfer_train_layers": "all",
        "train_layers": "all",  # what the support steps train
    }
    transfer_owner = None  # its own source training: the cache key names Container

    @classmethod
    def quick_options(cls) -> dict[str, Any]:
        # --quick: at most 2 support steps, enough to take one and test the next (a 5-shot quick cell spent 277 of
        # its 278 s on up to 30 an episode)
        return {**super().quick_options(), "support_steps": 2}

    def prepare(self, target: Any) -> None:
        super().prepare(target)
        if self.source_head is not None:
            self.source_head.eval()  # source training left its dropout on
        self._support: list[tuple[int, float]] = []  # per episode: support steps taken, seconds

    def fit_report(self) -> dict[str, Any]:
        """Source training's report, and what the support steps took over the episodes so far."""
        report = dict(self._report)
        if "mean_nll_last_100" in report:  # source training's step reports the tagger's key; here it is this loss
            report["mean_loss_last_100"] = report.pop("mean_nll_last_100")
        steps = [n for n, _ in getattr(self, "_support", [])]
        if not steps:
            return report
        return report | {
            "support_steps_mean": round(sum(steps) / len(steps), 2),
            "support_steps_max": max(steps),
            "support_and_scoring_s": round(sum(t for _, t in self._support), 1),
        }

    @classmethod
    def check_own(cls, own: dict[str, Any]) -> None:
        check_choice("decode", own["decode"], DECODES)
        if int(own["embedding_dim"]) < 1 or int(own["support_steps"]) < 0:
            raise ValueError("embedding_dim must be >= 1 and support_steps >= 0")
        if float(own["transition_power"]) < 0 or float(own["support_lr"]) <= 0:
            raise ValueError("transition_power must be >= 0 and support_lr > 0")

    def fit_options(self) -> dict[str, Any]:
        return {"embedding_dim": int(self.own["embedding_dim"])}  # decides the source weights

    def new_source_head(self, n_tags: int, generator: torch.Generator) -> nn.Module:
        return GaussianHead(self.encoder.hidden_size, int(self.own["embedding_dim"]), generator).to(
            self.ctx.torch_device
        )

    def batch_loss(self, head: nn.Module, batch: list[Sentence], labels: tuple[str, ...], words: Any) -> Tensor:
        """Source training's loss: entity words are the anchors (the authors' training run)."""
        return self._loss(head, words(batch, self.cfg.input), batch, label_types(labels), every_word=False)

    def _loss(self, head: nn.Module, words: Padded, batch: list[Sentence], types: tuple[str, ...], every_word: bool):
        mu, var = head(words.vectors[words.mask])  # (N, D) each: the batch's real words, in order
        ids = torch.tensor([i for s in batch for i in io_ids(s.tags, types)], device=mu.device)  # (N,)
        anchors = torch.ones_like(ids, dtype=torch.bool) if every_word else ids > 0
        return contrastive_loss(gaussian_distance(mu, var, mu, var), ids, anchors)

    def _support_steps(self, episode: TestEpisode) -> list[float]:
        """Steps on the whole support until the loss rises (or ``support_steps``); the losses before each step."""
        support = list(episode.support)
        types = label_types(episode.labels)
        head = self.source_head
        assert head is not None, "fit() trains the source heads first"
        params = list(head.parameters()) + self.encoder.trainable(self.cfg.train_layers)
        opt = torch.optim.Adam(params, lr=float(self.own["support_lr"]))
        losses: list[float] = []
        generator = self.ctx.generator(episode.index)
        with torch.random.fork_rng(devices=[]):  # dropout draws from a seed of this episode
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            head.train()
            self.encoder.train()
            for _ in range(int(self.own["support_steps"])):
                loss = self._loss(head, self.features(support, self.cfg.input), support, types, every_word=True)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                losses.append(float(loss.detach()))
                if len(losses) > 1 and losses[-1] > losses[-2]:
                    break
        head.eval()
        self.encoder.eval()
        return losses

    @torch.no_grad()
    def class_scores(self, episode: TestEpisode) -> tuple[Tensor, Tensor]:
        """Minus the distance of each query word to each IO class's nearest support word ``(Bq, W, 1 + T)``,
        and the query's word mask ``(Bq, W)``."""
        view = self.predict_view()
        support = self.features(list(episode.support), view)
        query = self.features(list(episode.query), view)
        types = label_types(episode.labels)
        ids = torch.tensor([i for s in episode.support for i in io_ids(s.tags, types)])  # (N,)
        s_vec = support.vectors[support.mask]  # (N, H)
        if self.own["decode"] == "hidden":  # squared distance of unit vectors
            q = nn.functional.normalize(query.vectors, dim=-1)
            dist = torch.cdist(q, nn.functional.normalize(s_vec, dim=-1).unsqueeze(0).expand(q.size(0), -1, -1)) ** 2
        else:
            head = self.source_head
            assert head is not None
            mu_q, var_q = head(query.vectors.flatten(0, 1))  # (Bq * W, D)
            mu_s, var_s = head(s_vec)  # (N, D)
            dist = gaussian_distance(mu_q, var_q, mu_s, var_s).view(*query.mask.shape, -1)  # (Bq, W, N)
        return nearest_by_tag(dist, ids, 1 + len(types)), query.mask

    def predict(self, episode: TestEpisode) -> list[list[str]]:
        if self._snap is None:
            raise RuntimeError("call prepare(target) before predict")
        assert self.source_head is not None, "fit() trains the source heads first"
        head_snap = snapshot(self.source_head)
        t0 = time.perf_counter()
        try:
            losses = self._support_steps(episode) if int(self.own["support_steps"]) else []
            scores, mask = self.class_scores(episode)  # (Bq, W, C), C = 1 + T
        finally:
            restore(self.encoder, self._snap)  # the next episode starts from the source weights
            restore(self.source_head, head_snap)
        self._support.append((len(losses), time.perf_counter() - t0))
        types = label_types(episode.labels)
        io = ("O", *(f"I-{t}" for t in types))
        power = float(self.own["transition_power"])
        if power > 0:
            source_io = [tuple("I" + t[1:] if t.startswith("B-") else t for t in tags) for tags in self.source_tags]
            transitions, start = abstract_transitions(abstract_counts(source_io), io, power)
            emissions = torch.log_softmax(scores, -1).nan_to_num(neginf=-1e4)  # (Bq, W, C); a class without support
            best, _ = crf.viterbi(emissions, mask, transitions, start, torch.zeros(len(io)))
        else:
            best = scores.argmax(-1)  # (Bq, W)
        return [repair_iob2([io[j] for j in best[b, : len(s.tokens)].tolist()]) for b, s in enumerate(episode.query)]


__all__ = ["Container", "GaussianHead", "contrastive_loss", "gaussian_distance", "io_ids"]
