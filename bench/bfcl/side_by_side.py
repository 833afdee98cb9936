#!/usr/bin/env python3
"""envtune's episode engine against BFCL's own Python, same tasks, same work per turn, one run.

Runs inside the benchmark-only venv (bench/bfcl/setup_venv.sh); started by bench/bfcl/side_by_side.sh.

Work per turn, on both sides, for every task's ground-truth trajectory (each turn with ground-truth
calls: one step that makes the turn's calls, then one step that answers; a turn without ground
truth: one answering step):
  * a step executes the reply's calls on the model-side instances;
  * the answering step scores the turn against the ground truth: public state of every involved
    class (BFCL's state_checker) and multiset containment of the turn's ground-truth results in
    all the model's results so far (BFCL's response_checker).
The ground-truth side is computed once per task before timing on both sides (envtune keeps it in
its per-task cache; here: deep copies of BFCL's ground-truth instances after each turn).

BFCL modes:
  stateless  every step starts from fresh instances (initial config, deep-copied, as BFCL loads it)
             and re-executes every call the episode made so far, then the new calls: the work of a
             server that keeps no episode in memory.
  stateful   instances kept in memory across the episode's steps (BFCL's runner keeps them in
             globals()): a step executes only its own calls.
envtune modes (bench_envserver_side_by_side, run as a child on the same core):
  rebuild    EpisodeEngine::Step with the episode cache and the parse memo off: every step rebuilds
             the model side from the blob (initial sandbox + every executed call, parsed again),
             like BFCL stateless.
  miss       rebuild with the parse memo on: a step whose previous step another replica served.
  cached     EpisodeEngine::Step as shipped: the same blob protocol, with the per-replica cache of
             rebuilt episode states keyed by the blob's digest (a miss rebuilds from the blob).

Prints a table (microseconds per turn, per category and overall; each figure the best of
--rounds interleaved rounds, since load from other processes only slows a run) and the ratios the
acceptance criteria name.
"""
import argparse
import copy
import gc
import json
import os
import subprocess
import sys
import time

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import response_checker, state_checker
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call

CATEGORIES = ["base", "miss_func", "miss_param", "long_context"]
MODEL = "envtune"


def load_tasks(data_dir):
    tasks = {}
    for cat in CATEGORIES:
        with open(os.path.join(data_dir, "bfcl", f"BFCL_v4_multi_turn_{cat}.json")) as f:
            for line in f:
                if line.strip():
                    t = json.loads(line)
                    tasks[t["id"]] = t
        with open(os.path.join(data_dir, "bfcl", "possible_answer", f"BFCL_v4_multi_turn_{cat}.json")) as f:
            for line in f:
                if line.strip():
                    a = json.loads(line)
                    tasks[a["id"]]["ground_truth"] = a["ground_truth"]
    return tasks


def category_of(task_id):
    return task_id.rsplit("_", 1)[0][len("multi_turn_"):]


def instance_names(task, model_name):
    import re
    return [re.sub(r"[-./:]", "_", f"{model_name}_{task['id']}_{c}_instance") for c in task["involved_classes"]]


def forget(task, model_name):
    """Drops the instances BFCL's executor keeps in its module globals for (model_name, task)."""
    g = vars(multi_turn_utils)
    for name in instance_names(task, model_name):
        g.pop(name, None)


def execute(task, calls, model_name):
    return execute_multi_turn_func_call(
        func_call_list=calls,
        initial_config=task["initial_config"],
        involved_classes=task["involved_classes"],
        model_name=model_name,
        test_entry_id=task["id"],
        long_context="long_context" in task["id"],
        is_evaL_run=True,
    )


def ground_truth_side(task):
    """Per turn: (ground-truth results, deep copies of the ground-truth instances after the turn)."""
    name = MODEL + "_ground_truth"
    forget(task, name + "_eval")
    out = []
    for calls in task["ground_truth"]:
        results, instances = execute(task, calls, name)
        out.append((results, {k: copy.deepcopy(v) for k, v in instances.items()}))
    forget(task, name + "_eval")
    return out


def score_turn(t, instances, all_results, truth):
    gt_results, gt_instances = truth[t]
    state = state_checker(instances, gt_instances)
    response = response_checker(all_results, gt_results, t)
    return state["valid"] and response["valid"]


def run_task_stateless(task, truth):
    """Returns (turns scored 1, steps)."""
    model = MODEL + "_eval"
    history = []  # every call list executed so far
    scored = steps = 0
    for t, gt in enumerate(task["ground_truth"]):
        replies = [gt, None] if gt else [None]
        for reply in replies:
            steps += 1
            forget(task, model)
            all_results = []
            results, instances = execute(task, [], MODEL)  # fresh instances
            for calls in history:
                results, instances = execute(task, calls, MODEL)
                all_results.extend(results)
            if reply is not None:
                results, instances = execute(task, reply, MODEL)
                all_results.extend(results)
                history.append(reply)
            elif gt:
                scored += score_turn(t, instances, all_results, truth)
            else:
                scored += 1  # cannot-serve turn answered: not checked
    forget(task, model)
    return scored, steps


def run_task_stateful(task, truth):
    model = MODEL + "_eval"
    forget(task, model)
    all_results = []
    _, instances = execute(task, [], MODEL)
    scored = steps = 0
    for t, gt in enumerate(task["ground_truth"]):
        replies = [gt, None] if gt else [None]
        for reply in replies:
            steps += 1
            if reply is not None:
                results, instances = execute(task, reply, MODEL)
                all_results.extend(results)
            elif gt:
                scored += score_turn(t, instances, all_results, truth)
            else:
                scored += 1
    forget(task, model)
    return scored, steps


