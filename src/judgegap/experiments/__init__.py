"""Experiments, registered by name: each declares its params, needs and dependencies, runs model
calls into the store and summarises records. Built-ins are registered lazily (imported on use)."""

from judgegap.experiments.base import EXPERIMENTS, ExperimentBase, RunContext

for _name, _target in (("asymmetry", "judgegap.experiments.asymmetry:Asymmetry"),
                       ("selfscore", "judgegap.experiments.selfscore:SelfScore"),
                       ("attention", "judgegap.experiments.attention:Attention"),
                       ("pairwise", "judgegap.experiments.pairwise:Pairwise"),
                       ("ge_consistency", "judgegap.experiments.consistency:GEConsistency"),
                       ("self_agreement", "judgegap.experiments.self_agreement:SelfAgreement"),
                       ("critique", "judgegap.experiments.critique:Critique"),
                       ("alternatives", "judgegap.experiments.alternatives:Alternatives")):
    EXPERIMENTS.add_lazy(_name, _target)

__all__ = ["EXPERIMENTS", "ExperimentBase", "RunContext"]
