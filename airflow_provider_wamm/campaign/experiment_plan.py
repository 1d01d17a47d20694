"""An experiment applied to one campaign: each recipient's group, and the message each variant sends.

:class:`~airflow_provider_wamm.campaign.experiments.Experiment` decides who is in which group; this
module turns a variant's changes into what the sender needs (template, language, personaliser,
product policy) and what the ledger records of it (the ``variant`` column beside the template and
language). Built once per run from the campaign's settings; every variant's message is checked
before anything is read or sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_wamm.campaign.experiments import (
    Assignment,
    AssignmentKind,
    Experiment,
    Variant,
)
from airflow_provider_wamm.campaign.personalise import Personaliser
from airflow_provider_wamm.graph.errors import ConfigurationError
from airflow_provider_wamm.graph.payload import PayloadError, build_marketing_message

#: A variant's settings that change the personalisation (the others change the template itself).
PERSONALISATION_FIELDS = frozenset({"body_parameters", "header", "buttons", "components"})


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """What one variant (or the campaign without variants) sends."""

    template_name: str
    """The approved marketing template."""
    language: str
    """Its language code."""
    personaliser: Personaliser | None = None
    """Renders each recipient's parameters (``None``: a template without parameters)."""
    product_policy: str | None = None
    """``CLOUD_API_FALLBACK`` or ``STRICT`` (``None``: Meta's default)."""


@dataclass(frozen=True, slots=True)
class RowLabels:
    """What a ``sends`` row records of the message a recipient got (or would have got)."""

    template_name: str
    language: str
    variant: str | None = None
    """The recipient's group: a variant's name, ``holdout``, ``global_control`` or ``rest``."""


def variant_personaliser(base: Personaliser | None, changes: Mapping[str, Any]) -> Personaliser | None:
    """``base`` with the variant's personalisation changes (a raw ``components`` list replaces the rest).

    :raises ConfigurationError: the changed parameters are not a valid personalisation spec.
    """
    changed = PERSONALISATION_FIELDS & set(changes)
    if not changed:
        return base
    if "components" in changed:
        spec: dict[str, Any] = {"components": changes["components"]}
    else:
        spec = {} if base is None else {k: v for k, v in base.spec.items() if k != "components"}
        spec.update({k: changes[k] for k in changed})
    spec = {k: v for k, v in spec.items() if v is not None}
    return Personaliser.from_dict(spec) if spec else None


class ExperimentPlan:
    """The experiment of a campaign, with the message of every variant ready to personalise.

    :param experiment: who is in which group.
    :param base: the campaign's own message (what a variant does not change).
    :raises ConfigurationError: a variant's message cannot be built (unknown product policy, an
        invalid parameter spec...), naming the variant.
    """

    def __init__(self, experiment: Experiment, base: MessageSpec) -> None:
        self.experiment = experiment
        self.base = base
        self._specs: dict[str, MessageSpec] = {v.name: self._spec(v) for v in experiment.variants}

    def _spec(self, variant: Variant) -> MessageSpec:
        c, base = variant.changes, self.base
        try:
            spec = MessageSpec(
                template_name=str(c.get("template_name", base.template_name)),
                language=str(c.get("language", base.language)),
                personaliser=variant_personaliser(base.personaliser, c),
                product_policy=c.get("product_policy", base.product_policy),
            )
            build_marketing_message(
                to="10000000000",
                template_name=spec.template_name,
                language=spec.language,
                product_policy=spec.product_policy,
            )
        except (ConfigurationError, PayloadError) as exc:
            raise ConfigurationError(f"variant {variant.name!r}: {exc}") from None
        return spec

    def assign(self, recipient: str) -> Assignment:
        """The recipient's group (see :meth:`Experiment.assign`)."""
        return self.experiment.assign(recipient)

    def message(self, assignment: Assignment) -> MessageSpec:
        """The message an assignment sends (the campaign's own without a variant)."""
        if assignment.variant is None:
            return self.base
        return self._specs[assignment.variant]

    def message_of(self, variant: str) -> MessageSpec:
        """The message of the variant called ``variant``."""
        return self._specs[variant]

    def labels(self, recipient: str) -> RowLabels:
        """What the recipient's ``sends`` row records: the template of its variant and its group."""
        if recipient.startswith("!"):  # an input row without a usable number
            return RowLabels(self.base.template_name, self.base.language)
        assignment = self.assign(recipient)
        spec = self.message(assignment)
        return RowLabels(spec.template_name, spec.language, group_label(assignment))

    @property
    def templates(self) -> list[tuple[str, str]]:
        """Every (template, language) the plan may send, the campaign's own first, without repeats."""
        pairs = [(self.base.template_name, self.base.language)]
        pairs += [(s.template_name, s.language) for s in self._specs.values()]
        return list(dict.fromkeys(pairs))

    @property
    def field_uses(self) -> dict[str, tuple[str, ...]]:
        """The recipient fields any variant's personalisation refers to (the query must return them)."""
        uses: dict[str, tuple[str, ...]] = {}
        for spec in (self.base, *self._specs.values()):
            if spec.personaliser is not None:
                for name, where in spec.personaliser.field_uses.items():
                    uses[name] = tuple(dict.fromkeys(uses.get(name, ()) + where))
        return uses


def group_label(assignment: Assignment) -> str | None:
    """The group the ledger records: the variant's name (``rest:<winner>`` for the rest, sent the winner
    after the test), ``holdout``, ``global_control`` or ``rest``; ``None`` for a send without variants."""
    if assignment.variant is not None:
        return assignment.variant if assignment.in_test else f"rest:{assignment.variant}"
    return None if assignment.sends else str(assignment.kind)


def is_held_back(assignment: Assignment) -> bool:
    """Whether the assignment keeps the recipient from any message in this run."""
    return assignment.kind is not AssignmentKind.TREATMENT


__all__ = [
    "PERSONALISATION_FIELDS",
    "ExperimentPlan",
    "MessageSpec",
    "RowLabels",
    "group_label",
    "is_held_back",
    "variant_personaliser",
]
