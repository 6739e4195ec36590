"""``LabelMap``: label names <-> integer ids (and multi-hot rows for multi-label data)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from keel.errors import DataError


class LabelMap:
    """A fixed, ordered list of label names and their ids."""

    def __init__(self, labels: Sequence[str]) -> None:
        """Build from label names in id order.

        Raises:
            DataError: the list is empty or has duplicates.
        """
        names = [str(label) for label in labels]
        if not names:
            raise DataError("a label map needs at least one label")
        if len(set(names)) != len(names):
            raise DataError(f"duplicate labels in {names}")
        self._labels = names
        self._ids = {name: i for i, name in enumerate(names)}

    @classmethod
    def from_labels(cls, labels: Iterable[Any]) -> LabelMap:
        """Sorted distinct labels of a label column (strings or lists of strings)."""
        seen: set[str] = set()
        for label in labels:
            if isinstance(label, list | tuple):
                seen.update(str(x) for x in label)
            else:
                seen.add(str(label))
        return cls(sorted(seen))

    @property
    def labels(self) -> list[str]:
        """Label names in id order."""
        return list(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return label in self._ids

    def id_of(self, label: str) -> int:
        """Id of one label.

        Raises:
            DataError: the label is unknown.
        """
        try:
            return self._ids[label]
        except KeyError:
            raise DataError(f"unknown label {label!r}; known: {self._labels[:10]}...") from None

    def encode(self, labels: Sequence[str]) -> np.ndarray:
        """Label names -> int64 ids."""
        return np.asarray([self.id_of(label) for label in labels], dtype=np.int64)

    def encode_multi_hot(self, label_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Lists of label names -> float32 multi-hot matrix ``[n, n_labels]``."""
        out = np.zeros((len(label_lists), len(self._labels)), dtype=np.float32)
        for row, names in enumerate(label_lists):
            for name in names:
                out[row, self.id_of(name)] = 1.0
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> label names."""
        return [self._labels[int(i)] for i in ids]
