"""Labelled text data: loaders with file:line errors, label maps, splits, k-shot samples."""

from keel.data._labels import LabelMap
from keel.data._loaders import from_dataframe, load_labelled
from keel.data._splits import fingerprint, sample_k_shot, stratified_split
from keel.data._texts import LabelledTexts

__all__ = [
    "LabelMap",
    "LabelledTexts",
    "fingerprint",
    "from_dataframe",
    "load_labelled",
    "sample_k_shot",
    "stratified_split",
]
