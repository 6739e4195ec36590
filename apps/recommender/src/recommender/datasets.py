"""Loading catalogues and interaction logs: the bundled demo data and MovieLens layout.

Every malformed row raises :class:`DataFormatError` naming the file and line.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from recommender.errors import DataFormatError

#: A rating at or above this counts as a positive interaction.
POSITIVE_RATING = 4.0


@dataclass
class Item:
    """A catalogue item.

    Attributes:
        id: stable item id.
        title: display title.
        text: description the bi-encoder reads.
        categories: category names.
        features: numeric item features (e.g. price).
        created_at: Unix seconds the item appeared (None = unknown).
    """

    id: str
    title: str
    text: str = ""
    categories: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    created_at: float | None = None

    @property
    def document(self) -> str:
        """The text embedded for this item: title, categories and description."""
        cats = f" [{', '.join(self.categories)}]" if self.categories else ""
        body = f". {self.text}" if self.text else ""
        return f"{self.title}{cats}{body}"


@dataclass(frozen=True)
class Interaction:
    """One logged interaction of a user with an item."""

    user_id: str
    item_id: str
    rating: float
    timestamp: float

    @property
    def positive(self) -> bool:
        """Rating >= 4 counts as a positive."""
        return self.rating >= POSITIVE_RATING


@dataclass
class Dataset:
    """A catalogue plus an interaction log (sorted by user, then time)."""

    items: list[Item]
    interactions: list[Interaction]
    source: str
    users: dict[str, str] = field(default_factory=dict)  # user id -> display name


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise DataFormatError("file not found", str(path))
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(f"missing column(s) {missing}", str(path), 1)
        yield from enumerate(reader, start=2)


def _number(row: dict[str, str], col: str, path: Path, line: int) -> float:
    raw = (row.get(col) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise DataFormatError(f"column {col!r}: {raw!r} is not a number", str(path), line) from None
    if not math.isfinite(value):
        raise DataFormatError(f"column {col!r}: {raw!r} is not finite", str(path), line)
    return value


def load_interactions(path: Path) -> list[Interaction]:
    """Read ``user_id,item_id,rating,timestamp`` rows (rating optional: default 5)."""
    out = []
    for line, row in _rows(path, ("user_id", "item_id", "timestamp")):
        user, item = (row["user_id"] or "").strip(), (row["item_id"] or "").strip()
        if not user or not item:
            raise DataFormatError("empty user_id or item_id", str(path), line)
        rating = _number(row, "rating", path, line) if row.get("rating") not in (None, "") else 5.0
        out.append(Interaction(user, item, rating, _number(row, "timestamp", path, line)))
    out.sort(key=lambda r: (r.user_id, r.timestamp, r.item_id))
    return out


def load_catalogue(path: Path) -> list[Item]:
    """Read a catalogue CSV in either layout.

    Demo layout: ``item_id,title,text,categories,created_at[,<numeric>...]`` with
    ``|``-separated categories. MovieLens layout: ``item_id,title,release_year,genres``
    with space-separated genres.
    """
    items: list[Item] = []
    seen: set[str] = set()
    for line, row in _rows(path, ("item_id", "title")):
        item_id, title = (row["item_id"] or "").strip(), (row["title"] or "").strip()
        if not item_id or not title:
            raise DataFormatError("empty item_id or title", str(path), line)
        if item_id in seen:
            raise DataFormatError(f"duplicate item_id {item_id!r}", str(path), line)
        seen.add(item_id)
        if "genres" in row:
            items.append(_movielens_item(row, item_id, title, path, line))
        else:
            items.append(_demo_item(row, item_id, title, path, line))
    return items


def _movielens_item(row: dict[str, str], item_id: str, title: str, path: Path, line: int) -> Item:
    genres = [g for g in (row.get("genres") or "").split() if g]
    year_raw = (row.get("release_year") or "").strip()
    created = None
    year = None
    # MovieLens marks one title's year as "unkonwn": an unknown year, not a broken row.
    if year_raw.isdigit():
        year = int(year_raw)
        created = dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp()
    text = f"A {' '.join(genres).lower()} film" + (f" released in {year}." if year else ".")
    return Item(item_id, title, text, genres, {}, created)


def _demo_item(row: dict[str, str], item_id: str, title: str, path: Path, line: int) -> Item:
    reserved = {"item_id", "title", "text", "categories", "created_at"}
    cats = [c.strip() for c in (row.get("categories") or "").split("|") if c.strip()]
    features = {
        col: _number(row, col, path, line)
        for col in row
        if col not in reserved and col is not None and (row[col] or "").strip()
    }
    created = (
        _number(row, "created_at", path, line) if (row.get("created_at") or "").strip() else None
    )
    return Item(item_id, title, (row.get("text") or "").strip(), cats, features, created)


def load_users(path: Path) -> dict[str, str]:
    """Read ``user_id,name`` rows (demo data); MovieLens users get "user <id>"."""
    users = {}
    for _, row in _rows(path, ("user_id",)):
        uid = (row["user_id"] or "").strip()
        users[uid] = (row.get("name") or "").strip() or f"user {uid}"
    return users


def demo_data_dir() -> Path:
    """Folder of the bundled demo catalogue (package data)."""
    return Path(str(resources.files("recommender") / "demo_data"))


def load_demo() -> Dataset:
    """The bundled demo data set: an online course catalogue written for this project."""
    root = demo_data_dir()
    return Dataset(
        items=load_catalogue(root / "items.csv"),
        interactions=load_interactions(root / "interactions.csv"),
        source="demo",
        users=load_users(root / "users.csv"),
    )


def load_movielens(root: Path, ratings_file: str = "train_ratings.csv") -> Dataset:
    """A MovieLens-100K-layout folder: ``items.csv`` + ``ratings_file``."""
    items = load_catalogue(root / "items.csv")
    interactions = load_interactions(root / ratings_file)
    known = {i.id for i in items}
    for n, r in enumerate(interactions):
        if r.item_id not in known:
            raise DataFormatError(
                f"interaction {n} refers to unknown item_id {r.item_id!r}", str(root / ratings_file)
            )
    users = {u: f"user {u}" for u in sorted({r.user_id for r in interactions}, key=_natural)}
    return Dataset(items, interactions, str(root), users)


def load_dataset(data_dir: Path | None) -> Dataset:
    """Bundled demo data when ``data_dir`` is None, else a MovieLens-layout folder."""
    return load_demo() if data_dir is None else load_movielens(Path(data_dir))


def _natural(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 60, value)