def measure(tasks, ids, truths, fn):
    per_cat = {}
    gc.collect()
    for task_id in ids:
        task = tasks[task_id]
        a = time.perf_counter()
        scored, steps = fn(task, truths[task_id])
        us = (time.perf_counter() - a) * 1e6
        c = per_cat.setdefault(category_of(task_id), {"us": 0.0, "turns": 0, "steps": 0, "scored": 0})
        c["us"] += us
        c["turns"] += len(task["ground_truth"])
        c["steps"] += steps
        c["scored"] += scored
    return per_cat


def with_total(per_cat):
    total = {"us": 0.0, "turns": 0, "steps": 0, "scored": 0}
    for c in per_cat.values():
        for k in total:
            total[k] += c[k]
    out = dict(per_cat)
    out["all"] = total
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envtune_bench", required=True, help="path of bench_envserver_side_by_side")
    ap.add_argument("--data_dir", required=True, help="envtune data directory (holds bfcl/)")
    ap.add_argument("--tasks_per_category", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; each figure is the best")
    ap.add_argument("--json", help="also write all figures to this file")
    args = ap.parse_args()

    def run_envtune():
        # Its own process, inheriting this process's CPU affinity.
        proc = subprocess.run([args.envtune_bench, args.data_dir, str(args.tasks_per_category)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            sys.exit(f"side_by_side: {args.envtune_bench} failed with exit code {proc.returncode}")
        return json.loads(proc.stdout)

    def keep_best(best, new):
        """Per category, the faster of two measurements (a shared machine only ever slows a run);
        "all" is summed from the categories' best rounds."""
        cats = {c: v for c, v in new.items() if c != "all"}
        if best is not None:
            cats = {c: (v if v["us"] < best[c]["us"] else best[c]) for c, v in cats.items()}
        return with_total(cats)

    # Rounds alternate the sides (envtune, BFCL stateless, BFCL stateful, ...), so load from other
    # processes on a shared machine does not fall on one side only; each category's figure is its
    # side's best round, and "all" sums those.
    envtune = run_envtune()
    ids = envtune["task_ids"]
    tasks = load_tasks(args.data_dir)
    truths = {i: ground_truth_side(tasks[i]) for i in ids}  # untimed, like envtune's warm cache
    for fn in (run_task_stateless, run_task_stateful):
        measure(tasks, ids[: min(len(ids), 40)], truths, fn)  # warm-up (imports, allocator)
    best = {"bfcl_stateless": None, "bfcl_stateful": None}
    modes = {m: None for m in envtune["modes"]}
    for r in range(args.rounds):
        if r > 0:
            envtune = run_envtune()
        for m in modes:
            modes[m] = keep_best(modes[m], envtune["modes"][m])
        for name, fn in [("stateless", run_task_stateless), ("stateful", run_task_stateful)]:
            best[f"bfcl_{name}"] = keep_best(best[f"bfcl_{name}"], measure(tasks, ids, truths, fn))
    envtune["modes"] = modes
    results = {"envtune": modes, **best}

    rows = [("BFCL Python, stateless (replay per step)", results["bfcl_stateless"]),
            ("BFCL Python, stateful (instances kept)", results["bfcl_stateful"])]
    for mode, label in [("rebuild", "envtune, stateless: rebuild, no caches"),
                        ("miss", "envtune, stateless: rebuild + parse memo"),
                        ("cached", "envtune, stateless: blob + episode cache")]:
        rows.append((label, envtune["modes"][mode]))
    cats = CATEGORIES + ["all"]
    print(f"side by side: {len(ids)} tasks, ground-truth trajectories, one core "
          f"(affinity {sorted(os.sched_getaffinity(0))}), best of {args.rounds} interleaved rounds; "
          f"load average at the end {os.getloadavg()[0]:.1f}; microseconds per turn")
    print(f"{'':44s}" + "".join(f"{c:>14s}" for c in cats))
    for label, r in rows:
        print(f"{label:44s}" + "".join(f"{r[c]['us'] / max(1, r[c]['turns']):14.1f}" for c in cats))
    # Same scores on every side: the work was the same.
    scores = {label: r["all"]["scored"] for label, r in rows}
    print(f"turns scored 1 (of {rows[0][1]['all']['turns']}), per row: " + ", ".join(str(v) for v in scores.values()))
    cached, rebuild = envtune["modes"]["cached"]["all"], envtune["modes"]["rebuild"]["all"]
    sl, sf = results["bfcl_stateless"]["all"], results["bfcl_stateful"]["all"]
    per_turn = lambda r: r["us"] / max(1, r["turns"])
    print("ratios (per turn, all categories):")
    print(f"  BFCL stateless / envtune cached   = {per_turn(sl) / per_turn(cached):6.1f}x  (acceptance: >= 10)")
    print(f"  BFCL stateful  / envtune cached   = {per_turn(sf) / per_turn(cached):6.1f}x  (acceptance: >= 3)")
    print(f"  BFCL stateless / envtune rebuild  = {per_turn(sl) / per_turn(rebuild):6.1f}x")
    print(f"  BFCL stateful  / envtune rebuild  = {per_turn(sf) / per_turn(rebuild):6.1f}x")
    miss = envtune["modes"]["miss"]["all"]
    print(f"  BFCL stateless / envtune miss     = {per_turn(sl) / per_turn(miss):6.1f}x")
    if len(set(scores.values())) != 1:
        print("WARNING: the sides scored different numbers of turns; the work differed", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
