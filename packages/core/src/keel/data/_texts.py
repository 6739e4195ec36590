"""``LabelledTexts``: texts with one label (or a list of labels) each."""

from __future__ import annotations

from dataclasses import dataclass, field

from keel.errors import DataError


@dataclass
class LabelledTexts:
    """Texts and their labels: a ``str`` per text, or a ``list[str]`` per text (multi-label).

    Attributes:
        texts: the input texts.
        labels: one label per text, or one list of labels per text.
        source: where the data came from (a file path), for messages.
    """

    texts: list[str]
    labels: list[str] | list[list[str]]
    source: str | None = field(default=None)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(
                f"{len(self.texts)} texts but {len(self.labels)} labels; they must match",
                self.source,
            )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def multi_label(self) -> bool:
        """True when every row holds a list of labels."""
        return bool(self.labels) and isinstance(self.labels[0], list)

    def label_lists(self) -> list[list[str]]:
        """Labels as one list per row (a single-label row becomes a one-item list)."""
        return [list(lab) if isinstance(lab, list) else [lab] for lab in self.labels]

    def label_set(self) -> list[str]:
        """Every distinct label, sorted."""
        return sorted({lab for row in self.label_lists() for lab in row})

    def subset(self, indices: list[int]) -> LabelledTexts:
        """A new ``LabelledTexts`` with the rows at ``indices``, in that order."""
        labels = [self.labels[i] for i in indices]
        return LabelledTexts([self.texts[i] for i in indices], labels, self.source)  # type: ignore[arg-type]
