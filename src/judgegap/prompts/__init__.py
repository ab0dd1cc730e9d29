"""Versioned prompt templates (jinja2), registered by name and recorded with every result.

Shared content comes first (instructions, passage, question) and the candidate answer
last, so the judge prompts of one item share a long token prefix that the ``hf``
backend encodes once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, StrictUndefined

from judgegap.backends.base import ChatPrompt
from judgegap.registry import Registry

_ENV = Environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    system: str
    user: str
    assistant_prefix: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, **values: Any) -> ChatPrompt:
        system = _ENV.from_string(self.system).render(**values).strip()
        user = _ENV.from_string(self.user).render(**values).strip()
        return ChatPrompt.of(system or None, user, self.assistant_prefix)

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "system": self.system, "user": self.user, "assistant_prefix": self.assistant_prefix}


PROMPTS: Registry[PromptTemplate] = Registry("prompt template")


def register_prompt(t: PromptTemplate, default: bool = True) -> PromptTemplate:
    """Register ``name@version`` always, and ``name`` too when this version is the default."""
    PROMPTS.add(t.id, t)
    if default:
        PROMPTS.add(t.name, t)
    return t


QA_GENERATE = register_prompt(PromptTemplate(
    name="qa_generate",
    version="1",
    system=(
        "Answer the question using only the passage. Reply with the shortest answer, copied from the passage"
        " where possible, and no explanation."
        "{% if allow_unanswerable %} If the passage does not contain the answer, reply exactly: unanswerable{% endif %}"
    ),
    user="Passage:\n{{ context }}\n\nQuestion: {{ question }}",
    assistant_prefix="Answer:",
))

QA_JUDGE = register_prompt(PromptTemplate(
    name="qa_judge",
    version="1",
    system=(
        "You check answers to reading-comprehension questions. The passage is the only source of truth."
        "{% if allow_unanswerable %} The answer \"unanswerable\" is correct only if the passage does not contain"
        " the answer.{% endif %}"
    ),
    user=(
        "Passage:\n{{ context }}\n\nQuestion: {{ question }}\n\nProposed answer: {{ candidate }}\n\n"
        "Is the proposed answer correct according to the passage? Reply with Yes or No."
    ),
    assistant_prefix="Verdict:",
))

JUDGE_CHOICES = (" Yes", " No")

PAIR_JUDGE = register_prompt(PromptTemplate(
    name="pair_judge",
    version="1",
    system=(
        "You compare two responses to the same instruction and decide which one is better: more helpful,"
        " accurate and faithful to the instruction. Do not let the order or the length of the responses"
        " influence you."
        "{% if allow_tie %} If both are equally good or equally bad, say Tie.{% endif %}"
    ),
    user=(
        "Instruction:\n{{ instruction }}{% if input %}\n\nInput:\n{{ input }}{% endif %}\n\n"
        "Response A:\n{{ response_a }}\n\nResponse B:\n{{ response_b }}\n\n"
        "Which response is better? Reply with A or B{% if allow_tie %} or Tie{% endif %}."
    ),
    assistant_prefix="Better response:",
))

QA_PAIR_JUDGE = register_prompt(PromptTemplate(
    name="qa_pair_judge",
    version="1",
    system="You compare two answers to a reading-comprehension question. The passage is the only source of truth.",
    user=(
        "Passage:\n{{ context }}\n\nQuestion: {{ question }}\n\n"
        "Answer A: {{ response_a }}\nAnswer B: {{ response_b }}\n\n"
        "Which answer is correct according to the passage? Reply with A or B."
    ),
    assistant_prefix="Better answer:",
))

PAIR_CHOICES = (" A", " B")
PAIR_TIE_CHOICE = " Tie"

SELF_SCORE = register_prompt(PromptTemplate(
    name="self_score",
    version="1",
    system=(
        "You grade answers to reading-comprehension questions. The passage is the only source of truth."
        "{% if allow_unanswerable %} The answer \"unanswerable\" is correct only if the passage does not contain"
        " the answer.{% endif %}"
    ),
    user=(
        "Passage:\n{{ context }}\n\nQuestion: {{ question }}\n\nAnswer: {{ candidate }}\n\n"
        "How likely is this answer to be correct? Give a score from 1 (certainly wrong) to 10"
        " (certainly correct). Reply with the number only."
    ),
    assistant_prefix="Score:",
))

# -- version 2: one shared opening for answering, judging and self-scoring ---------------------------
# The system prompt, passage and question come first and are identical in all three, so an item's
# answer, judge and self-score prompts share one long token prefix: a backend with a KV cache
# (llamacpp, hf's prefix sharing) evaluates the passage once per item instead of once per prompt.
_SHARED_SYSTEM = ("You work with a passage and a question about it. The passage is the only source of truth."
                  "{% if allow_unanswerable %} If the passage does not contain the answer, the correct answer is:"
                  " unanswerable{% endif %}")
_SHARED_USER = "Passage:\n{{ context }}\n\nQuestion: {{ question }}\n\nTask: "

QA_GENERATE_V2 = register_prompt(PromptTemplate(
    name="qa_generate", version="2", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("answer the question with the shortest answer, copied from the passage where possible,"
                         " and no explanation."),
    assistant_prefix="Answer:"), default=False)

QA_JUDGE_V2 = register_prompt(PromptTemplate(
    name="qa_judge", version="2", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("decide whether a proposed answer is correct according to the passage.\n\n"
                         "Proposed answer: {{ candidate }}\n\nIs the proposed answer correct? Reply with Yes or No."),
    assistant_prefix="Verdict:"), default=False)

SELF_SCORE_V2 = register_prompt(PromptTemplate(
    name="self_score", version="2", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("grade an answer.\n\nAnswer: {{ candidate }}\n\nHow likely is this answer to be correct?"
                         " Give a score from 1 (certainly wrong) to 10 (certainly correct). Reply with the number"
                         " only."),
    assistant_prefix="Score:"), default=False)

# -- qa_judge version 3: the v2 opening, then a terse judge ------------------------------------------
# Why: the self-judge's cost on a KV-cache backend is the tokens after the prefix it shares with the
# item's answer prompt (qa_generate@2, through "Task: "). qa_judge@2 then spends 36-46 tokens on its
# instruction, the candidate and the chat closing -- measured 22-25% of the answer's time on llama.cpp,
# against the 15% target of issue #15; v3 asks in ~18-24 tokens (measured 12-14% on SmolLM2 and Qwen). The answer
# prompt stays qa_generate@2, so answers do not change; whether the verdicts move is measured in
# benchmarks/RESULTS.md (they do: a different prompt is a different judge, so v2 stays the default).
QA_JUDGE_V3 = register_prompt(PromptTemplate(
    name="qa_judge", version="3", system=_SHARED_SYSTEM,
    user=_SHARED_USER + "judge this answer: {{ candidate }}\nCorrect? Yes or No.",
    assistant_prefix="Verdict:"), default=False)

# The answer prompt with the self-score appended in the same reply (the SEE policy's format, seed 002):
# the first line is the answer, then "Score: N". Same shared opening, so the passage prefix is reused.
QA_GENERATE_SCORED = register_prompt(PromptTemplate(
    name="qa_generate_scored", version="1", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("answer the question with the shortest answer, copied from the passage where possible,"
                         " and no explanation. Then, on a new line, write \"Score:\" and how likely your answer is"
                         " correct, from 1 (certainly wrong) to 10 (certainly correct)."),
    assistant_prefix="Answer:"))

# -- C-MASK (seed 000's ablation): the judge prompt with the candidate withheld ------------------------
# How much does a verdict depend on the candidate at all? The same prompt, the answer replaced by a
# fixed note, so P(" Yes") here is the judge's prior for the item.
MASKED_CANDIDATE = "(withheld: judge whether an answer to this question is likely to be correct)"


def masked_judge_template(judge_template_id: str) -> PromptTemplate:
    """The C-MASK variant of a judge template (``qa_judge@2`` -> ``qa_judge_masked@2``)."""
    base = PROMPTS.get(judge_template_id)
    tid = f"{base.name}_masked@{base.version}"
    if tid not in PROMPTS:
        if "{{ candidate }}" not in base.user:
            raise ValueError(f"template {base.id} has no {{{{ candidate }}}} field to withhold")
        register_prompt(PromptTemplate(name=f"{base.name}_masked", version=base.version, system=base.system,
                                       user=base.user.replace("{{ candidate }}", MASKED_CANDIDATE),
                                       assistant_prefix=base.assistant_prefix), default=False)
    return PROMPTS.get(tid)


from judgegap.prompts import critique as _critique  # noqa: E402,F401  (registers the critique templates)
from judgegap.prompts import alternatives as _alternatives  # noqa: E402,F401  (registers qa_pick)

__all__ = ["MASKED_CANDIDATE", "masked_judge_template", "QA_GENERATE_V2", "QA_JUDGE_V2", "SELF_SCORE_V2",
           "QA_JUDGE_V3", "JUDGE_CHOICES", "PAIR_CHOICES", "PAIR_JUDGE", "PAIR_TIE_CHOICE", "PROMPTS", "PromptTemplate",
           "QA_GENERATE", "QA_JUDGE", "QA_PAIR_JUDGE", "SELF_SCORE", "register_prompt"]
