"""Seed 000's candidate ablations in asymmetry: C-MASK (candidate withheld) and C-SWAP (own correct
answer swapped for a wrong span)."""

from __future__ import annotations

import pytest

from judgegap.backends.base import Backend, Capabilities


class CandidateReader(Backend):
    """A judge whose P(" Yes") is 0.9 when the prompt shows a candidate from ``good``, 0.2 for other
    candidates, and 0.3 when the candidate is withheld: the planted effects are known."""

    backend_name = "reader"
    capabilities = Capabilities()

    def __init__(self, good: set[tuple[str, str]], own: str = "Normandy") -> None:
        self.good, self.own = good, own

    def fingerprint(self):
        return {"backend": "reader", "own": self.own}

    def generate(self, requests):
        from judgegap.backends.base import Completion

        return [Completion(text=" " + self.own) for _ in requests]

    def score_choices(self, prompts, choices):
        import math

        from judgegap.prompts import MASKED_CANDIDATE

        out = []
        for pr in prompts:
            text = pr.plain_text()
            shown = text.split("Proposed answer: ", 1)[-1].split("\n", 1)[0].strip()
            question = text.split("Question: ", 1)[-1].split("\n", 1)[0].strip()
            p = 0.3 if MASKED_CANDIDATE in text else (0.9 if (question, shown) in self.good else 0.2)
            out.append([math.log(p), math.log(1 - p)] + [-30.0] * (len(choices) - 2))
        return out

    def top_logprobs(self, prompts, k):
        return [[] for _ in prompts]


def test_c_mask_prompt_has_no_candidate_on_rendered_tokens():
    from judgegap.backends.hf import PromptEncoder, load_tokenizer
    from judgegap.prompts import masked_judge_template

    tok = load_tokenizer("smollm2-135m-instruct")
    enc = PromptEncoder(tok, True)
    cand = "Zebulon Quixotic-Marrow"
    for tid in ("qa_judge@1", "qa_judge@2"):
        t = masked_judge_template(tid)
        full = enc.encode(t.render(context="A passage.", question="Who?", candidate=cand, allow_unanswerable=True))
        shown = enc.encode(PromptTemplateFor(tid).render(context="A passage.", question="Who?", candidate=cand,
                                                         allow_unanswerable=True))
        cand_ids = tok(" " + cand, add_special_tokens=False)["input_ids"]
        assert _contains(shown, cand_ids) and not _contains(full, cand_ids)
        assert cand not in tok.decode(full)


def PromptTemplateFor(tid):  # noqa: N802 - the unmasked template
    from judgegap.prompts import PROMPTS

    return PROMPTS.get(tid)


def _contains(seq, sub):
    return any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_planted_effects_are_recovered(tmp_path, data_dir):
    """Own answers (from a file: the gold, so every one is correct) judged by a reader with known
    probabilities: C-MASK shift 0.9 - 0.3, C-SWAP shift 0.9 - 0.2, no swapped answer accepted."""
    import json

    import judgegap as jg
    from judgegap.data import load_dataset

    items = load_dataset("squad2", data_dir=data_dir, n=30, seed=0, answerable=True)
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({it.id: it.answers[0] for it in items}))
    good = {(it.question.strip(), a) for it in items for a in it.answers}
    res = jg.run({"datasets": [{"name": "squad2", "n": 30, "answerable": True}], "data_dir": str(data_dir),
                  "bootstrap_resamples": 200, "output_dir": str(tmp_path / "o"),
                  "models": [{"name": "r", "backend": "scripted", "model": "span", "answers": str(preds)}],
                  "experiments": [{"name": "asymmetry", "params": {"text_verdict": False,
                                                                    "ablations": ["c_mask", "c_swap"]}}]},
                 backends={"r": CandidateReader(good)}, write=False)
    m = res.summary["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]["r"]
    cm, cs = m["ablations"]["c_mask"], m["ablations"]["c_swap"]
    assert cm["n"] == 30 and cm["p_correct_masked"]["value"] == pytest.approx(0.3)
    assert cm["shift"]["value"] == pytest.approx(0.6) and cm["verdict_changed"]["value"] == 1.0
    assert cs["n"] >= 25 and cs["shift"]["value"] == pytest.approx(0.7)
    assert cs["accept_rate_swapped"]["value"] == 0.0 and cs["shift"]["ci_low"] > 0.6


def test_c_swap_needs_the_balanced_set(tmp_path, data_dir):
    from tests.conftest import cli_inproc
    import yaml

    cfg = {"datasets": [{"name": "squad2", "n": 3}], "data_dir": str(data_dir), "output_dir": str(tmp_path / "o"),
           "models": [{"name": "s", "backend": "scripted", "model": "span"}],
           "experiments": [{"name": "asymmetry", "params": {"balanced_candidates": False, "ablations": ["c_swap"]}}]}
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(f))
    assert p.returncode == 2 and "c_swap reads the balanced set" in p.stderr and not (tmp_path / "o").exists()


def test_ablation_table_in_the_report(tmp_path, data_dir):
    import judgegap as jg

    jg.run({"datasets": [{"name": "squad2", "n": 6}], "data_dir": str(data_dir), "bootstrap_resamples": 100,
            "output_dir": str(tmp_path / "o"), "models": [{"name": "s", "backend": "scripted", "model": "span"}],
            "experiments": [{"name": "asymmetry", "params": {"text_verdict": False, "ablations": ["c_mask", "c_swap"]}}]})
    html = (tmp_path / "o" / "report.html").read_text()
    assert 'id="ablation-table"' in html and "C-MASK" in html
