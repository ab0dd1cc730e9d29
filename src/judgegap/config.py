"""Experiment configuration: YAML validated by pydantic.

Unknown keys are errors (a typo must not silently fall back to a default). Any
problem is reported as one line naming the file, the field and what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from judgegap.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DatasetConfig(_Strict):
    name: str
    split: Literal["dev", "validation"] = "dev"
    n: int | None = Field(default=None, ge=1, description="sample size; all items when omitted")
    seed: int = 0
    data_dir: Path | None = None
    data_file: Path | None = None
    answerable: bool | None = Field(default=None, description="keep only (un)answerable items")
    exclude_trained: bool = Field(default=True, description="drop items (and passages) a configured model's"
                                  " adapter was trained on before sampling; when false, any overlap is an error")
    question_types: list[str] = Field(default_factory=list)
    stratify: bool = True

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from judgegap.data import DATASETS

        return DATASETS.validate(v)


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(default=32, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=lambda: ["\n"])
    seed: int = 0


class ModelConfig(_Strict):
    name: str = Field(description="short label used in results and reports")
    backend: str = "hf"
    model: str = Field(default="", description="built-in name, hub id, local path or GGUF file (hf); served model"
                       " id (openai); optional for backend 'file'")
    gguf_file: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    chat_template: Literal["auto", "always", "never"] = "auto"
    batch_size: Any = Field(default="auto", description="'auto' or a whole number of sequences, 1..4096")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    # openai-compatible servers
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    endpoint: Literal["chat", "completions"] = "completions"
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=20)
    tokenizer: str | None = Field(default=None, description="openai: render chat templates locally with this model's tokenizer")
    logprobs: bool = Field(default=True, description="openai: the server returns log-probabilities")
    # llamacpp (in-process llama.cpp on the GGUF file): see judgegap.backends.llamacpp
    n_ctx: int | None = Field(default=None, ge=256, le=1 << 20, description="llamacpp: context length")
    n_threads: int | None = Field(default=None, ge=1, le=512)
    n_gpu_layers: int = Field(default=0, ge=0, le=10000, description="llamacpp: layers offloaded to a GPU")
    cache_ram_mib: int = Field(default=0, ge=0, description="llamacpp: RAM for cached prompt states (opt-in:"
                               " restoring them makes numbers depend on the cache's history)")
    swa_full: bool | None = Field(default=None, description="llamacpp: a full-size KV cache for sliding-window"
                                  " layers (Gemma 3), so an item's prompts reuse the shared passage; null = on for"
                                  " models with a sliding window, off otherwise")
    # scripted (rule-based, no weights): see judgegap.backends.scripted
    script: dict[str, Any] | None = None
    adapter: Path | None = Field(default=None, description="hf, llamacpp: a LoRA adapter directory (judgegap"
                                 " train's output or any PEFT adapter for this base model); hf merges it at load,"
                                 " llamacpp applies it as a llama.cpp LoRA adapter (converted once, cached)")
    # answers produced elsewhere (two-stage judging): see judgegap.data.answers
    answers: Path | dict[str, Path] | None = Field(
        default=None, description="this model's answers come from a file (predictions JSON/JSONL, lm-eval"
        " --log_samples, inspect_ai log) instead of generation: one path, or {dataset: path}")
    answers_format: Literal["auto", "predictions", "lm_eval", "inspect"] = "auto"
    answers_id_field: str | None = Field(default=None, description="the field holding the item id (lm-eval: in"
                                         " the doc; inspect: in the sample metadata)")

    def answers_file(self, dataset: str) -> Path | None:
        """The answers file for one dataset (a single path serves every dataset)."""
        if self.answers is None:
            return None
        if isinstance(self.answers, dict):
            return self.answers.get(dataset)
        return self.answers

    def answer_set(self, dataset: str) -> Any:
        """The parsed answers for one dataset, or None when this model generates its own."""
        f = self.answers_file(dataset)
        return None if f is None else self.answer_set_from(f)

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096):
            return v
        raise ValueError(f"must be 'auto' or a whole number from 1 to 4096, got {v!r}")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from judgegap.backends import BACKENDS

        return BACKENDS.validate(v)

    @model_validator(mode="after")
    def _server_needs_url(self) -> ModelConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if not self.model and self.backend != "file":
            raise ValueError(f"model: required for backend {self.backend!r} (a built-in name, path or served id)")
        if self.backend == "file" and self.answers is None:
            raise ValueError("backend 'file' needs answers: a file (or {dataset: file}) of answers made elsewhere")
        return self

    @model_validator(mode="after")
    def _adapter_loadable(self) -> ModelConfig:
        if self.adapter is None:
            return self
        if self.backend not in ("hf", "llamacpp"):
            raise ValueError(f"adapter: backend {self.backend!r} cannot apply a LoRA adapter (use backend hf or"
                             " llamacpp, or merge the adapter into the weights and serve those)")
        from judgegap.training.adapters import adapter_dir_problem

        problem = adapter_dir_problem(self.adapter)
        if problem:
            raise ValueError(f"adapter: {problem}")
        return self

    @model_validator(mode="after")
    def _answers_readable(self) -> ModelConfig:
        from judgegap.errors import JudgegapError

        files = ([] if self.answers is None else list(self.answers.values()) if isinstance(self.answers, dict)
                 else [self.answers])
        if isinstance(self.answers, dict):
            from judgegap.data import DATASETS

            for ds in self.answers:
                DATASETS.validate(ds)
        for f in files:
            try:
                self.answer_set_from(f)
            except JudgegapError as exc:
                raise ValueError(f"answers: {exc}") from None
        return self

    def answer_set_from(self, f: Path) -> Any:
        from judgegap.data.answers import read_answers

        return read_answers(f, self.answers_format, self.answers_id_field)


class NamedParams(_Strict):
    """A registered name plus its params (an experiment, a training method): the name is checked
    against the registry ``_registry()`` returns; the params by the named unit itself."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def _registry(cls) -> Any:
        raise NotImplementedError

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return cls._registry().validate(v)


