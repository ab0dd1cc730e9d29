"""Engines side by side on the same model file and the same real SQuAD 2.0 items (issue #15).

    JUDGEGAP_DATA_DIR=../shared/data python benchmarks/engines.py --model smollm2-135m-instruct --n 200
    JUDGEGAP_DATA_DIR=../shared/data python benchmarks/engines.py --model qwen2.5-coder-1.5b-instruct --n 200

Each engine runs in its own process (peak memory is per engine; no result cache is involved):

- ``hf``       judgegap's transformers backend (GGUF de-quantised to fp32, batched, prefix-shared judging)
- ``llamacpp`` judgegap's in-process llama.cpp backend (quantised GGUF; item by item, so an item's
               judge prompts reuse its answer prompt's KV prefix)
- ``lm-eval``  lm-evaluation-harness 0.4.13 ``hf`` model, generate_until on the same rendered prompts
               (batch sizes 1 and 8; the faster is used), generate only: it has no judge step

For each: items/s for generate only, self-judge only (one-pass log-prob verdict on the model's own
answer), generate + self-judge, and the full asymmetry job (answer + judge own answer + gold +
wrong span); peak RSS. Prompts: the v2 templates (shared passage prefix); ``--judge-version 3`` judges
with the terse qa_judge@3 (fewer tokens after the reused prefix; the answer prompt is the same). The run ends with one
line per model: ``ratio generate+self-judge / lm-eval generate-only (MODEL): X.XXx``.
``judge/gen`` divides the self-judge time by the generate-only pass; ``same pass`` divides it by the
answers' time in the interleaved pass, where each answer and its judgement run back to back, so a load
that changes between the two passes (another job on the machine) does not enter the ratio.

A long comparison in parts (Qwen at 200 items is ~6 hours on 2 cores): with ``--save-dir DIR`` each
engine's measurement is written to DIR as it finishes (with date, machine and commit), and an engine
whose measurement for the same model / items / settings is already there is read back instead of
rerun (``--rerun`` measures again). Each engine always runs alone in its own process, so engines
measured in different sittings on the same machine kind compare as in one sitting; the table says
when each was measured. With ``--shards M`` each engine is measured in M parts of consecutive items
(same items, same order), each in its own process and saved file, and the part times are added: a
measurement longer than one sitting (Qwen's ``hf`` at 200 items, ~3 h here) stops and resumes between
parts. Each part pays its own model load (not in items/s) and, for ``hf``, length-sorts its own batches;
for lm-eval the per-batch-size times are added over the parts before the faster batch size is chosen.

- ``lm-eval-gguf`` lm-evaluation-harness's own llama.cpp path (``--model gguf``) against llama.cpp's
               HTTP server on the same quantised GGUF (xllamacpp's in-process server listens on
               loopback; same threads), generate only. lm-eval's gguf model sends no max_tokens, so
               the server caps generation at the same new-token budget. Its loglikelihood needs
               ``echo``, which llama.cpp's server ignores: generate only, as the ``hf`` comparison.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ENGINES = ("hf", "llamacpp", "lm-eval", "lm-eval-gguf")


def _items(n: int, shard: tuple[int, int] = (0, 1)):
    """The same n SQuAD 2.0 items for every engine; ``shard=(k, m)`` keeps the k-th of m consecutive parts."""
    from judgegap.data import load_dataset

    items = load_dataset("squad2", n=n, seed=0)
    k, m = shard
    return items[k * len(items) // m:(k + 1) * len(items) // m]


def combine_shards(parts: list[dict]) -> dict:
    """One engine's measurement from its parts: times are added, peak memory is the largest part's, prefix
    reuse is recomputed from the added token counts, and lm-eval's batch size is chosen on the added times
    (choosing per part would favour lm-eval with the luckier size of each part)."""
    if len(parts) == 1:
        return dict(parts[0])
    out: dict = {"engine": parts[0]["engine"], "shards": len(parts)}
    for key in parts[0]:
        if key.endswith("_s"):
            out[key] = sum(p[key] for p in parts)
    out["peak_rss_gib"] = max(p["peak_rss_gib"] for p in parts)
    for key, v in parts[0].items():  # what the parts ran on (the llama.cpp build), where all parts agree
        if isinstance(v, str) and key != "engine" and all(p.get(key) == v for p in parts):
            out[key] = v
    sizes = [k for k in out if k.startswith("generate_bs")]
    if sizes:
        out["generate_s"] = min(out[k] for k in sizes)
    if all("prompt_tokens_submitted" in p for p in parts):
        sub = sum(p["prompt_tokens_submitted"] for p in parts)
        ev = sum(p["prompt_tokens_evaluated"] for p in parts)
        out.update(prompt_tokens_submitted=sub, prompt_tokens_evaluated=ev,
                   prefix_reuse=round(1 - ev / sub, 4) if sub else None)
    return out


def _prompts(items, version: str = "2"):
    from judgegap.experiments.candidates import balanced_candidates, clean_answer, display_answer
    from judgegap.prompts import PROMPTS

    gen_t, judge_t = PROMPTS.get("qa_generate@2"), PROMPTS.get(f"qa_judge@{version}")
    cands = balanced_candidates(items, "squad2", 0.5, 0)
    gens = [gen_t.render(context=it.context, question=it.question, allow_unanswerable=True) for it in items]

    def judges(it, answer):
        texts = [display_answer(clean_answer(answer))] + [display_answer(clean_answer(t)) for _, t in cands[it.id]]
        return [judge_t.render(context=it.context, question=it.question, candidate=t, allow_unanswerable=True)
                for t in texts]
    return gens, judges


def worker(engine: str, model: str, n: int, max_new: int, version: str = "2", threads: int | None = None,
           shard: tuple[int, int] = (0, 1)) -> dict:
    from judgegap.backends.base import GenRequest
    from judgegap.prompts import JUDGE_CHOICES

    items = _items(n, shard)
    gens, judges = _prompts(items, version)
    reqs = [GenRequest(p, max_new_tokens=max_new, stop=("\n",)) for p in gens]
    choices = list(JUDGE_CHOICES)
    lcpp_kw = {"n_threads": threads} if threads else {}
    t0 = time.perf_counter()
    if engine == "hf":
        from judgegap.backends.hf import HFBackend

        be = HFBackend(model)
    else:
        from judgegap.backends.llamacpp import LlamaCppBackend

        be = LlamaCppBackend(model, **lcpp_kw)
    load = time.perf_counter() - t0
    res = {"engine": engine, "load_s": load}
    if engine == "hf":  # batched phases, as the hf backend runs them
        t0 = time.perf_counter()
        answers = [c.text for c in be.generate(reqs)]
        t_gen = time.perf_counter() - t0
        jp = [judges(it, a) for it, a in zip(items, answers)]
        t0 = time.perf_counter()
        be.score_choices([j[0] for j in jp], choices)
        t_self = time.perf_counter() - t0
        t0 = time.perf_counter()
        be.score_choices([p for j in jp for p in j], choices)
        t_all_judges = time.perf_counter() - t0
        res.update(generate_s=t_gen, self_judge_s=t_self, generate_self_judge_s=t_gen + t_self,
                   asymmetry_s=t_gen + t_all_judges)
    else:  # item by item: answer, then its judgements, on the reused prefix
        t0 = time.perf_counter()
        answers = [be.generate([r])[0].text for r in reqs]
        t_gen = time.perf_counter() - t0
        be.close()
        be = LlamaCppBackend(model, **lcpp_kw)  # a cold cache for the interleaved passes
        t_gs = 0.0
        t_asym = 0.0
        self_only = 0.0
        for it, r in zip(items, reqs):
            t0 = time.perf_counter()
            a = be.generate([r])[0].text
            mid = time.perf_counter()
            jp = judges(it, a)
            be.score_choices(jp[:1], choices)
            t1 = time.perf_counter()
            be.score_choices(jp[1:], choices)
            t2 = time.perf_counter()
            t_gs += t1 - t0
            self_only += t1 - mid
            t_asym += t2 - t0
        st = be.stats()
        res.update(generate_s=t_gen, self_judge_s=self_only, generate_self_judge_s=t_gs, asymmetry_s=t_asym,
                   prefix_reuse=st["prefix_reuse"], prompt_tokens_submitted=st["prompt_tokens_submitted"],
                   prompt_tokens_evaluated=st["prompt_tokens_evaluated"])
    if engine == "llamacpp":  # which CPU kernels the installed build has (a prebuilt wheel vs a native build)
        import xllamacpp

        res["llama_cpp_build"] = f"xllamacpp {xllamacpp.__version__}: {xllamacpp.get_system_info().strip()}"
    res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return res


def lm_eval_worker(model: str, n: int, max_new: int, gguf: bool = False, version: str = "2",
                   batch_sizes: tuple[int, ...] = (1, 8), shard: tuple[int, int] = (0, 1)) -> dict:
    """lm-eval's hf model on the same rendered prompts and weights (the de-quantised GGUF), or with
    ``gguf`` its llama.cpp-server model on the quantised GGUF itself."""
    import tempfile

    import lm_eval
    from lm_eval.tasks import TaskManager

    from judgegap.backends.hf import HFBackend
    from judgegap.backends.models import converted_dir

    items = _items(n, shard)
    gens, _ = _prompts(items, version)
    server = None
    if gguf:
        from judgegap.backends.llamacpp import LlamaCppBackend

        server = LlamaCppBackend(model, n_predict=max_new)  # its server answers HTTP on loopback too
        rendered = [server.render(p) for p in gens]
        model_args = {"model": "gguf", "model_args": f"base_url={server.server.listening_address}"}
        sizes: tuple[int, ...] = (1,)  # one request at a time: lm-eval's gguf model does not batch
    else:
        be = HFBackend(model)  # makes (or finds) the de-quantised copy lm-eval loads, and renders the prompts
        rendered = [be.render(p) for p in gens]
        model_dir = converted_dir(Path(be.source["path"]), be.source_fp)
        del be
        model_args = {"model": "hf", "model_args": f"pretrained={model_dir},dtype=float32,device=cpu"}
        sizes = batch_sizes
    best = None
    out = {"engine": "lm-eval-gguf" if gguf else "lm-eval"}
    for bs in sizes:
        with tempfile.TemporaryDirectory() as td:
            data = Path(td) / "items.jsonl"
            data.write_text("".join(json.dumps({"prompt": p, "target": ""}) + "\n" for p in rendered))
            (Path(td) / "jg_squad.yaml").write_text(
                "task: jg_squad\ndataset_path: json\n"
                f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
                "test_split: test\noutput_type: generate_until\ndoc_to_text: '{{prompt}}'\n"
                "doc_to_target: '{{target}}'\ntarget_delimiter: ''\n"
                f"generation_kwargs:\n  until: [\"\\n\"]\n  max_gen_toks: {max_new}\n  do_sample: false\n"
                "metric_list:\n  - metric: exact_match\n")
            # the model is loaded and lm-eval's task index built before the clock starts, as judgegap's
            # workers load their backend before theirs (until 2026-12-05 both were inside lm-eval's time)
            t0 = time.perf_counter()
            lm = lm_eval.api.registry.get_model(model_args["model"]).create_from_arg_string(
                model_args["model_args"], {"batch_size": bs, "max_batch_size": None, "device": None})
            tm = TaskManager(include_path=td)
            out[f"load_bs{bs}_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            lm_eval.simple_evaluate(model=lm, tasks=["jg_squad"], task_manager=tm, apply_chat_template=False)
            t = time.perf_counter() - t0
            del lm
        out[f"generate_bs{bs}_s"] = t
        best = t if best is None else min(best, t)
    out["generate_s"] = best
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def complete_saved_set(args: argparse.Namespace, engine: str) -> list[Path] | None:
    """An engine's measurement already saved whole, in however many parts it was measured (a read-back
    of engines measured with different ``--shards`` prints them side by side), or None."""
    if args.save_dir is None or args.rerun:
        return None
    whole = saved_path(args, engine, parts=1)
    if whole.is_file():
        return [whole]
    by_count: dict[int, set[int]] = {}
    for f in args.save_dir.glob(whole.stem + "_part*of*.json"):
        k, _, m = f.stem.rsplit("_part", 1)[1].partition("of")
        if k.isdigit() and m.isdigit():
            by_count.setdefault(int(m), set()).add(int(k))
    for m in sorted(by_count):
        if by_count[m] == set(range(1, m + 1)):
            return [saved_path(args, engine, k, parts=m) for k in range(m)]
    return None


def saved_path(args: argparse.Namespace, engine: str, shard: int = 0, parts: int | None = None) -> Path | None:
    """Where ``--save-dir`` keeps one engine's measurement (or one part of it): every setting that changes
    it is in the name (the judge template not for lm-eval, which only generates; lm-eval's batch sizes only
    for the lm-eval hf engine, threads only for the llama.cpp ones, the part only when measured in parts)."""
    if args.save_dir is None:
        return None
    n_parts = args.shards if parts is None else parts
    judge = [] if engine.startswith("lm-eval") else [f"judge{args.judge_version}"]  # lm-eval only generates
    parts = [args.model, f"n{args.n}", *judge, f"new{args.max_new_tokens}", engine]
    if engine == "lm-eval":
        parts.append("bs" + "-".join(args.lm_eval_batch_sizes.split(",")))
    if engine in ("llamacpp", "lm-eval-gguf") and args.threads:
        parts.append(f"threads{args.threads}")
    if n_parts > 1:
        parts.append(f"part{shard + 1}of{n_parts}")
    return args.save_dir / ("_".join(parts) + ".json")


def save_measurement(path: Path, result: dict, date: str, argv: list[str]) -> None:
    """One engine's measurement with what it was measured on, written whole (temp file, then rename)."""
    import os

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        commit = None
    rec = {"date": date, "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
           "commit": commit, "command": "python benchmarks/engines.py " + " ".join(sys.argv[1:]),
           "worker": " ".join(argv), "result": result}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--judge-version", default="2", choices=("2", "3"),
                    help="judge template: qa_judge@2 (the runs recorded before 2026-12-02) or @3 (terse judge)")
    ap.add_argument("--threads", type=int, default=0,
                    help="llamacpp threads (default: the backend's, all cores); 1 measures beside another job")
    ap.add_argument("--lm-eval-batch-sizes", default="1,8",
                    help="lm-eval hf batch sizes to time (the fastest is used); each is a full generate pass")
    ap.add_argument("--save-dir", type=Path, default=None,
                    help="write each engine's measurement here, and read back those already measured")
    ap.add_argument("--rerun", action="store_true", help="with --save-dir: measure again even if saved")
    ap.add_argument("--shards", type=int, default=1,
                    help="measure each engine in this many parts of consecutive items, each its own process "
                         "(with --save-dir a stopped measurement resumes at the first part not saved)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not 1 <= args.shards <= args.n:
        ap.error(f"--shards {args.shards}: must be between 1 and --n ({args.n})")
    sizes = tuple(int(x) for x in args.lm_eval_batch_sizes.split(","))
    if args.worker:
        shard = (args.shard, args.shards)
        res = (lm_eval_worker(args.model, args.n, args.max_new_tokens, gguf=args.worker == "lm-eval-gguf",
                              version=args.judge_version, batch_sizes=sizes, shard=shard)
               if args.worker.startswith("lm-eval")
               else worker(args.worker, args.model, args.n, args.max_new_tokens, args.judge_version, args.threads or None,
                           shard=shard))
        print("RESULT " + json.dumps(res))
        return
    results, measured = {}, {}
    for eng in args.engines.split(","):
        parts, whens = [], []
        done = complete_saved_set(args, eng)

        def read_back(f: Path) -> None:
            rec = json.loads(f.read_text())
            parts.append(rec["result"])
            whens.append(f"{rec['date']} (saved: {f.name})")

        for f in done or []:
            read_back(f)
        for k in range(0 if done else args.shards):
            saved = saved_path(args, eng, k)
            if saved is not None and saved.is_file() and not args.rerun:
                read_back(saved)
                continue
            argv = ["--worker", eng, "--model", args.model, "--n", str(args.n), "--max-new-tokens", str(args.max_new_tokens),
                    "--judge-version", args.judge_version, "--threads", str(args.threads),
                    "--lm-eval-batch-sizes", args.lm_eval_batch_sizes, "--shards", str(args.shards), "--shard", str(k)]
            if args.shards > 1:
                print(f"{eng}: part {k + 1} of {args.shards} started {time.strftime('%H:%M UTC', time.gmtime())}",
                      flush=True)
            p = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
            line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
            if p.returncode != 0 or not line:
                parts = [{"error": (p.stderr.strip().splitlines() or ["?"])[-1]}]
                break
            parts.append(json.loads(line[-1][7:]))
            whens.append(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            if saved is not None:
                save_measurement(saved, parts[-1], whens[-1], argv)
        if "error" in parts[0]:
            results[eng] = parts[0]
            continue
        results[eng] = combine_shards(parts)
        measured[eng] = whens[0] if len(whens) == 1 else f"in {len(whens)} parts: " + "; ".join(whens)
    n = args.n
    print(f"model {args.model}, {n} SQuAD 2.0 items, qa_generate@2 / qa_judge@{args.judge_version}, {args.max_new_tokens} new tokens,"
          f"{f' {args.threads} llamacpp thread(s),' if args.threads else ''} {platform.machine()},"
          f" {__import__('os').cpu_count()} cores")
    print(f"{'engine':12s} {'gen it/s':>9s} {'judge it/s':>10s} {'gen+judge it/s':>14s} {'asym it/s':>9s}"
          f" {'judge/gen':>9s} {'same pass':>9s} {'peak GiB':>8s}")
    for eng, when in measured.items():
        print(f"{eng:12s} measured {when}")
    for eng, r in results.items():
        if "error" in r:
            print(f"{eng:12s} error: {r['error']}")
            continue
        g = n / r["generate_s"]
        j = n / r["self_judge_s"] if r.get("self_judge_s") else float("nan")
        gj = n / r["generate_self_judge_s"] if r.get("generate_self_judge_s") else float("nan")
        a = n / r["asymmetry_s"] if r.get("asymmetry_s") else float("nan")
        over = r["self_judge_s"] / r["generate_s"] if r.get("self_judge_s") else float("nan")
        # the same ratio within the interleaved pass (each item's answer, then its self-judgement):
        # robust to a load that changes between the passes
        same = (r["self_judge_s"] / (r["generate_self_judge_s"] - r["self_judge_s"])
                if r.get("self_judge_s") and eng == "llamacpp" else float("nan"))
        print(f"{eng:12s} {g:9.3f} {j:10.3f} {gj:14.3f} {a:9.3f} {over:9.2f} {same:9.2f} {r['peak_rss_gib']:8.2f}")
    for eng, r in results.items():
        if r.get("llama_cpp_build"):
            print(f"{eng:12s} {r['llama_cpp_build']}")
    print("RESULTS " + json.dumps(results))
    lm = results.get("lm-eval", {})
    for eng in ("llamacpp", "hf"):
        r = results.get(eng, {})
        if "generate_self_judge_s" in r and "generate_s" in lm:
            ratio = (n / r["generate_self_judge_s"]) / (n / lm["generate_s"])
            print(f"ratio generate+self-judge / lm-eval generate-only ({args.model}, judgegap {eng}): {ratio:.2f}x")
    gg, r = results.get("lm-eval-gguf", {}), results.get("llamacpp", {})
    if "generate_s" in gg and "generate_self_judge_s" in r:  # same engine and file on both sides
        ratio = (n / r["generate_self_judge_s"]) / (n / gg["generate_s"])
        print(f"ratio generate+self-judge / lm-eval gguf generate-only ({args.model}, judgegap llamacpp): {ratio:.2f}x")


if __name__ == "__main__":
    main()
