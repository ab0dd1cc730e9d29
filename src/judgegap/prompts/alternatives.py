"""The pick-among-alternatives judge prompt (seed 004: does comparing an answer against broader
alternatives break the self-agreement loop?).

It opens like the version-2 templates (shared system prompt, passage and question first), so the
passage's KV prefix is shared with the item's answer and yes/no judge prompts. The options are
lettered; the verdict is read from the letters' log-probabilities in one pass, as every other
judgegap verdict is. The last option is always "none of these", so a judge that sees only wrong
answers can reject them all (otherwise picking one would be forced acceptance).
"""

from __future__ import annotations

from judgegap.prompts import _SHARED_SYSTEM, _SHARED_USER, PromptTemplate, register_prompt

LETTERS = "ABCDEFGHIJ"
NONE_TEXT = "None of these answers is correct"

QA_PICK = register_prompt(PromptTemplate(
    name="qa_pick", version="1", system=_SHARED_SYSTEM,
    user=_SHARED_USER + ("pick the correct answer among candidate answers.\n\n"
                         "{% for o in options %}{{ o.letter }}. {{ o.text }}\n{% endfor %}\n"
                         "Which candidate answer is correct according to the passage? Reply with its letter."),
    assistant_prefix="Correct answer:"))


def letter_choices(n: int) -> list[str]:
    """The scored continuations for ``n`` options: " A", " B", ... (single tokens in every bundled
    tokenizer; score_choices is exact for multi-token choices anyway)."""
    if not 2 <= n <= len(LETTERS):
        raise ValueError(f"{n} options: between 2 and {len(LETTERS)} are supported")
    return [" " + c for c in LETTERS[:n]]


__all__ = ["LETTERS", "NONE_TEXT", "QA_PICK", "letter_choices"]
