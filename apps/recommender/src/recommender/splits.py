"""Pure helpers over interaction logs: temporal splits, histories, training pairs, negatives."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from recommender.datasets import Interaction, Item


def by_user(interactions: Iterable[Interaction]) -> dict[str, list[Interaction]]:
    """Interactions grouped per user, each list sorted by (timestamp, item id)."""
    groups: dict[str, list[Interaction]] = defaultdict(list)
    for r in interactions:
        groups[r.user_id].append(r)
    for rows in groups.values():
        rows.sort(key=lambda r: (r.timestamp, r.item_id))
    return dict(groups)


def temporal_split(
    interactions: Iterable[Interaction], holdout_fraction: float = 0.1, min_holdout: int = 1
) -> tuple[list[Interaction], list[Interaction]]:
    """Per user, the last ``floor(n * fraction)`` interactions (at least ``min_holdout``,
    never all of them) go to the second list; the rest, in order, to the first.

    With fraction 0.1 this mirrors how MovieLens' held-back test split was made.
    """
    head: list[Interaction] = []
    tail: list[Interaction] = []
    for rows in by_user(interactions).values():
        k = max(min_holdout, math.floor(len(rows) * holdout_fraction))
        k = min(k, len(rows) - 1)
        cut = len(rows) - k
        head.extend(rows[:cut])
        tail.extend(rows[cut:])
    return head, tail


def positive_histories(
    interactions: Iterable[Interaction], max_len: int = 50
) -> dict[str, list[str]]:
    """Per user, the item ids of the newest ``max_len`` positives, oldest first."""
    return {
        user: [r.item_id for r in rows if r.positive][-max_len:]
        for user, rows in by_user(interactions).items()
    }


def next_item_pairs(
    interactions: Iterable[Interaction],
    items: dict[str, Item],
    window: int = 3,
    max_pairs: int | None = None,
    seed: int = 13,
) -> list[tuple[str, str]]:
    """(history item document -> next positive item document) pairs for the bi-encoder.

    For each positive after a user's first, one of the previous ``window`` positives is
    the anchor. This trains the item-to-item similarity that the semantic score uses.
    """
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    for rows in by_user(interactions).values():
        pos = [r.item_id for r in rows if r.positive and r.item_id in items]
        for t in range(1, len(pos)):
            anchor = pos[rng.randrange(max(0, t - window), t)]
            if anchor != pos[t]:
                pairs.append((items[anchor].document, items[pos[t]].document))
    rng.shuffle(pairs)
    return pairs[:max_pairs] if max_pairs is not None else pairs


@dataclass(frozen=True)
class RankingCase:
    """One user's ranking test: history, candidate item ids and which ones are positive."""

    user_id: str
    history: list[str]
    candidates: list[str]
    labels: np.ndarray  # 1.0 for positives, 0.0 for sampled negatives
    as_of: float  # time of the user's last history interaction: the ranking happens then


def sampled_cases(
    history_log: list[Interaction],
    target_log: list[Interaction],
    all_item_ids: list[str],
    negatives: int = 99,
    positives_per_user: int = 1,
    max_history: int = 50,
    seed: int = 13,
    exclude_log: list[Interaction] | None = None,
) -> list[RankingCase]:
    """Build "positives vs ``negatives`` sampled unseen items" cases per user.

    Args:
        history_log: interactions that form the users' histories.
        target_log: later interactions; its first ``positives_per_user`` positives per
            user are the targets.
        all_item_ids: the item universe negatives are drawn from.
        negatives: negatives per positive (99 -> the usual 1-vs-99 protocol).
        positives_per_user: targets per user.
        max_history: newest positives kept in a history.
        seed: sampling seed (users are processed in sorted order, so results repeat).
        exclude_log: further interactions whose items are never negatives.

    Returns:
        Cases for users that have a history and a target; one case per target.
    """
    rng = np.random.default_rng(seed)
    histories = positive_histories(history_log, max_history)
    seen: dict[str, set[str]] = defaultdict(set)
    for r in (*history_log, *target_log, *(exclude_log or [])):
        seen[r.user_id].add(r.item_id)
    last_seen: dict[str, float] = {}
    for r in history_log:
        last_seen[r.user_id] = max(last_seen.get(r.user_id, r.timestamp), r.timestamp)
    targets = by_user(target_log)
    universe = np.array(all_item_ids)
    cases = []
    for user in sorted(targets):
        hist = histories.get(user, [])
        if not hist:
            continue
        pos = [r.item_id for r in targets[user] if r.positive][:positives_per_user]
        for target in pos:
            mask = ~np.isin(universe, list(seen[user]))
            pool = universe[mask]
            if len(pool) < negatives:
                continue
            neg = rng.choice(pool, size=negatives, replace=False).tolist()
            labels = np.zeros(negatives + 1)
            labels[0] = 1.0
            cases.append(RankingCase(user, hist, [target, *neg], labels, last_seen[user]))
    return cases
