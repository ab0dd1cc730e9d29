"""Soft-target Masked Judge Distillation: a cross-entropy against a whole *distribution* over the
ten scores (a reference judge's own score distribution, or 1 + 9 F1 spread over its two nearest
scores), computed on exactly the probabilities the selfscore experiment reads.

Why not plain SFT labels: a hard target trains one score string's tokens. A soft target needs
P(exactly score s) for every s at once, and where " 10" is " 1" + "0" (the bundled models'
digit-splitting tokenizers) P(exactly " 1") is P(" 1") * (1 - P("0" | " 1")) -- the same
subtraction :func:`judgegap.metrics.scores.exact_choice_probs` makes when the experiments read
a score. One forward pass gives all of it when every score's tokens but the last lie on one
path (the prompt, then " 1"): the logits at the prompt's end and after each path token. A
tokenizer whose scores branch deeper than one path raises instead of training something else.
"""

from __future__ import annotations

from typing import Any, Sequence

from judgegap.backends.base import token_extensions
from judgegap.errors import JudgegapError

IGNORE = -100
SOFT_KEYS = ("soft_pos", "soft_tok", "soft_q", "soft_ext")


def score_path(conts: Sequence[Sequence[int]]) -> list[int]:
    """The one token path every score's prefix lies on (the longest continuation), or an error."""
    path = list(max(conts, key=len))
    for c in conts:
        if not c:
            raise JudgegapError("a score choice encodes to no tokens after the prompt")
        if list(c[:-1]) != path[:len(c) - 1]:
            raise JudgegapError("soft targets need every score's tokens but the last on one path (e.g. \" 10\" ="
                                f" \" 1\" + \"0\"); this tokenizer branches ({list(c)} vs {path}): use targets: hard")
    return path


def encode_soft_example(enc: Any, prompt: Any, choices: Sequence[str], q: Sequence[float]) -> dict[str, Any]:
    """One soft row: the prompt plus the path's tokens but the last; no labels (all -100); where the
    score logits are (``soft_pos``: prompt end, then one per path token), each choice's tokens, the
    choices that extend each choice (token prefixes) and the target distribution ``q``."""
    if len(q) != len(choices) or abs(sum(q) - 1.0) > 1e-6 or min(q) < 0:
        raise JudgegapError(f"a soft target must be a distribution over the {len(choices)} scores, got {list(q)}")
    text = enc.render(prompt)
    ids = enc.encode(prompt)
    conts = [list(enc.continuation_ids(text, ids, c)) for c in choices]
    path = score_path(conts)
    inp = ids + path[:-1]
    return {"input_ids": inp, "labels": [IGNORE] * len(inp), "attention_mask": [1] * len(inp),
            "soft_pos": [len(ids) - 1 + k for k in range(len(path))], "soft_tok": conts,
            "soft_q": [float(x) for x in q], "soft_ext": token_extensions(conts)}


def soft_collator(base: Any) -> Any:
    """Wrap a padding collator: the soft fields are padded here (-1) and stacked as tensors."""
    import torch

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        soft = [{k: f.pop(k) for k in SOFT_KEYS} for f in features]
        batch = base(features)
        n_c = len(soft[0]["soft_q"])
        depth = max(len(s["soft_pos"]) for s in soft)
        pos = torch.full((len(soft), depth), -1, dtype=torch.long)
        tok = torch.full((len(soft), n_c, depth), -1, dtype=torch.long)
        ext = torch.zeros((len(soft), n_c, n_c), dtype=torch.bool)
        for b, s in enumerate(soft):
            pos[b, :len(s["soft_pos"])] = torch.tensor(s["soft_pos"])
            for i, c in enumerate(s["soft_tok"]):
                tok[b, i, :len(c)] = torch.tensor(c)
                for j in s["soft_ext"][i]:
                    ext[b, i, j] = True
        batch.update(soft_pos=pos, soft_tok=tok, soft_q=torch.tensor([s["soft_q"] for s in soft]), soft_ext=ext)
        return batch

    return collate


def exact_score_logprobs(node_logp: Any, tok: Any, ext: Any) -> Any:
    """log P(exactly choice i) for one row, differentiable: ``node_logp`` (depth, vocab) log-softmax
    at the path's positions, ``tok`` (choices, depth) token ids (-1 = none), ``ext`` (choices,
    choices) which choices extend which. P(i) = prod over i's tokens; exact = P(i) - sum of the
    choices extending it (as metrics.scores.exact_choice_probs), floored at 1e-12."""
    import torch

    valid = tok >= 0
    gathered = node_logp.unsqueeze(0).expand(tok.shape[0], -1, -1).gather(2, tok.clamp(min=0).unsqueeze(2)).squeeze(2)
    logp = torch.where(valid, gathered, torch.zeros_like(gathered)).sum(dim=1)
    p = logp.exp()
    exact = p - (ext.to(p.dtype) * p.unsqueeze(0)).sum(dim=1)
    return exact.clamp(min=1e-12).log()


def soft_score_loss(model: Any, inputs: dict[str, Any]) -> Any:
    """Mean over the batch of -sum_s q(s) log P(exactly s): the logits only at the score positions."""
    import torch

    from judgegap.training.sft import kept_logits

    pos, tok, q, ext = (inputs[k] for k in SOFT_KEYS)
    rest = {k: v for k, v in inputs.items() if k not in SOFT_KEYS and k != "labels"}
    keep = torch.zeros_like(rest["input_ids"], dtype=torch.bool)
    rows, cols = (pos >= 0).nonzero(as_tuple=True)
    keep[rows, pos[rows, cols]] = True
    logits = kept_logits(model, rest, keep).float()  # (kept, vocab), row-major: batch, then position
    logp = torch.log_softmax(logits, dim=-1)
    losses, at = [], 0
    for b in range(pos.shape[0]):
        d = int((pos[b] >= 0).sum())
        node = logp[at:at + d]
        at += d
        losses.append(-(q[b].to(node.dtype) * exact_score_logprobs(node, tok[b, :, :d], ext[b])).sum())
    return torch.stack(losses).mean()
