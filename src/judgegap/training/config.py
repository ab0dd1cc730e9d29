"""``judgegap train`` configuration: validated whole at load, before any model is loaded.

The base model is an ordinary model entry (the same built-in names as ``judgegap run``); the
training and evaluation datasets are ordinary dataset entries. Evaluation items are always held
out: they are sampled after the training items' ids *and passages* are removed from the pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from judgegap.config import DatasetConfig, ModelConfig, NamedParams, format_validation_error, read_yaml
from judgegap.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LoraConfig(_Strict):
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = Field(default="all-linear", description="peft target_modules")


class Hyper(_Strict):
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1, description="overrides epochs")
    learning_rate: float = Field(default=2e-4, gt=0, le=1.0)
    batch_size: int = Field(default=8, ge=1, le=1024)
    grad_accum: int = Field(default=1, ge=1, le=1024)
    max_length: int = Field(default=1024, ge=16, description="longer examples are skipped and counted")
    save_steps: int = Field(default=25, ge=1, description="checkpoint every N optimizer steps (--resume restarts there)")
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    gradient_checkpointing: bool = Field(default=False, description="recompute activations in the backward pass:"
                                         " much less memory for ~30% more time per step")
    sampling: Literal["random", "group_by_length"] = Field(
        default="random", description="batch order: random is transformers' plain (seeded) shuffle;"
        " group_by_length batches examples of similar length so a batch pads little, but for the judging"
        " methods similar length means the same passage, and class balancing's repeated copies of one"
        " example land in one batch (a tiny judge-sft stopped learning its labels): opt in for gen-sft")


class MethodConfig(NamedParams):
    @classmethod
    def _registry(cls) -> Any:
        from judgegap.training.methods import METHODS

        return METHODS


class EvalConfig(_Strict):
    enabled: bool = True
    experiments: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"name": "asymmetry", "params": {
            "judges": "self", "text_verdict": False, "generate_template": "qa_generate@2",
            "judge_template": "qa_judge@2"}}],
        description="experiments run on base and tuned alike (held-out items)")
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100000)
    backend: Literal["training", "llamacpp"] = Field(
        default="training", description="the engine base and tuned are evaluated on: the training backend (hf),"
        " or llamacpp, which runs the base GGUF as it is with the adapter applied by llama.cpp (an item's"
        " prompts then reuse the passage: long multi-hop passages are evaluated once per item)")
    model_options: dict[str, Any] = Field(default_factory=dict, description="extra model fields for both"
                                          " evaluation entries, e.g. {n_threads: 2} or {n_gpu_layers: 99}")


class TrainConfig(_Strict):
    plugins: list[str] = Field(default_factory=list)
    name: str = "judgegap-train"
    output_dir: Path = Path("runs/train")
    seed: int = 0
    data_dir: Path | None = None
    call_cache: Path | None = None
    model: ModelConfig
    method: MethodConfig
    train: list[DatasetConfig] = Field(min_length=1)
    eval: list[DatasetConfig] = Field(default_factory=list)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    full_finetune: bool = Field(default=False, description="train every weight instead of a LoRA adapter"
                                " (tiny models only: the output is a full model directory)")
    training: Hyper = Field(default_factory=Hyper)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _trainable(self) -> TrainConfig:
        from judgegap.data import DATASETS
        from judgegap.training.methods import METHODS

        m = METHODS.get(self.method.name)
        if self.model.backend not in m.backends:
            raise ValueError(f"method {self.method.name!r} cannot train a model behind backend"
                             f" {self.model.backend!r} (it needs {' or '.join(m.backends)}: local weights)")
        if self.model.adapter is not None:
            raise ValueError("model.adapter: train from the base model (stacking adapters is not supported)")
        m.parse_params(self.method.params)
        for what, dss in (("train", self.train), ("eval", self.eval)):
            for i, d in enumerate(dss):
                if DATASETS.get(d.name).kind != "qa":
                    raise ValueError(f"{what}[{i}]: dataset {d.name!r} is not a QA dataset")
        if self.evaluate.backend == "llamacpp" and self.full_finetune:
            raise ValueError("evaluate.backend: llamacpp applies LoRA adapters; full_finetune writes a transformers"
                             " model folder, which llama.cpp cannot load (use evaluate.backend: training)")
        names = [d.name for d in self.train]
        if len(set(names)) != len(names):
            raise ValueError("train: a dataset is listed twice")
        return self

    def dataset_data_dir(self, ds: DatasetConfig) -> Path | None:
        return ds.data_dir or self.data_dir


def parse_train_config(data: Any, source: str = "train config") -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: invalid config: expected a mapping at the top level")
    from judgegap.plugins import load_entry_points, load_plugins

    load_entry_points()
    load_plugins(data.get("plugins") or [])
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_train_config(path: Path | str) -> TrainConfig:
    p, data = read_yaml(path)
    return parse_train_config(data, str(p))
