"""``--match official`` against lmms-eval 0.7.3's own task code, to 1e-6 on every number, for all eight benchmarks.

lmms-eval is a test-time reference only (veripo never imports it): ``scripts/setup_env.sh`` installs the pinned
wheel without its dependencies (``pip install --no-deps lmms-eval==0.7.3``); these tests load its
``lmms_eval/tasks/<task>/utils.py`` files straight from the installed package (or from an unzipped wheel named by
``$VERIPO_LMMS_EVAL_DIR``), stubbing only the heavy imports they make at load time (loguru, cv2, datasets,
requests, lmms_eval's verifier and task-registry packages), and skip when lmms-eval is absent.

Predictions are generated in many shapes (think tags, ``<answer>``, ``\\boxed{}``, lower case, several letters,
option text, empty, numbers exactly at the MRA thresholds, number words); every ``overall``, ``tasks.<name>``
and ``groups.<grouping>.<name>`` veripo reports is compared with the number lmms-eval computes for it (the
breakdowns lmms-eval only logs are computed by its own aggregation function on the subset they cover).
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import os
import random
import sys
import types
from pathlib import Path

import pytest

from veripo.eval.benchmarks import get_adapter

pytestmark = pytest.mark.lmms_eval
TOL = 1e-6
TASKS = ("vsibench", "videomme", "mmvu", "tomato", "lvbench", "videommmu", "mvbench", "tempcompass")


def _lmms_root() -> Path | None:
    env = os.environ.get("VERIPO_LMMS_EVAL_DIR")
    if env:
        root = Path(env)
        root = root / "lmms_eval" if (root / "lmms_eval").is_dir() else root
        return root if (root / "tasks").is_dir() else None
    spec = importlib.util.find_spec("lmms_eval")  # a top-level find_spec does not run the package
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


class _Logger:
    def __getattr__(self, name):
        return lambda *a, **k: None


def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


class _NoNetwork:
    """``requests`` for the TempCompass judge calls: no judge reachable (every call fails), or a fake judge."""

    def __init__(self):
        self.verdict = None  # None -> unreachable; else a function(prompt) -> "Correct" / "Incorrect"

    def post(self, url, headers=None, data=None):
        if self.verdict is None:
            raise ConnectionError("no judge reachable")
        prompt = json.loads(data)["messages"][-1]["content"]
        body = {"choices": [{"message": {"content": self.verdict(prompt)}}], "usage": {}}
        return types.SimpleNamespace(content=json.dumps(body).encode())


@pytest.fixture(scope="module")
def lmms():
    root = _lmms_root()
    if root is None:
        pytest.skip("lmms-eval 0.7.3 is not installed (pip install --no-deps lmms-eval==0.7.3)")
    version = None
    try:
        from importlib.metadata import version as _v

        version = _v("lmms-eval")
    except Exception:
        pass
    if version not in (None, "0.7.3") and "VERIPO_LMMS_EVAL_DIR" not in os.environ:
        pytest.skip(f"lmms-eval {version} installed; the reference is 0.7.3")
    net = _NoNetwork()
    stubs = {
        "lmms_eval": _stub("lmms_eval", __path__=[str(root)]),
        "lmms_eval.tasks": _stub("lmms_eval.tasks", __path__=[str(root / "tasks")]),
        "lmms_eval.verifiers": _stub("lmms_eval.verifiers", VerificationPipeline=object),
        "lmms_eval.verifiers.extractors": _stub("lmms_eval.verifiers.extractors", StripReasoningExtractor=object),
        "lmms_eval.verifiers.openai": _stub("lmms_eval.verifiers.openai", OpenAIVerifier=object),
        "loguru": _stub("loguru", logger=_Logger()),
        "datasets": _stub("datasets", Dataset=object),
        "cv2": _stub("cv2"),
        "requests": _stub("requests", post=net.post),
    }
    saved = {k: sys.modules.get(k) for k in stubs}
    saved_env = os.environ.get("HF_HOME")
    sys.modules.update(stubs)
    os.environ["HF_HOME"] = os.environ.get("HF_HOME") or "/nonexistent-hf-home"
    try:
        mods = {}
        for task in TASKS:
            path = root / "tasks" / task / "utils.py"
            spec = importlib.util.spec_from_file_location(f"lmms_eval.tasks.{task}.utils", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mods[task] = mod
        mods["tempcompass"].time = types.SimpleNamespace(sleep=lambda s: None)  # its retry waits
        spec = importlib.util.spec_from_file_location("lmms_eval_reasoning", root / "models" / "model_utils"
                                                      / "reasoning_model_utils.py")
        red = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(red)
        mods["reduce"] = red.parse_reasoning_model_answer
        mods["net"] = net
        mods["root"] = root
        yield types.SimpleNamespace(**mods)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        for k in [k for k in sys.modules if k.startswith("lmms_eval.tasks._task_utils")]:
            sys.modules.pop(k, None)
        if saved_env is None:
            os.environ.pop("HF_HOME", None)
        else:
            os.environ["HF_HOME"] = saved_env


# ---------------------------------------------------------------- generated predictions

WORDS = ["red car", "the man jumps", "A cat sits", "left", "towards the camera", "Blue", "a", "2", "it is I",
         "several objects", "slowly", "E-mail", "1,000 (approx.)", "x. " * 20 + "end", "C-3PO's [part]"]


def letter_reply(rng: random.Random, letters: str, options: list[str]) -> str:
    g = rng.choice(letters)
    o = rng.choice(letters)
    text = options[letters.index(g)] if letters.index(g) < len(options) else "x"
    shapes = [g, g.lower(), f"({g})", f"{g}.", f"{g}. {text}", f"{g}) {text}", f"The answer is {g}.",
              f"the correct answer is ({g.lower()})", f"{g} or {o}", f"{g}{o}", f"{g}, {o}", text, text.upper(), "",
              "   ", f"<think>maybe {o}</think><answer>{g}</answer>", f"<think>x</think>\n<answer> {g.lower()} </answer>",
              f"\\boxed{{{g}}}", f"<think>long thinking about {o}. </think>", f"<answer>{g}. {text}</answer>",
              f"I choose {g}", f"Answer: {g}", f"{g}:", "None of the above", f"Option {g}", f"**{g}**",
              f"I think it is {g} because {text} is right. So {o}.", f"A cat is here, {g}.", f"{g}\n", "yes",
              f"<answer>\\boxed{{{g}}}</answer>", f"Best option: ({g}) {text}", f"{text} ({g})", f"选{g}",
              f"<think>unclosed {g}", f"{g}. {text}\nBecause {o}. is wrong.", f"'{g}'", f'"{g}".', f"{o} is wrong; {g}",
              ". " * 20 + g, f"({g.lower()}) 1,000 - {text}!", f"{text}; {o.lower()}?", f"1,000 x-{g.lower()}",
              f"x-{g.lower()}"]
    return rng.choice(shapes)


def number_reply(rng: random.Random, gold: float) -> str:
    k = rng.randint(-11, 11)
    p = gold * (1 + 0.05 * k)
    num = repr(round(p, 6)) if rng.random() < 0.5 else repr(p)
    shapes = [num, f"{num} meters", f"about {num}", f"{num}.", f"${num}$", f"<answer>{num}</answer>",
              f"\\boxed{{{num}}}", "three", "twenty-one chairs", "one hundred and five", "", "none", f"-{num}",
              f"<think>maybe 2</think>{num}", f"It is {num} m", "3-4", "two thousand", "Seven.", f"{int(p)}"]
    return rng.choice(shapes)


def close(a, b) -> bool:
    return abs(float(a) - float(b)) <= TOL


def ours(name: str, rows_responses, match="official"):
    adapter = get_adapter(name)
    items = [adapter.score_row(row, resp, match) for row, resp in rows_responses]
    return adapter.aggregate(items, match)


def check_cells(ours_cells: dict, ref: dict, where: str):
    assert set(ours_cells) == set(ref), (where, sorted(ours_cells), sorted(ref))
    for name, cell in ours_cells.items():
        assert close(cell["score"], ref[name]), (where, name, cell["score"], ref[name])


# ---------------------------------------------------------------- per benchmark

def test_vsibench_parity(lmms):
    m = lmms.vsibench
    rng = random.Random(0)
    pairs = []
    types_ = list(m.MCA_QUESTION_TYPES) + list(m.NA_QUESTION_TYPES)
    for i in range(400):
        qt = types_[i % len(types_)]
        if qt in m.MCA_QUESTION_TYPES:
            opts = [f"{'ABCD'[j]}. {rng.choice(WORDS)}" for j in range(4)]
            row = {"id": i, "dataset": "scannet", "scene_name": f"s{i}", "question_type": qt, "question": "Q?",
                   "options": opts, "ground_truth": rng.choice("ABCD")}
            resp = letter_reply(rng, "ABCD", [o[3:] for o in opts])
        else:
            gold = rng.choice([1.0, 2.0, 3.0, 4, 10, 2.5, 0.8, 12.3, 7])
            row = {"id": i, "dataset": "scannet", "scene_name": f"s{i}", "question_type": qt, "question": "Q?",
                   "options": None, "ground_truth": str(gold)}
            resp = number_reply(rng, float(gold))
        pairs.append((row, resp))
    res = ours("vsibench", pairs)
    docs = [m.vsibench_process_results(dict(r), [lmms.reduce(resp)])["vsibench_overall"] for r, resp in pairs]
    subs = m._compute_all_subscores(docs)
    ref = {}
    for key, val in subs.items():
        if key == "overall":
            continue
        name = key.replace("_MRA:.5:.95:.05", "").removesuffix("_accuracy")
        ref[name] = round(val, 6)
    check_cells(res["tasks"], ref, "vsibench tasks")
    assert close(res["overall"], m.vsibench_aggregate_overall(docs))
    assert len(res["tasks"]) == 8


def test_videomme_parity(lmms):
    m = lmms.videomme
    rng = random.Random(1)
    pairs = []
    for i in range(500):
        opts = [f"{'ABCD'[j]}. {rng.choice(WORDS)}" for j in range(4)]
        row = {"question_id": f"{i}", "videoID": f"v{i}", "question": "Q?", "options": opts,
               "answer": rng.choice("ABCD"), "duration": rng.choice(m.VIDEO_TYPE), "domain": rng.choice(m.CATEGORIES),
               "sub_category": rng.choice(m.SUB_CATEGORIES), "task_type": rng.choice(m.TASK_CATEGORIES)}
        pairs.append((row, letter_reply(rng, "ABCD", [o[3:] for o in opts])))
    res = ours("videomme", pairs)
    results = [m.videomme_process_results(r, [lmms.reduce(resp)])["videomme_perception_score"] for r, resp in pairs]
    assert close(res["overall"], m.videomme_aggregate_results(results) / 100)

    def table(names):  # the logged breakdowns: a name counts the results whose key contains it (as lmms-eval)
        out = {}
        for n in names:
            sub = [r for r in results if n in f"{r['duration']}_{r['category']}_{r['sub_category']}_{r['task_category']}"]
            if sub:
                out[n] = sum(r["pred_answer"] == r["answer"] for r in sub) / len(sub)
        return out

    check_cells(res["tasks"], table(m.TASK_CATEGORIES), "videomme task_type")
    check_cells(res["groups"]["duration"], table(m.VIDEO_TYPE), "videomme duration")
    check_cells(res["groups"]["domain"], table(m.CATEGORIES), "videomme domain")
    check_cells(res["groups"]["sub_category"], table(m.SUB_CATEGORIES), "videomme sub_category")


def _mmvu_task_map(root: Path) -> dict[str, str]:
    tree = ast.parse((root / "tasks" / "mmvu" / "utils.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TASK_MAP" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("TASK_MAP not found in lmms-eval's mmvu/utils.py")


def test_mmvu_parity(lmms):
    m = lmms.mmvu
    task_map = _mmvu_task_map(lmms.root)
    subjects = sorted(task_map) + ["Unlisted_Subject"]
    rng = random.Random(2)
    pairs = []
    for i in range(400):
        texts = [rng.choice(WORDS) for _ in range(5)]
        choices = {"ABCDE"[j]: texts[j] for j in range(5)}
        if rng.random() < 0.3:
            choices["E"] = ""
        gold = rng.choice("ABCD")
        subj = rng.choice(subjects)
        row = {"id": i, "question": "Q?", "choices": choices, "answer": gold, "question_type": "multiple-choice",
               "video_path": f"https://x/videos/{subj}/{i}.mp4"}
        pairs.append((row, letter_reply(rng, "ABCDE", texts)))
    res = ours("mmvu", pairs)
    results = [m.mmvu_process_results(r, [lmms.reduce(resp)])["accuracy"] for r, resp in pairs]
    assert close(res["overall"], m.mmvu_aggregate_results_val(results) / 100)
    ref = {}
    for cat in set(task_map.values()):
        sub = [r for r in results if task_map.get(r["category"]) == cat]
        if sub:
            ref[cat] = m.mmvu_aggregate_results_val(sub) / 100
    check_cells(res["groups"]["category"], ref, "mmvu category")
    assert res["n_counted"] < len(pairs)  # unlisted subjects are left out, as lmms-eval does


def test_tomato_parity(lmms):
    m = lmms.tomato
    rng = random.Random(3)
    pairs = []
    for i in range(400):
        k = rng.randint(3, 6)
        opts = [rng.choice(WORDS) + f" {j}" for j in range(k)]
        row = {"id": i, "key": f"k{i}", "question": "Q?", "options": opts, "answer": rng.randrange(k),
               "reason_type": rng.choice(["count", "direction", "rotation", "shape&trend", "velocity&frequency",
                                          "visual_cues"]),
               "demonstration_type": rng.choice(["human", "object", "simulated"])}
        resp = letter_reply(rng, "ABCDEF"[:k], opts)
        if rng.random() < 0.15:
            resp = f"the object in the video clearly shows {rng.choice(opts)} here"
        pairs.append((row, resp))
    res = ours("tomato", pairs)
    results = [m.tomato_process_results(r, [lmms.reduce(resp)])["tomato_score"] for r, resp in pairs]
    assert close(res["overall"], m.tomato_aggregate_results(results))
    for field, ours_cells in (("reason_type", res["tasks"]), ("demonstration_type", res["groups"]["demonstration_type"])):
        ref = {v: m.tomato_aggregate_results([r for r in results if r[field] == v]) for v in {r[field] for r in results}}
        check_cells(ours_cells, ref, f"tomato {field}")


def test_lvbench_parity(lmms):
    m = lmms.lvbench
    rng = random.Random(4)
    pairs = []
    for i in range(300):
        opts = [rng.choice(WORDS) for _ in range(4)]
        q = "What?\n" + "\n".join(f"({'ABCD'[j]}) {o}" for j, o in enumerate(opts))
        row = {"uid": str(i), "key": "v", "question": q, "answer": rng.choice("ABCD"), "question_type": ["reasoning"]}
        pairs.append((row, letter_reply(rng, "ABCD", opts)))
    res = ours("lvbench", pairs)
    scores = [m.lvbench_process_results(r, [lmms.reduce(resp)])["lvbench_score"] for r, resp in pairs]
    assert close(res["overall"], sum(scores) / len(scores))


def test_videommmu_parity(lmms):
    m = lmms.videommmu
    rng = random.Random(5)
    subjects = [s for subs in m.DOMAIN_CAT2SUB_CAT.values() for s in subs] + ["Unlisted"]
    open_golds = ["36", "3.5", "1,000", "impasto", "a", "0.25", "Depth-first search", "12"]
    pairs = []
    for i in range(500):
        track = rng.choice(["Perception", "Comprehension", "Adaptation"])
        subj = rng.choice(subjects)
        row = {"id": f"{track.lower()}_{subj}_{i}", "track": track, "question": "Q?"}
        if rng.random() < 0.6:
            k = rng.randint(4, 10)
            opts = [f"{chr(65 + j)}. {rng.choice(WORDS)}" for j in range(k)]
            row.update(question_type="multiple-choice", options=opts, answer=chr(65 + rng.randrange(k)))
            resp = letter_reply(rng, "".join(chr(65 + j) for j in range(k)), [o[3:] for o in opts])
        else:
            gold = rng.choice(open_golds)
            row.update(question_type="open", options=[], answer=gold)
            resp = rng.choice([gold, f"The answer is {gold}.", f"so the total is {gold}", "", "<think>x</think>",
                               f"<answer>{gold.upper()}</answer>", "I am not sure", f"x = {gold}", "36.0", "1000",
                               f"\\boxed{{{gold}}}", "It is a dog. So it is a", "The answer is cat",
                               f"Thus the result is {gold}x. It has 2 parts", f"value = {gold}0"])
        pairs.append((row, resp))
    res = ours("videommmu", pairs)
    results = [m.videommmu_process_results(r, [lmms.reduce(resp)])["mmmu_acc"] for r, resp in pairs]

    def printed(rs):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            acc = m.videommmu_aggregate_results(rs)
        return acc, ast.literal_eval(buf.getvalue().strip().splitlines()[-1])

    acc, table = printed(results)
    assert close(res["overall"], acc) and acc == table["Overall"]["acc"]
    subj_ref = {k: v["acc"] for k, v in table.items() if not k.startswith("Overall")}
    dom_ref = {k[len("Overall-"):]: v["acc"] for k, v in table.items() if k.startswith("Overall-") and v["num"]}
    check_cells(res["groups"]["subject"], subj_ref, "videommmu subject")
    check_cells(res["groups"]["domain"], dom_ref, "videommmu domain")
    for track, cell in res["tasks"].items():
        sub = [r for r, (row, _) in zip(results, pairs) if row["track"] == track]
        assert close(cell["score"], printed(sub)[0]), track
    assert res["n_counted"] < len(pairs)  # empty open answers ("API Error") are left out


def test_mvbench_parity(lmms):
    m = lmms.mvbench
    rng = random.Random(6)
    tasks = sorted(m.DATA_LIST)
    pairs = []
    for i in range(600):
        k = rng.randint(2, 5)
        cands = [rng.choice(WORDS) + f" {j}." for j in range(k)]
        row = {"task": tasks[i % len(tasks)], "video": f"{i}.mp4", "question": "Q?", "candidates": cands,
               "answer": rng.choice(cands)}
        pairs.append((row, letter_reply(rng, "ABCDE"[:k], cands)))
    res = ours("mvbench", pairs)
    ref = {}
    for task in tasks:
        sub = [m.mvbench_process_results(r, [lmms.reduce(resp)])["mvbench_accuracy"] for r, resp in pairs
               if r["task"] == task]
        ref[task] = m.mvbench_aggregate_results(sub) / 100
    check_cells(res["tasks"], ref, "mvbench tasks")
    assert close(res["overall"], sum(ref.values()) / len(ref))


def _tempcompass_pairs(rng: random.Random, n: int):
    pairs = []
    for i in range(n):
        dim = rng.choice(["action", "direction", "speed", "order", "attribute_change"])
        fmt = rng.choice(["multi-choice", "yes_no", "caption_matching"])
        row = {"video_id": f"v{i}", "dim": dim, "task_type": fmt}
        if fmt == "multi-choice":
            k = rng.randint(2, 4)
            opts = [rng.choice(WORDS) for _ in range(k)]
            g = rng.randrange(k)
            row.update(question="Which?\n" + "\n".join(f"{'ABCD'[j]}. {o}" for j, o in enumerate(opts)),
                       answer=f"{'ABCD'[g]}. {opts[g]}")
            resp = rng.choice([letter_reply(rng, "ABCD"[:k], opts), row["answer"], f"{'ABCD'[g]}) {opts[g]}"])
        elif fmt == "yes_no":
            row.update(question="Is it?", answer=rng.choice(["yes", "no"]))
            resp = rng.choice(["Yes", "yes.", "No, it is not.", "nope", "Not sure", "", "YES", "<answer>no</answer>",
                               "<think>yes?</think>No", "Noted: yes", "\\boxed{yes}", "y"])
        else:
            label = rng.choice(["Sentence {}", "Caption {}", "Option {}"])
            marks = ["1", "2"] if label.startswith("Option") else ["A", "B"]
            sents = [rng.choice(WORDS) + " happens." for _ in range(2)]
            lines = [f"{label.format(mk)}: {s}" for mk, s in zip(marks, sents)]
            g = rng.randrange(2)
            row.update(question="Which caption matches the video better?\n" + "\n".join(lines), answer=lines[g])
            resp = rng.choice([label.format(marks[g]), marks[g], lines[g], sents[g], f"({marks[g]}) {sents[g]}",
                               f"{marks[g]}.", label.format(marks[1 - g]) + ".", "", "Neither",
                               f"<answer>{label.format(marks[g])}</answer>", marks[g].lower()])
        pairs.append((row, resp))
    return pairs


_TC_PROCESS = {"multi-choice": "tempcompass_process_results_multi_choice",
               "yes_no": "tempcompass_process_results_yes_no",
               "caption_matching": "tempcompass_process_results_caption_matching"}


def _tempcompass_reference(m, pairs, reduce):
    results = [getattr(m, _TC_PROCESS[r["task_type"]])(r, [reduce(resp)])["avg_accuracy"] for r, resp in pairs]
    fmts = [r["task_type"] for r, _ in pairs]
    agg = lambda rs: m.tempcompass_aggregate_rating(rs, None) / 100  # noqa: E731
    tasks = {d: agg([x for x in results if x["dim"] == d]) for d in {x["dim"] for x in results}}
    groups = {f: agg([x for x, ff in zip(results, fmts) if ff == f]) for f in set(fmts)}
    return agg(results), tasks, groups


def test_tempcompass_parity_no_judge(lmms):
    rng = random.Random(7)
    pairs = _tempcompass_pairs(rng, 450)
    lmms.net.verdict = None
    res = ours("tempcompass", pairs)
    overall, tasks, groups = _tempcompass_reference(lmms.tempcompass, pairs, lmms.reduce)
    assert close(res["overall"], overall)
    check_cells(res["tasks"], tasks, "tempcompass dim")
    check_cells(res["groups"]["task_type"], groups, "tempcompass task_type")
    assert set(groups) == {"multi-choice", "yes_no", "caption_matching"} and res["n_judge_items"] > 0


def test_tempcompass_parity_with_a_judge(lmms, tmp_path):
    """The items lmms-eval hands to ChatGPT go to --judge-url's judge; both sides use the same fake verdicts."""
    from veripo.eval.official_judge import score_with_official_judge

    def verdict(answer: str) -> bool:
        return len(answer) % 2 == 0

    lmms.net.verdict = lambda prompt: "Correct" if verdict(prompt.rsplit("Model Prediction: ", 1)[1]) else "Incorrect"

    class FakeJudge:
        name = "fake"

        def judge_many(self, inputs):
            return [types.SimpleNamespace(verdict="correct" if verdict(x.answer) else "incorrect") for x in inputs]

    try:
        pairs = _tempcompass_pairs(random.Random(8), 300)
        preds = tmp_path / "preds.jsonl"
        preds.write_text("".join(json.dumps({**r, "response": resp}) + "\n" for r, resp in pairs))
        res, _ = score_with_official_judge(get_adapter("tempcompass"), preds, FakeJudge())
        overall, tasks, groups = _tempcompass_reference(lmms.tempcompass, pairs, lmms.reduce)
    finally:
        lmms.net.verdict = None
    assert res["n_malformed"] == 0 and res["official_judge"]["n"] > 0
    assert close(res["overall"], overall)
    check_cells(res["tasks"], tasks, "tempcompass dim")
    check_cells(res["groups"]["task_type"], groups, "tempcompass task_type")


def test_reasoning_reduction_parity(lmms):
    from veripo.eval.lmms_rules import reduce_reasoning

    rng = random.Random(9)
    for _ in range(300):
        resp = letter_reply(rng, "ABCD", WORDS[:4]) + rng.choice(["", " <think>a</think>", "\\boxed{ 3 }",
                                                                   "<answer>\n</answer>", "</think>"])
        assert reduce_reasoning(resp) == lmms.reduce(resp), resp
