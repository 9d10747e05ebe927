"""ITA (Wang et al. 2022, image-text alignment): BERT+CRF trained on two views that must agree.

The same tagger reads each sentence twice: the tweet alone and the tweet [SEP] its image text.
Loss = CRF NLL of the text view + 0.5 x CRF NLL of the text+image view + 0.5 x T^2 x
KL(teacher || student) summed over the tweet's words (mean over sentences), where the teacher is
the per-word CRF marginal distribution of the text+image view (gradient stopped) and the student
the same of the text view, both softened by temperature T (all CRF scores divided by T).
``temperature`` None (the default) takes the original's: 2 for a Twitter-2017 target, 4 for
Twitter-2015 (and 2 elsewhere), by the domain a step trains on: source training (``transfer``,
``fulldata``) takes its sources' (2 where they disagree), per-episode steps the target's. Predictions
read the text+image view. Protocols, steps and
generators as BERT+CRF (``baselines/bert_crf.py``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from baselines.bert_crf import BertCRF, FineTuneConfig, TagHead, WordsFn
from fewshot_ner import crf
from fewshot_ner.data import Sentence
from fewshot_ner.features import Padded
from fewshot_ner.labels import tag_tensor
from fewshot_ner.method import METHODS, RunContext, SourceTask

ORIGINAL_TEMPERATURE = {"twitter2017": 2.0, "twitter2015": 4.0}


def original_temperature(domain_name: str) -> float:
    """The original's temperature for a domain, a split suffix ignored (``twitter2015-train``: 4); 2 elsewhere."""
    return ORIGINAL_TEMPERATURE.get(domain_name.split("-")[0], 2.0)


def soft_marginals(head: TagHead, words: Padded, temperature: float) -> Tensor:
    """Per-word CRF marginals ``(B, W, C)`` of the distribution with every score divided by ``temperature``."""
    t = temperature
    return crf.marginals(head.emissions(words) / t, words.mask, head.transitions / t, head.start / t, head.end / t)


def alignment_kl(teacher: Tensor, student: Tensor, mask: Tensor, eps: float = 1e-9) -> Tensor:
    """KL(teacher || student) summed over words ``(B, W, C)`` under ``mask`` ``(B, W)``, mean over sentences.

    The teacher is detached here: the gradient reaches only the student.
    """
    teacher = teacher.detach()
    kl = (teacher * ((teacher + eps).log() - (student + eps).log())).sum(-1)  # (B, W)
    return (kl * mask.to(kl.dtype)).sum(-1).mean()


@METHODS.register("ita")
class ITA(BertCRF):
    """ITA: BERT+CRF on the tweet and the tweet [SEP] image text, the text view aligned to the other by KL."""

    def __init__(self, ctx: RunContext, temperature: float | None = None, **options: Any) -> None:
        options.setdefault("input", "text+image")
        super().__init__(ctx, **options)
        self.temperature_option = temperature
        self.temperature = temperature or 2.0

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> FineTuneConfig:  # type: ignore[override]
        rest = dict(options)
        t = rest.pop("temperature", None)
        if t is not None and float(t) <= 0:
            raise ValueError(f"ITA temperature must be positive, got {t}")
        cfg = super().check_options(rest)
        if cfg.input != "text+image":
            raise ValueError("ITA reads both views; its input is text+image")
        return cfg

    @classmethod
    def resolved_config(cls, options: dict[str, Any]) -> dict[str, Any]:
        # the temperature itself is left out: without the option, fit takes the original's for the source data
        return super().resolved_config({"input": "text+image", **options}) | {
            "temperature_option": options.get("temperature")
        }

    def config(self) -> dict[str, Any]:
        return super().config() | {"temperature": self.temperature, "temperature_option": self.temperature_option}

    def fit(self, sources: list[SourceTask]) -> None:
        if self.temperature_option is None:  # the original's temperature of the data this training reads
            found = {original_temperature(task.domain.name) for task in sources}
            self.temperature = found.pop() if len(found) == 1 else 2.0
        fit_temperature = self.temperature
        super().fit(sources)
        if self._report:
            self._report["fit_temperature"] = fit_temperature

    def fit_options(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def prepare(self, target: Any) -> None:
        if self.temperature_option is None:
            self.temperature = original_temperature(getattr(target, "name", ""))
        super().prepare(target)

    def batch_loss(self, head: TagHead, batch: list[Sentence], labels: tuple[str, ...], words: WordsFn) -> Tensor:
        text = words(batch, "text")
        multi = words(batch, "text+image")
        tags = tag_tensor([s.tags for s in batch], labels, text.mask.size(1)).to(text.mask.device)
        teacher = soft_marginals(head, multi, self.temperature)
        student = soft_marginals(head, text, self.temperature)
        kl = alignment_kl(teacher, student, text.mask)
        return head.nll(text, tags) + 0.5 * head.nll(multi, tags) + 0.5 * self.temperature**2 * kl

    def predict_view(self) -> str:
        return "text+image"

    def batch_views(self) -> tuple[str, ...]:
        return ("text", "text+image")
