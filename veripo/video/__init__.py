"""Video I/O: decode (decord, PyAV fallback), frame sampling, a frame cache, processor inputs with real timestamps.

    from veripo.video import VideoSampling, decode_video, FrameCache, build_model_inputs, sampling_for_processor
    sampling = sampling_for_processor(processor, fps=2.0)       # pixel budget = the processor's
    clip = decode_video("clip.mp4", sampling)                    # VideoClip: frames [T,H,W,3] uint8, timestamps...
    batch = build_model_inputs(processor, [prompt], [clip])      # left-padded, second_per_grid_ts correct
"""
from veripo.video.cache import FrameCache
from veripo.video.decode import VideoClip, decode_video, resize_frames
from veripo.video.inputs import build_model_inputs, render_prompt
from veripo.video.sampling import VideoSampling, sample_indices, sampling_for_processor, target_size
from veripo.video.write import write_mp4

__all__ = [
    "FrameCache", "VideoClip", "VideoSampling", "build_model_inputs", "decode_video", "render_prompt",
    "resize_frames", "sample_indices", "sampling_for_processor", "target_size", "write_mp4",
]
