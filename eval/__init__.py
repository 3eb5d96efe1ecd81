"""The video benchmark harness (``veripo eval``): adapters for VSI-Bench, Video-MME, MMVU, TOMATO, LVBench,
VideoMMMU, MVBench, TempCompass, the synthetic task and VerIPO's own evaluation files (``veripo_json``); scoring
rules; an LLM judge for open-ended answers; a resumable runner; reasoning metrics; robustness probes; checkpoint
reports.

    from veripo.eval.benchmarks import get_adapter, benchmark_names
    from veripo.eval.predictions import score_predictions_file
    from veripo.eval.runner import EvalSettings, run_eval
    from veripo.eval.report import write_report
"""
