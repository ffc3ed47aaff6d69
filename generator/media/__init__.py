"""Media files: everything written to disk for one video, and read back from it.

One module per job, each depending only on those listed before it:
`_shared` (sources, the error, atomic writes) → `reading` (decoding, seeking, stream headers) → `writing` (MP4s
under a byte cap, fed along a render) → `previews` (thumbnail, spritesheet), `tails` (lossless last frames),
`joining` (an extension's MP4 as its parent's stream continued; streams joined) → `parts` (an MP4 encoded as parts
on parallel encoders, joined).

All functions are plain synchronous CPU work (libx264 has no GPU here: data-centre GPUs lack NVENC); callers run
them in a worker thread, never on the event loop. Files are written under a temporary name and renamed into place,
so a reader on shared storage never sees half a file.
"""

from generator.media._shared import EncodeError, VideoSource

__all__ = ["EncodeError", "VideoSource"]
