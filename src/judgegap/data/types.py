"""The one item type every QA loader yields."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class QAItem:
    """One in-context QA question.

    ``answers`` holds every gold answer string (aliases included) as the official
    metric sees them; for DROP, where a gold answer can have several spans, each
    answer's spans are kept in ``gold_spans`` and ``answers`` holds them joined by
    ", " for display. An unanswerable item has ``answerable=False`` and no answers.
    """

    id: str
    dataset: str
    context: str
    question: str
    answers: tuple[str, ...]
    answerable: bool = True
    gold_spans: tuple[tuple[str, ...], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["answers"] = list(self.answers)
        d["gold_spans"] = [list(s) for s in self.gold_spans]
        return d

    @property
    def stratum(self) -> str:
        """The label used for stratified sampling: answerability and question type."""
        qtype = self.metadata.get("question_type") or self.metadata.get("answer_type") or ""
        return f"{'ans' if self.answerable else 'noans'}:{qtype}"
