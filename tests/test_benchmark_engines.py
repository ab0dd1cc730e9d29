"""The engines benchmark's parts add up to the whole measurement (benchmarks/engines.py --shards)."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_engines", Path(__file__).parents[1] / "benchmarks" / "engines.py")
engines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engines)


def test_parts_cover_the_same_items_in_order(data_dir, monkeypatch):
    monkeypatch.setenv("JUDGEGAP_DATA_DIR", str(data_dir))
    whole = [it.id for it in engines._items(10)]
    parts = [it.id for k in range(3) for it in engines._items(10, (k, 3))]
    assert parts == whole and len(whole) == 10


def test_lm_eval_batch_size_is_chosen_on_the_added_times():
    # per part the faster size differs (bs1 in part 1, bs8 in part 2): choosing per part would give 21 s
    a = {"engine": "lm-eval", "generate_bs1_s": 10.0, "generate_bs8_s": 12.0, "generate_s": 10.0, "peak_rss_gib": 7.0}
    b = {"engine": "lm-eval", "generate_bs1_s": 14.0, "generate_bs8_s": 11.0, "generate_s": 11.0, "peak_rss_gib": 7.5}
    out = engines.combine_shards([a, b])
    assert out["generate_s"] == pytest.approx(23.0)
    assert out["peak_rss_gib"] == 7.5 and out["shards"] == 2


def test_llamacpp_times_add_and_prefix_reuse_comes_from_the_token_counts():
    a = {"engine": "llamacpp", "load_s": 1.0, "generate_s": 100.0, "self_judge_s": 10.0, "generate_self_judge_s": 115.0,
         "asymmetry_s": 140.0, "prefix_reuse": 0.5, "prompt_tokens_submitted": 1000, "prompt_tokens_evaluated": 500,
         "peak_rss_gib": 2.4}
    b = dict(a, generate_s=50.0, prefix_reuse=0.9, prompt_tokens_submitted=3000, prompt_tokens_evaluated=300)
    out = engines.combine_shards([a, b])
    assert out["generate_s"] == pytest.approx(150.0) and out["asymmetry_s"] == pytest.approx(280.0)
    assert out["prefix_reuse"] == pytest.approx(1 - 800 / 4000)  # not the mean of 0.5 and 0.9


def test_the_build_the_parts_ran_on_is_kept_only_where_all_parts_agree():
    a = {"engine": "llamacpp", "generate_s": 1.0, "peak_rss_gib": 1.0, "llama_cpp_build": "AVX2 = 1"}
    assert engines.combine_shards([a, dict(a)])["llama_cpp_build"] == "AVX2 = 1"
    assert "llama_cpp_build" not in engines.combine_shards([a, dict(a, llama_cpp_build="AVX512 = 1")])


def test_a_measurement_saved_in_other_parts_is_read_back_whole(tmp_path):
    """lm-eval measured in 4 parts and llamacpp in 2 print side by side from one read-back."""
    import argparse

    args = argparse.Namespace(save_dir=tmp_path, rerun=False, model="m", n=200, judge_version="2", max_new_tokens=16,
                              lm_eval_batch_sizes="1", threads=0, shards=1)
    for k in range(4):
        engines.saved_path(args, "lm-eval", k, parts=4).write_text("{}")
    assert [p.name for p in engines.complete_saved_set(args, "lm-eval")] == [
        f"m_n200_new16_lm-eval_bs1_part{k}of4.json" for k in (1, 2, 3, 4)]
    engines.saved_path(args, "llamacpp", 0, parts=2).write_text("{}")  # part 2 of 2 missing: not complete
    assert engines.complete_saved_set(args, "llamacpp") is None
    args.rerun = True
    assert engines.complete_saved_set(args, "lm-eval") is None
