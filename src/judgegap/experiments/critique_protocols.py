"""The critique protocols, registered by name (plugins add their own with ``PROTOCOLS.register``).

A protocol says who takes part and what each agent is shown in a round; the critique experiment
(judgegap.experiments.critique) runs the rounds, batches the calls per model and stores one turn
per agent, item and round. Round 0 is every agent's own answer.

- ``self-revise``: the author sees its answer (and, with ``self_critique``, its own review of it
  first) and answers again;
- ``cross-critique``: a different model reviews the author's answer; the author revises;
- ``debate``: two or more different models see each other's current answers and update; the group
  answer is a majority and a confidence-weighted vote;
- ``same-model-debate``: copies of one model, sampling, in the same debate (the control: is it the
  different model that helps, or just more samples?).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from judgegap.registry import Registry


@dataclass(frozen=True)
class Agent:
    name: str  # unique in its group: the model name, or "model#k" for a sampled copy
    model: str  # the configured model that answers
    copy: int | None = None  # sampled copy index (same-model-debate), None = the model's own decoding


@dataclass(frozen=True)
class Group:
    """Agents whose answers evolve together on the same items (one author, or one debate)."""

    name: str
    agents: tuple[Agent, ...]
    critic: str | None = None  # the model that reviews each agent's answer before it revises

    @property
    def votes(self) -> bool:
        return len(self.agents) > 1


class Protocol:
    """What a protocol declares; the experiment does the calling."""

    name = "protocol"
    needs_feedback_from_critic = False  # a critique call precedes each revision
    debate = False  # agents see each other's answers (else their own answer and any critique)

    def groups(self, p: Any, models: list[str]) -> list[Group]:
        """The groups this protocol runs on ``models`` (the calling models, config order).
        Raises ValueError with one line when the config cannot support it."""
        raise NotImplementedError

    def critic_of(self, p: Any, group: Group, agent: Agent) -> str | None:
        """The model whose review the agent sees before revising (None: no review this round)."""
        return None


PROTOCOLS: Registry[type[Protocol]] = Registry("critique protocol")


def _authors(p: Any, models: list[str]) -> list[str]:
    return models if p.authors == "all" else list(p.authors)


@PROTOCOLS.register("self-revise")
class SelfRevise(Protocol):
    name = "self-revise"

    def groups(self, p: Any, models: list[str]) -> list[Group]:
        return [Group(a, (Agent(a, a),), critic=a if p.self_critique else None) for a in _authors(p, models)]

    def critic_of(self, p: Any, group: Group, agent: Agent) -> str | None:
        return group.critic


@PROTOCOLS.register("cross-critique")
class CrossCritique(Protocol):
    name = "cross-critique"

    def groups(self, p: Any, models: list[str]) -> list[Group]:
        if len(models) < 2:
            raise ValueError(f"protocol cross-critique needs two different models; only {len(models)} configured"
                             f" ({', '.join(models) or 'none'})")
        out = []
        for a in _authors(p, models):
            critic = p.critic if p.critic and p.critic != a else next(m for m in models[models.index(a) + 1:]
                                                                      + models if m != a)
            out.append(Group(f"{a}<-{critic}", (Agent(a, a),), critic=critic))
        return out

    def critic_of(self, p: Any, group: Group, agent: Agent) -> str | None:
        return group.critic


@PROTOCOLS.register("debate")
class Debate(Protocol):
    name = "debate"
    debate = True

    def groups(self, p: Any, models: list[str]) -> list[Group]:
        names = models if p.debaters == "all" else list(dict.fromkeys(p.debaters))
        if len(names) < 2:
            raise ValueError(f"protocol debate needs two or more different models; only {len(names)} available"
                             f" ({', '.join(names) or 'none'})")
        return [Group("+".join(names), tuple(Agent(n, n) for n in names))]


@PROTOCOLS.register("same-model-debate")
class SameModelDebate(Protocol):
    name = "same-model-debate"
    debate = True

    def groups(self, p: Any, models: list[str]) -> list[Group]:
        return [Group(f"{m}x{p.copies}", tuple(Agent(f"{m}#{k}", m, copy=k) for k in range(p.copies)))
                for m in _authors(p, models)]
