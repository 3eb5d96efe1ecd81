"""Pair construction rules and the verify pipeline: files, stats, malformed rows, resume, CLI."""
import json

from veripo.records import PairRecord
from veripo.rewards import format_ok
from veripo.verifier.config import VerifierConfig
from veripo.verifier.examples import example_rollouts, write_example_rollouts
from veripo.verifier.pairs import build_group_pairs, finalize_pairs
from veripo.verifier.pipeline import Verifier, run_verification


def group_pairs(records, config=None):
    config = config or VerifierConfig()
    verdicts = Verifier(config).verify(records)
    return build_group_pairs(records, {v.rollout_id: v for v in verdicts}, config)


def color_group():
    return [r for r in example_rollouts() if r.group_id == "0-color-1"]


def test_quality_pairs_prefer_longest_good_and_hard_negatives():
    pairs, skipped = group_pairs(color_group())
    quality = [p for p in pairs if p.kind == "quality"]
    assert skipped is None and len(quality) == 2  # capped per prompt
    first = quality[0]
    assert first.provenance["chosen"] == ["0-color-1-0"]  # the longest good reasoning
    assert first.provenance["rejected"] == ["0-color-1-2"]  # correct but inconsistent: the hard negative
    assert first.provenance["reason"] == "correct_but_inconsistent"
    assert quality[1].provenance["reason"] == "repetitive"
    assert first.provenance["verdicts"]["0-color-1-2"]["consistency"] == "inconsistent"


def test_reflective_pair_is_failed_attempt_then_reflection():
    pairs, _ = group_pairs(color_group())
    (refl,) = [p for p in pairs if p.kind == "reflective"]
    wrong = next(r for r in color_group() if r.rollout_id == "0-color-1-3")
    assert refl.rejected == wrong.response
    assert "appears red" in refl.chosen and "Wait, let me re-check the video." in refl.chosen
    assert refl.chosen.index("appears red") < refl.chosen.index("re-check") < refl.chosen.index("clearly green")
    assert refl.chosen.endswith("<answer> $B$ </answer>") and format_ok(refl.chosen)


def test_single_pair_cleans_the_repetition():
    pairs, _ = group_pairs(color_group())
    (single,) = [p for p in pairs if p.kind == "single"]
    assert single.rejected.count("I see a ball on the table.") == 4
    assert single.chosen.count("I see a ball on the table.") == 1 and format_ok(single.chosen)


def test_all_good_group_is_skipped_and_kinds_can_be_disabled():
    easy = [r for r in example_rollouts() if r.group_id == "0-easy-1"]
    assert group_pairs(easy) == ([], "all_good")
    cfg = VerifierConfig()
    cfg.pairs.kinds = ["quality"]
    pairs, _ = group_pairs(color_group(), cfg)
    assert {p.kind for p in pairs} == {"quality"}


def test_unjudged_rollouts_are_never_chosen():
    cfg = VerifierConfig()
    recs = color_group()
    verdicts = Verifier(cfg).verify(recs)
    for v in verdicts:  # as if the judge had failed on every good rollout
        if v.good:
            v.consistency = "unjudged"
            v.reasons, v.good = ["unjudged"], False
    pairs, skipped = build_group_pairs(recs, {v.rollout_id: v for v in verdicts}, cfg)
    assert all(p.kind == "single" for p in pairs)


def test_dedup_and_balance():
    cfg = VerifierConfig()
    pairs, _ = group_pairs(color_group(), cfg)
    count_pairs, _ = group_pairs([r for r in example_rollouts() if r.group_id == "0-count-1"], cfg)
    # one numerical pair only: multiple choice may keep at most ceil(1.0 * 1) = 1 pair at ratio 1
    cfg.pairs.balance_ratio = 1.0
    out, stats = finalize_pairs(pairs + pairs + count_pairs[:1], cfg)
    assert stats["duplicates_dropped"] == len(pairs)
    assert stats["per_problem_type"] == {"multiple choice": 1, "numerical": 1}
    assert stats["dropped_for_balance"] == {"multiple choice": len(pairs) - 1}


def test_pipeline_outputs_stats_and_malformed_rows(tmp_path):
    path = write_example_rollouts(tmp_path / "rollouts.jsonl", malformed=True)
    stats = run_verification(path, tmp_path / "out", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    pairs = [PairRecord.from_dict(r) for r in rows]
    assert len(pairs) == stats["pairs"]["total"] > 0
    assert {p.kind for p in pairs} == {"quality", "reflective", "single"}
    assert stats["rollouts"] == 12 and stats["malformed"] == 2
    assert stats["malformed_rows"][0].startswith(f"{path}:3: not valid JSON")
    assert stats["malformed_rows"][1] == f"{path}:6: RolloutRecord is missing field(s): response"
    assert stats["inconsistent"] == 2 and stats["repetitive"] == 2 and stats["unjudged"] == 0
    assert stats["rejection_reasons"]["wrong_answer"] == 5 and stats["groups_skipped"] == {"all_good": 1}
    verdicts = (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()
    assert len(verdicts) == 12
    on_disk = json.loads((tmp_path / "out" / "verify_stats.json").read_text())
    assert on_disk["pairs"] == stats["pairs"]


def test_pipeline_is_idempotent_and_resumes(tmp_path):
    path = write_example_rollouts(tmp_path / "rollouts.jsonl")
    out = tmp_path / "out"
    first = run_verification(path, out, progress=False)
    pairs_before = (out / "pairs.jsonl").read_text()
    again = run_verification(path, out, progress=False)
    assert again.get("skipped_complete") and again["pairs"] == first["pairs"]
    # an interrupted run: only a partial verdict file is left behind
    (out / "verify_stats.json").unlink()
    (out / "pairs.jsonl").unlink()
    lines = (out / "verdicts.jsonl").read_text().splitlines()
    (out / "verdicts.partial.jsonl").write_text("\n".join(lines[:5]) + "\n")
    resumed = run_verification(path, out, progress=False)
    assert resumed["resumed_verdicts"] == 5 and not resumed.get("skipped_complete")
    assert (out / "pairs.jsonl").read_text() == pairs_before
    assert not (out / "verdicts.partial.jsonl").exists()
    # a changed config invalidates the completion marker
    cfg = VerifierConfig()
    cfg.pairs.max_quality_per_prompt = 1
    changed = run_verification(path, out, cfg, progress=False)
    assert not changed.get("skipped_complete") and changed["pairs"]["quality"] < first["pairs"]["quality"]


def test_cli_verify(tmp_path, capsys):
    from veripo.cli import main

    path = write_example_rollouts(tmp_path / "r.jsonl", malformed=True)
    assert main(["verify", "--rollouts", str(path), "--out", str(tmp_path / "o"), "--judge", "none",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert '"inconsistent": 0' in out and "r.jsonl:6" in out
    assert main(["verify", "--rollouts", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2


def test_service_commands_show_config(capsys):
    from veripo.cli import main

    assert main(["serve-verifier", "--show-config"]) == 0
    assert "judge.kind" in capsys.readouterr().out
