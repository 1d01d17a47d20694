"""Holdouts, a global control group and A/B/n variants: who gets what, decided by a stable hash.

Every decision is a draw in ``[0, 1)`` from a BLAKE2b hash of a group key and the recipient's
normalised number (:func:`unit_draw`): the same in every process, on every machine, with every
Python version, in every shard and on every re-run, so a retried or resumed campaign assigns each
recipient exactly as before, and a later task (attribution, "winner to the rest") can recompute the
assignment from the experiment's definition alone. Each decision uses its own group key, so being
held out says nothing about the variant a recipient would have got::

    experiment = Experiment.from_dict({
        "key": "spring-sale-2026",
        "holdout": 0.10,
        "global_control": {"name": "brand-2026", "share": 0.05},
        "variants": [
            {"name": "A", "weight": 1},
            {"name": "B", "weight": 1, "template_name": "spring_sale_v2"},
        ],
    })
    experiment.assign("4915123456789").group   # "A", "B", "holdout" or "global_control"

The bulk sender will skip ``holdout`` and ``global_control`` recipients and apply the variant's
changes (:meth:`Variant.apply`) to the message; until it is wired in, use these to split an audience.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.limits import PRODUCT_POLICIES

#: What a variant may change in the message.
VARIANT_FIELDS: tuple[str, ...] = (
    "template_name",
    "language",
    "body_parameters",
    "header",
    "buttons",
    "components",
    "product_policy",
)
#: The group label of recipients who are sent the message when the experiment has no variants.
TREATMENT_GROUP = "treatment"
_SCALE = float(1 << 64)


def unit_draw(group_key: str, recipient_key: str) -> float:
    """A stable number in ``[0, 1)`` for a recipient in a group of decisions.

    :param group_key: names the decision (e.g. ``"spring-sale/holdout"``); different keys give
        independent draws for the same recipient.
    :param recipient_key: the recipient's normalised digits (normalise first, so ``+49 151...`` and
        ``49151...`` agree).
    """
    data = f"{len(group_key)}:{group_key}|{recipient_key}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") / _SCALE


class AssignmentKind(StrEnum):
    """What happens to a recipient of a campaign with an experiment."""

    TREATMENT = "treatment"
    """Sent the message (its variant, if the experiment has variants)."""
    HOLDOUT = "holdout"
    """Held out of this campaign, to measure what the campaign changed."""
    GLOBAL_CONTROL = "global_control"
    """In the global control group: kept out of every campaign that opts in."""
    REST = "rest"
    """Outside the test slice: waits for the winner (sent once :meth:`Experiment.with_winner` names it)."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where an experiment puts one recipient."""

    kind: AssignmentKind
    """Treatment, holdout, global control or rest."""
    variant: str | None = None
    """The variant sent (treatment only; ``None`` when the experiment has no variants)."""
    in_test: bool = True
    """Whether the recipient is in the test slice (``False``: the rest, sent the winner later)."""

    @property
    def group(self) -> str:
        """The label reports use: the variant's name, else ``treatment``, ``holdout``, ..."""
        return self.variant or str(self.kind)

    @property
    def sends(self) -> bool:
        """Whether the recipient is sent a message."""
        return self.kind is AssignmentKind.TREATMENT


def _check_share(name: str, value: object, *, upper_open: bool = True) -> float:
    """A share in ``[0, 1)`` (or ``(0, 1]`` with ``upper_open=False``) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    share = float(value)
    ok = 0 <= share < 1 if upper_open else 0 < share <= 1
    if not ok:
        interval = "[0, 1)" if upper_open else "(0, 1]"
        raise ConfigurationError(f"{name} must be in {interval}, got {value!r}")
    return share


@dataclass(frozen=True)
class Variant:
    """One arm of an A/B/n test: a name, a weight and what it changes in the message.

    :param name: unique within the experiment (reports group by it).
    :param weight: relative share of the test slice (positive; weights are normalised).
    :param changes: message settings this variant overrides, among :data:`VARIANT_FIELDS`
        (``template_name``, ``language``, ``body_parameters``, ``header``, ``buttons``,
        ``components``, ``product_policy``).
    """

    name: str
    weight: float = 1.0
    changes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(f"a variant needs a non-empty name, got {self.name!r}")
        if self.name in tuple(AssignmentKind):
            raise ConfigurationError(f"variant name {self.name!r} is reserved; choose another")
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise ConfigurationError(f"variant {self.name!r}: weight must be a positive number, got {w!r}")
        unknown = sorted(set(self.changes) - set(VARIANT_FIELDS))
        if unknown:
            raise ConfigurationError(
                f"variant {self.name!r} cannot change {unknown}; a variant may change {list(VARIANT_FIELDS)}"
            )
        policy = self.changes.get("product_policy")
        if policy is not None and policy not in PRODUCT_POLICIES:
            raise ConfigurationError(
                f"variant {self.name!r}: product_policy must be one of {list(PRODUCT_POLICIES)}, "
                f"got {policy!r}"
            )

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Variant:
        """A variant from ``{"name": ..., "weight": ..., <changed settings>...}``."""
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigurationError(f"a variant is a dict with a 'name', got {spec!r}")
        changes = {k: v for k, v in spec.items() if k not in ("name", "weight")}
        return cls(name=spec["name"], weight=spec.get("weight", 1.0), changes=changes)

    def to_dict(self) -> dict[str, Any]:
        """The dict :meth:`from_dict` reads."""
        return {"name": self.name, "weight": self.weight, **self.changes}

    def apply(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """``settings`` (message arguments such as ``template_name``) with this variant's changes."""
        return {**settings, **self.changes}


