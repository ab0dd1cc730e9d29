"""Answers produced elsewhere, read from the files other tools write (two-stage judging).

A model entry with ``answers:`` takes its answers from a file instead of generating them, so
asymmetry, self-preference and cross-judging can judge any system's output. Three kinds of file
are read, each detected from its content (``answers_format: auto``) or named explicitly:

- ``predictions``: the official predictions format ``judgegap score`` reads — a JSON object
  ``{id: answer}`` — or records (a JSON list / JSON Lines) with an id field and an ``answer``,
  ``prediction``, ``response`` or ``output`` field;
- ``lm_eval``: lm-evaluation-harness's ``--log_samples`` file (``samples_<task>_<time>.jsonl``):
  one line per document with ``doc`` (the dataset row, which carries the item id), ``resps`` and
  ``filtered_resps`` (the answer after the task's filters, which is what lm-eval scored);
- ``inspect``: an inspect_ai eval log, either the ``.eval`` zip (one ``samples/<id>_epoch_<k>.json``
  per sample) or a ``.json`` log; the answer is the sample's ``output.completion``.

Why parse the files here rather than import the tools: neither tool is needed to *read* its
output, their formats are plain JSON, and a user judging answers should not have to install the
generator's stack. Every problem is one line naming the file, the line or sample, and the field.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from judgegap.errors import DataError

AnswerFormat = Literal["auto", "predictions", "lm_eval", "inspect"]
FORMATS: tuple[str, ...] = ("auto", "predictions", "lm_eval", "inspect")
ID_FIELDS = ("id", "_id", "qid", "question_id", "query_id", "item_id")
ANSWER_FIELDS = ("answer", "prediction", "response", "output", "completion")


@dataclass(frozen=True)
class AnswerSet:
    """Item id -> answer text from one file, with what the file says about where it came from.

    ``problems`` counts entries that carried no usable answer (an inspect sample that errored, an
    lm-eval response that is not text): they are reported, never silently dropped.
    """

    path: Path
    format: str
    answers: dict[str, str]
    sha256: str
    source: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What a run records about the file (so a result names the answers it judged)."""
        return {"path": str(self.path), "format": self.format, "sha256": self.sha256, "n": len(self.answers),
                "source": self.source, "problems": self.problems}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (an answers file is JSON, JSON Lines or an inspect .eval log)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _json_lines(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {lineno} is not valid JSON (truncated?): {exc.msg}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: line {lineno} is not a JSON object")
        out.append((lineno, obj))
    return out


def _pick(obj: dict[str, Any], names: tuple[str, ...], explicit: str | None) -> tuple[str | None, Any]:
    if explicit is not None:
        return (explicit, obj[explicit]) if explicit in obj else (None, None)
    for n in names:
        if n in obj:
            return n, obj[n]
    return None, None


def _id_text(path: Path, where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{path}: {where}: the id must be a string or an integer, got {type(value).__name__}")
    return str(value)


def _add(path: Path, answers: dict[str, str], where: str, item_id: str, answer: Any) -> None:
    if not isinstance(answer, str):
        raise DataError(f"{path}: {where}: the answer for id {item_id!r} must be a string, got"
                        f" {type(answer).__name__}")
    if item_id in answers and answers[item_id] != answer:
        raise DataError(f"{path}: {where}: id {item_id!r} appears twice with different answers")
    answers[item_id] = answer


def _predictions(path: Path, text: str, id_field: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    answers: dict[str, str] = {}
    stripped = text.lstrip()
    if stripped.startswith("{") and not path.name.endswith(".jsonl"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
        if all(isinstance(v, str) for v in doc.values()):
            for k, v in doc.items():
                _add(path, answers, f"key {k!r}", k, v)
            return answers, {"tool": "predictions"}
        bad = next(k for k, v in doc.items() if not isinstance(v, str))
        raise DataError(f"{path}: key {bad!r}: a predictions file maps ids to answer strings, got"
                        f" {type(doc[bad]).__name__}")
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
        numbered = [(i, r) for i, r in enumerate(rows)]
        label = "record"
    else:
        numbered = _json_lines(path, text)
        label = "line"
    for n, row in numbered:
        where = f"{label} {n}"
        if not isinstance(row, dict):
            raise DataError(f"{path}: {where} is not a JSON object")
        idf, idv = _pick(row, ID_FIELDS, id_field)
        if idf is None:
            raise DataError(f"{path}: {where}: no id field (looked for {id_field or ', '.join(ID_FIELDS)})")
        af, av = _pick(row, ANSWER_FIELDS, None)
        if af is None:
            raise DataError(f"{path}: {where}: no answer field (looked for {', '.join(ANSWER_FIELDS)})")
        _add(path, answers, where, _id_text(path, where, idv), av)
    return answers, {"tool": "predictions"}


def _lm_eval(path: Path, text: str, id_field: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    answers: dict[str, str] = {}
    for lineno, row in _json_lines(path, text):
        where = f"line {lineno}"
        doc = row.get("doc")
        if not isinstance(doc, dict) or "filtered_resps" not in row:
            raise DataError(f"{path}: {where}: not an lm-evaluation-harness sample (needs 'doc' and"
                            " 'filtered_resps'; write it with --log_samples)")
        idf, idv = _pick(doc, ID_FIELDS, id_field)
        if idf is None:
            raise DataError(f"{path}: {where}: doc has no id field (looked for {id_field or ', '.join(ID_FIELDS)};"
                            " set answers_id_field to the doc field that holds the dataset's item id)")
        resp = row["filtered_resps"]
        while isinstance(resp, list) and len(resp) == 1:
            resp = resp[0]
        if not isinstance(resp, str):
            raise DataError(f"{path}: {where}: filtered_resps is not one generated text ({json.dumps(resp)[:60]});"
                            " only generate_until tasks have answers to judge")
        _add(path, answers, where, _id_text(path, where, idv), resp)
    return answers, {"tool": "lm-evaluation-harness"}


def _inspect_sample(path: Path, where: str, s: Any, answers: dict[str, str], problems: dict[str, int],
                    id_field: str | None) -> None:
    if not isinstance(s, dict) or "id" not in s:
        raise DataError(f"{path}: {where}: not an inspect_ai sample (no 'id')")
    if int(s.get("epoch", 1) or 1) != 1:
        problems["later_epochs_ignored"] = problems.get("later_epochs_ignored", 0) + 1
        return
    if s.get("error"):
        problems["errored_samples"] = problems.get("errored_samples", 0) + 1
        return
    if id_field is not None:
        meta = s.get("metadata") or {}
        if id_field not in meta:
            raise DataError(f"{path}: {where}: sample metadata has no {id_field!r} (answers_id_field)")
        item_id = _id_text(path, where, meta[id_field])
    else:
        item_id = _id_text(path, where, s["id"])
    out = s.get("output") or {}
    completion = out.get("completion") if isinstance(out, dict) else None
    if completion is None:
        choices = out.get("choices") if isinstance(out, dict) else None
        msg = (choices[0] or {}).get("message", {}) if choices else {}
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        completion = content
    if not isinstance(completion, str):
        problems["no_output"] = problems.get("no_output", 0) + 1
        return
    _add(path, answers, where, item_id, completion)


def _zip_member(z: zipfile.ZipFile, name: str) -> bytes:
    """One member of a zip; inspect_ai writes zstd-compressed members (method 93), which the
    standard library cannot inflate, so those are read raw and decompressed with ``zstandard``."""
    info = z.getinfo(name)
    if info.compress_type != 93:
        return z.read(name)
    import struct

    import zstandard

    fh = z.fp
    assert fh is not None
    fh.seek(info.header_offset)
    header = fh.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    fh.seek(info.header_offset + 30 + name_len + extra_len)
    raw = fh.read(info.compress_size)
    return zstandard.ZstdDecompressor().decompress(raw, max_output_size=max(info.file_size, 1))


def _inspect(path: Path, id_field: str | None, text: str | None = None
             ) -> tuple[dict[str, str], dict[str, Any], dict[str, int]]:
    answers: dict[str, str] = {}
    problems: dict[str, int] = {}
    header: dict[str, Any] = {}
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                if "header.json" in names:
                    header = json.loads(_zip_member(z, "header.json"))
                elif "_journal/start.json" in names:
                    header = json.loads(_zip_member(z, "_journal/start.json"))
                samples = sorted(n for n in names if n.startswith("samples/") and n.endswith(".json"))
                if not samples:
                    raise DataError(f"{path}: an inspect_ai log with no samples (was the eval run with"
                                    " --no-log-samples, or did it stop before the first sample?)")
                for name in samples:
                    _inspect_sample(path, name, json.loads(_zip_member(z, name)), answers, problems, id_field)
        except (zipfile.BadZipFile, json.JSONDecodeError, KeyError, OSError, ValueError) as exc:
            raise DataError(f"{path}: a damaged inspect_ai .eval log: {exc}") from None
    else:
        try:
            doc = json.loads(text if text is not None else _text(path))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("samples"), list):
            raise DataError(f"{path}: not an inspect_ai log with samples (expected 'eval' and 'samples')")
        header = doc
        for k, s in enumerate(doc["samples"]):
            _inspect_sample(path, f"samples[{k}]", s, answers, problems, id_field)
    ev = header.get("eval") or {}
    source = {"tool": "inspect_ai", "model": ev.get("model"), "task": ev.get("task"),
              "status": header.get("status")}
    return answers, source, problems


def detect_format(path: Path, text: str | None = None) -> str:
    """The file's format from its content (lm-eval and inspect files have distinctive keys)."""
    if zipfile.is_zipfile(path):
        return "inspect"
    text = _text(path) if text is None else text
    head = text.lstrip()
    if head.startswith("{"):
        first = head.split("\n", 1)[0]
        try:
            row = json.loads(first)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and "doc" in row and "filtered_resps" in row:
            return "lm_eval"
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            return "predictions"  # JSON Lines of records
        if isinstance(whole, dict) and "samples" in whole and "eval" in whole:
            return "inspect"
    return "predictions"


_CACHE: dict[tuple[str, str, str | None, int, int], AnswerSet] = {}


def read_answers(path: Path | str, fmt: str = "auto", id_field: str | None = None) -> AnswerSet:
    """Read one answers file (cached by path, size and mtime: config validation and the run share it)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"answers file not found: {p}")
    if p.is_dir():
        raise DataError(f"{p}: is a directory; point answers at the file (for lm-eval, the samples_*.jsonl)")
    if fmt not in FORMATS:
        raise DataError(f"{p}: unknown answers_format {fmt!r} (choose from {', '.join(FORMATS)})")
    st = p.stat()
    key = (str(p.resolve()), fmt, id_field, st.st_size, st.st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    text = None if zipfile.is_zipfile(p) else _text(p)  # read once: detection and parsing share it
    kind = detect_format(p, text) if fmt == "auto" else fmt
    problems: dict[str, int] = {}
    if kind == "inspect":
        answers, source, problems = _inspect(p, id_field, text)
    elif kind == "lm_eval":
        answers, source = _lm_eval(p, text if text is not None else _text(p), id_field)
    else:
        answers, source = _predictions(p, text if text is not None else _text(p), id_field)
    if not answers:
        raise DataError(f"{p}: no answers in the file")
    result = AnswerSet(p, kind, answers, _sha256(p), source, problems)
    _CACHE[key] = result
    return result
