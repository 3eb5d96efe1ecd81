"""The video benchmark harness (``veripo eval``): adapters for VSI-Bench, Video-MME, MMVU, TOMATO, LVBench,
VideoMMMU, MVBench, TempCompass and the synthetic task; scoring rules; a resumable runner; reasoning metrics;
robustness probes; checkpoint reports.

    from veripo.eval.benchmarks import get_adapter, benchmark_names
    from veripo.eval.predictions import score_predictions_file
    from veripo.eval.runner import EvalSettings, run_eval
    from veripo.eval.report import write_report
"""
