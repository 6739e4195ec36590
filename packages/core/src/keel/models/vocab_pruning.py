"""Vocabulary pruning: keep only the word pieces a corpus uses (plus the special tokens).

multilingual-e5-small spends 96M of its 117.5M parameters on a 250k-piece embedding
table, almost all of it for languages a Chinese + English product never sees. Pruning
the table to the pieces of the training corpus shrinks the model about fourfold and
its ONNX export with it; the transformer layers are untouched.

Texts of the corpus tokenise exactly as before (the unigram tokenizer's best
segmentation only uses kept pieces, and removing other pieces cannot beat it), so
their embeddings do not change. New texts may use a piece that was dropped; they then
fall back to shorter kept pieces (single characters are kept by default) or ``<unk>``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from keel.errors import ArtifactError, ConfigError
from keel.models._prefixes import TextRole, read_prefixes
from keel.models.artifact import ENCODER_DIR, META_FILE

_WEIGHT_FILES = {"model.safetensors", "pytorch_model.bin"}


def prune_vocabulary(
    model_dir: str | Path,
    texts: Sequence[str],
    out_dir: str | Path,
    *,
    keep_single_characters: bool = True,
) -> Path:
    """Write a copy of a unigram-tokenizer encoder with only the pieces ``texts`` use.

    Args:
        model_dir: a sentence-transformers folder with a unigram ``tokenizer.json``
            (the built ``me5-small``) or a Keel artifact whose ``encoder/`` is one.
        texts: the corpus (training texts, documents, expected queries); each is
            tokenised with every prefix the encoder has (``query: `` / ``passage: ``).
        out_dir: the new folder (same layout as ``model_dir``).
        keep_single_characters: also keep every one-character piece, so unseen text
            still splits into characters instead of ``<unk>``.

    Returns:
        ``out_dir``.

    Raises:
        ConfigError: no texts, or ``out_dir`` is ``model_dir``.
        ArtifactError: the tokenizer is not a unigram model.
    """
    source = Path(model_dir)
    target = Path(out_dir)
    corpus = [t for t in texts if isinstance(t, str) and t.strip()]
    if not corpus:
        raise ConfigError("texts", len(texts), "needs at least one non-empty text")
    if target.resolve() == source.resolve():
        raise ConfigError("out_dir", str(target), "must differ from model_dir")
    is_artifact = (source / META_FILE).is_file() and (source / ENCODER_DIR).is_dir()
    if is_artifact:
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=_ignore_weights)
        _prune_encoder(source / ENCODER_DIR, corpus, target / ENCODER_DIR, keep_single_characters)
    else:
        _prune_encoder(source, corpus, target, keep_single_characters)
    return target


def _ignore_weights(_folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _WEIGHT_FILES or n == "tokenizer.json"}


def _prune_encoder(source: Path, texts: list[str], target: Path, keep_single: bool) -> None:
    from transformers import AutoModel

    tokenizer_json = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    model_spec = tokenizer_json.get("model", {})
    if model_spec.get("type") != "Unigram":
        raise ArtifactError(
            f"{source}: vocabulary pruning needs a unigram tokenizer "
            f"(got {model_spec.get('type')!r})"
        )
    vocab: list[list[Any]] = model_spec["vocab"]
    kept = _kept_ids(source, tokenizer_json, texts, keep_single)
    new_id = {old: new for new, old in enumerate(kept)}

    model_spec["vocab"] = [vocab[old] for old in kept]
    model_spec["unk_id"] = new_id[int(model_spec["unk_id"])]
    for token in tokenizer_json.get("added_tokens", []):
        token["id"] = new_id[int(token["id"])]
    post = tokenizer_json.get("post_processor") or {}
    for special in (post.get("special_tokens") or {}).values():
        special["ids"] = [new_id[int(i)] for i in special["ids"]]

    model = AutoModel.from_pretrained(str(source), local_files_only=True)
    import torch

    table = model.get_input_embeddings().weight.detach()
    index = torch.as_tensor(kept, dtype=torch.long)
    model.set_input_embeddings(torch.nn.Embedding.from_pretrained(table[index], freeze=False))
    model.config.vocab_size = len(kept)
    pad = getattr(model.config, "pad_token_id", None)
    if pad is not None:
        model.config.pad_token_id = new_id[int(pad)]

    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in _WEIGHT_FILES or item.name == "tokenizer.json":
            continue
        if item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target / item.name)
    model.save_pretrained(str(target))
    (target / "tokenizer.json").write_text(
        json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8"
    )
    manifest = {"source": str(source), "kept_pieces": len(kept), "original_pieces": len(vocab)}
    (target / "keel-vocab-pruning.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")


def _kept_ids(
    source: Path, tokenizer_json: dict[str, Any], texts: list[str], keep_single: bool
) -> list[int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    prefixes = read_prefixes(source)
    variants: Iterable[list[str]] = (
        [prefixes.apply(texts, role) for role in TextRole] if prefixes.enabled else [texts]
    )
    used: set[int] = {int(t["id"]) for t in tokenizer_json.get("added_tokens", [])}
    used.add(int(tokenizer_json["model"]["unk_id"]))
    for batch in variants:
        for encoding in tokenizer.encode_batch(batch):
            used.update(encoding.ids)
    if keep_single:
        for piece_id, (piece, _score) in enumerate(tokenizer_json["model"]["vocab"]):
            if len(piece.lstrip("\u2581")) <= 1:
                used.add(piece_id)
    return sorted(used)