class ExperimentConfig(NamedParams):
    @classmethod
    def _registry(cls) -> Any:
        from judgegap.experiments import EXPERIMENTS

        return EXPERIMENTS


class RunConfig(_Strict):
    plugins: list[str] = Field(default_factory=list, description="modules (or .py files) that register datasets,"
                               " backends or experiments; imported before the rest is validated")
    name: str = "judgegap-run"
    output_dir: Path = Path("runs/latest")
    seed: int = 0
    data_dir: Path | None = None
    datasets: list[DatasetConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    experiments: list[ExperimentConfig] = Field(min_length=1)
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100000)
    call_cache: Path | None = Field(default=None, description="SQLite file of cached model calls, shared by"
                                    " runs (default: $JUDGEGAP_CALL_CACHE, else ~/.cache/judgegap/calls.sqlite)")

    @field_validator("experiments", mode="before")
    @classmethod
    def _names_as_experiments(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": e} if isinstance(e, str) else e for e in v]
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> RunConfig:
        for what, names in (("model", [m.name for m in self.models]), ("dataset", [d.name for d in self.datasets])):
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"{what} names must be unique, repeated: {', '.join(sorted(dup))}")
        return self

    @model_validator(mode="after")
    def _file_models_cover_datasets(self) -> RunConfig:
        from judgegap.data import DATASETS

        qa = [d.name for d in self.datasets if DATASETS.get(d.name).kind == "qa"]
        for i, m in enumerate(self.models):
            if m.backend == "file":
                lacking = [d for d in qa if m.answers_file(d) is None]
                if lacking:
                    raise ValueError(f"models[{i}] ({m.name}): backend 'file' has no answers for dataset"
                                     f" {', '.join(lacking)} (answers: {{dataset: file}})")
        return self

    @model_validator(mode="after")
    def _experiments_fit(self) -> RunConfig:
        from judgegap.experiments.base import validate_experiments

        validate_experiments(self)
        return self

    def dataset_data_dir(self, ds: DatasetConfig) -> Path | None:
        return ds.data_dir or self.data_dir


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{_loc(err['loc'])}: {msg}")
    return f"{source}: invalid config: " + "; ".join(parts)


def parse_config(data: Any, source: str = "config") -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: invalid config: expected a mapping at the top level")
    from judgegap.plugins import load_entry_points, load_plugins

    load_entry_points()
    plugins = data.get("plugins") or []
    if not isinstance(plugins, list):
        raise ConfigError(f"{source}: invalid config: plugins: expected a list of module names")
    try:
        load_plugins(plugins)
    except ConfigError as exc:
        raise ConfigError(f"{source}: invalid config: {exc}") from None
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def read_yaml(path: Path | str) -> tuple[Path, Any]:
    """A config file's YAML (one line naming the file and line when it is missing or malformed)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        return p, yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def load_config(path: Path | str) -> RunConfig:
    """Read and validate a YAML config file (raises :class:`ConfigError`)."""
    p, data = read_yaml(path)
    return parse_config(data, str(p))


def default_config_path() -> Path:
    """The embedded default config the README's first command runs."""
    return Path(__file__).parent / "configs" / "default.yaml"