@dataclass(frozen=True)
class GlobalControl:
    """A stable share of all recipients kept out of every campaign that opts in.

    Membership depends only on ``name`` and the recipient, never on the campaign, so the same people
    are held back from every campaign that names this group; compare them to everyone else to measure
    what the whole programme of campaigns does.

    :param name: the group's name (e.g. ``"brand-2026"``).
    :param share: the share of all recipients in the group, in ``[0, 1)``.
    """

    name: str
    share: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(f"the global control group needs a non-empty name, got {self.name!r}")
        object.__setattr__(self, "share", _check_share("global_control share", self.share))

    def contains(self, recipient: str) -> bool:
        """Whether the recipient (normalised digits) is in the group."""
        return self.share > 0 and unit_draw(f"global-control/{self.name}", recipient) < self.share


@dataclass(frozen=True)
class Experiment:
    """A campaign's holdout, global control group, variants and test slice.

    :param key: salts every draw; keep it the same for everything that must agree on the
        assignment (the sending task, its "winner to the rest" follow-up, the attribution task).
        A new key reshuffles everyone.
    :param holdout: share of the campaign's recipients (outside the global control group) held out,
        in ``[0, 1)``.
    :param variants: the arms (:class:`Variant` or dicts for :meth:`Variant.from_dict`); none means
        one message for everyone sent.
    :param global_control: the global control group this campaign honours, if any.
    :param test_share: share of the sent recipients in the test slice, in ``(0, 1]``; the others
        are ``rest`` until :meth:`with_winner` names the variant they get.
    :param winner: the variant sent to the rest (see :meth:`with_winner`).
    """

    key: str
    holdout: float = 0.0
    variants: Sequence[Variant] = ()
    global_control: GlobalControl | None = None
    test_share: float = 1.0
    winner: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ConfigurationError(f"an experiment needs a non-empty key, got {self.key!r}")
        object.__setattr__(self, "holdout", _check_share("holdout", self.holdout))
        object.__setattr__(self, "test_share", _check_share("test_share", self.test_share, upper_open=False))
        variants = tuple(v if isinstance(v, Variant) else Variant.from_dict(v) for v in self.variants)
        names = [v.name for v in variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"variant names must be unique; repeated: {duplicates}")
        object.__setattr__(self, "variants", variants)
        if isinstance(self.global_control, Mapping):
            object.__setattr__(self, "global_control", GlobalControl(**self.global_control))
        if self.winner is not None and self.winner not in names:
            raise ConfigurationError(f"winner {self.winner!r} is not one of the variants {names}")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Experiment:
        """An experiment from a JSON-like dict (the keys are the parameters of this class)."""
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"an experiment is a dict, got {type(spec).__name__}")
        unknown = sorted(set(spec) - {"key", "holdout", "variants", "global_control", "test_share", "winner"})
        if unknown:
            raise ConfigurationError(f"unknown experiment settings {unknown}")
        if "key" not in spec:
            raise ConfigurationError("an experiment needs a 'key'")
        return cls(**dict(spec))

    def to_dict(self) -> dict[str, Any]:
        """The dict :meth:`from_dict` reads (JSON-safe when the variants' changes are)."""
        gc = self.global_control
        return {
            "key": self.key,
            "holdout": self.holdout,
            "variants": [v.to_dict() for v in self.variants],
            "global_control": None if gc is None else {"name": gc.name, "share": gc.share},
            "test_share": self.test_share,
            "winner": self.winner,
        }

    @property
    def shares(self) -> dict[str, float]:
        """Each variant's share of the test slice (weights normalised to sum to 1)."""
        total = sum(v.weight for v in self.variants)
        return {v.name: v.weight / total for v in self.variants}

    def variant(self, name: str) -> Variant:
        """The variant called ``name``."""
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigurationError(f"no variant {name!r}; the variants are {[v.name for v in self.variants]}")

    def with_winner(self, name: str) -> Experiment:
        """The same experiment, sending variant ``name`` to the recipients outside the test slice."""
        self.variant(name)
        return replace(self, winner=name)

    def variant_for(self, recipient: str) -> str | None:
        """The variant drawn for a recipient, whether or not it is sent (``None`` without variants).

        The draw is independent of the holdout and test-slice draws, so holdout members have a
        variant too: the one they would have got.
        """
        if not self.variants:
            return None
        draw = unit_draw(f"{self.key}/variant", recipient)
        total = sum(v.weight for v in self.variants)
        cumulative = 0.0
        for v in self.variants:
            cumulative += v.weight / total
            if draw < cumulative:
                return v.name
        return self.variants[-1].name  # cumulative rounding left the draw just below 1

    def assign(self, recipient: str) -> Assignment:
        """Where the recipient (normalised digits) goes: global control, holdout, rest or a variant."""
        if self.global_control is not None and self.global_control.contains(recipient):
            return Assignment(AssignmentKind.GLOBAL_CONTROL)
        if self.holdout > 0 and unit_draw(f"{self.key}/holdout", recipient) < self.holdout:
            return Assignment(AssignmentKind.HOLDOUT)
        if self.test_share < 1 and unit_draw(f"{self.key}/test", recipient) >= self.test_share:
            if self.winner is None:
                return Assignment(AssignmentKind.REST, in_test=False)
            return Assignment(AssignmentKind.TREATMENT, self.winner, in_test=False)
        return Assignment(AssignmentKind.TREATMENT, self.variant_for(recipient))


__all__ = [
    "TREATMENT_GROUP",
    "VARIANT_FIELDS",
    "Assignment",
    "AssignmentKind",
    "Experiment",
    "GlobalControl",
    "Variant",
    "unit_draw",
]
