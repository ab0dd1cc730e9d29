"""Where each prompt field lands, in characters and then in tokens.

Attention analysis needs to know which tokens are the passage, the question, the
candidate answer, and which are template text. Searching the rendered prompt for the
passage string would be fooled by repeats (a question quoting the passage, an answer
that is a passage span), so fields are tracked through rendering instead: the jinja
template is rendered with private-use marker characters around every field value,
the markers are removed while their positions are recorded, and each chat message is
then located, in order, inside the chat-template rendering. Character spans become
token labels through the tokenizer's offset mapping.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from judgegap.backends.base import ChatPrompt
from judgegap.errors import JudgegapError

SPANS = ("context", "question", "candidate", "template", "rest")
_OPEN, _MID, _CLOSE = "\ue000", "\ue001", "\ue002"
_MARK = re.compile(f"{_OPEN}([a-z_]+){_MID}|{_CLOSE}")


def _strip_markers(text: str) -> tuple[str, dict[str, list[tuple[int, int]]]]:
    out, spans, stack, pos, last = [], {}, [], 0, 0
    for m in _MARK.finditer(text):
        out.append(text[last:m.start()])
        pos += m.start() - last
        last = m.end()
        if m.group(1):
            stack.append((m.group(1), pos))
        else:
            name, start = stack.pop()
            spans.setdefault(name, []).append((start, pos))
    out.append(text[last:])
    return "".join(out), spans


def render_with_spans(template: Any, fields: tuple[str, ...], **values: Any) -> tuple[ChatPrompt, list[dict[str, list[tuple[int, int]]]]]:
    """Render ``template`` and return, per message, the character spans of ``fields``."""
    for v in values.values():
        if isinstance(v, str) and any(c in v for c in (_OPEN, _MID, _CLOSE)):
            raise JudgegapError("prompt field contains reserved private-use characters U+E000..U+E002")
    marked = {k: (f"{_OPEN}{k}{_MID}{v}{_CLOSE}" if k in fields and isinstance(v, str) else v)
              for k, v in values.items()}
    plain = template.render(**values)
    with_marks = template.render(**marked)
    msgs, spans = [], []
    for (role, content), (_, mcontent) in zip(plain.messages, with_marks.messages):
        text, sp = _strip_markers(mcontent)
        # render() strips each message; markers shielded whitespace inside a field, so re-strip
        lead = len(text) - len(text.lstrip())
        text = text.strip()
        sp = {k: [(max(s - lead, 0), min(e - lead, len(text))) for s, e in v] for k, v in sp.items()}
        if text != content:
            raise JudgegapError("span tracking changed the rendered prompt (a template filter alters a field)")
        msgs.append((role, content))
        spans.append(sp)
    return plain, spans


def prompt_char_spans(full_text: str, prompt: ChatPrompt,
                      message_spans: list[dict[str, list[tuple[int, int]]]]) -> dict[str, list[tuple[int, int]]]:
    """Field spans in the fully rendered prompt (chat template or plain text)."""
    out: dict[str, list[tuple[int, int]]] = {}
    at = 0
    for (_, content), sp in zip(prompt.messages, message_spans):
        i = full_text.find(content, at)
        if i < 0:
            raise JudgegapError("a message's text is not found verbatim in the rendered prompt (the chat"
                                " template rewrites content); attention spans cannot be mapped")
        for k, v in sp.items():
            out.setdefault(k, []).extend((i + s, i + e) for s, e in v)
        at = i + len(content)
    return out


def token_labels(offsets: list[tuple[int, int]], char_spans: dict[str, list[tuple[int, int]]],
                 names: tuple[str, ...] = SPANS) -> np.ndarray:
    """One span index per token: the field it overlaps most, else 'template'; no offsets -> 'rest'.

    Tokens without characters (BOS and other special tokens the tokenizer adds) are 'rest'.
    """
    idx = {n: k for k, n in enumerate(names)}
    labels = np.full(len(offsets), idx["template"], dtype=np.int64)
    for t, (s, e) in enumerate(offsets):
        if e <= s:
            labels[t] = idx["rest"]
            continue
        best, best_ov = None, 0
        for name, spans in char_spans.items():
            if name not in idx:
                continue
            for a, b in spans:
                ov = min(e, b) - max(s, a)
                if ov > best_ov:
                    best, best_ov = name, ov
        if best is not None:
            labels[t] = idx[best]
    return labels
