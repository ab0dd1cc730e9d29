"""Prompts of the critique protocols (seed 004): critique an answer, revise one's answer, debate.

They open like the version-2 templates (shared system prompt, passage and question first), so a
backend with a prefix cache evaluates an item's passage once across its answer, critique and
revision prompts. The text other agents contribute (a critique, another agent's answer) comes
last, after a fixed label, so a run records exactly what each model was shown.
"""

from __future__ import annotations

from judgegap.prompts import _SHARED_SYSTEM, _SHARED_USER, PromptTemplate, register_prompt

ANSWER_TASK = ("answer the question with the shortest answer, copied from the passage where possible, and no"
               " explanation.")
OTHER_AGENT_LABEL = "Answer from another agent:"

QA_CRITIQUE = register_prompt(PromptTemplate(
    name="qa_critique", version="1", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("review a proposed answer.\n\nProposed answer: {{ candidate }}\n\n"
                         "In one or two sentences, say whether the proposed answer is correct according to the"
                         " passage and, if it is not, what is wrong with it."),
    assistant_prefix="Review:"))

QA_REVISE = register_prompt(PromptTemplate(
    name="qa_revise", version="1", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("reconsider your answer.\n\nYour previous answer: {{ previous }}"
                         "{% if feedback %}\n\n{{ feedback_label }}: {{ feedback }}{% endif %}\n\n"
                         "Now " + ANSWER_TASK),
    assistant_prefix="Answer:"))

QA_DEBATE = register_prompt(PromptTemplate(
    name="qa_debate", version="1", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("reconsider your answer in the light of other agents' answers.\n\n"
                         "Your previous answer: {{ previous }}\n\n"
                         "{% for a in others %}" + OTHER_AGENT_LABEL + " {{ a }}\n{% endfor %}\n"
                         "Considering their answers and the passage, " + ANSWER_TASK),
    assistant_prefix="Answer:"))

__all__ = ["OTHER_AGENT_LABEL", "QA_CRITIQUE", "QA_DEBATE", "QA_REVISE"]
