"""Sound: a clip's audio track, joined across seams, kept losslessly (FLAC) and muxed into its MP4 as AAC.

A track is float samples at the model's own rate. A render's sound is placed by frame: frame `f` of a video at
`fps` starts at sample `round(f * rate / fps)` (`sample_at`), so the audio and video of a part start and end
together. Where two parts join (a long video's segments, an extension and its parent) the new part's sound
replaces the old over a short equal-power crossfade that ends exactly at the seam: no sample is lost or doubled
and nothing clicks. The MP4's AAC stream starts at time 0 like the video; its length is the track's (the MP4's
edit list hides the encoder's priming; a decoder may give up to one AAC frame of padding at the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from generator.media import reading, writing
from generator.media._shared import VideoSource, write_atomically

CROSSFADE_SECONDS = 0.02  # long enough to hide a click, short enough not to smear a word across the seam
AAC_FRAME = 1024  # samples per AAC frame: how far a decoded track's end may pass the stream's length
BITRATE_PER_CHANNEL = 64_000  # AAC-LC: transparent enough for generated sound at 16-48 kHz
MIN_BITRATE_PER_CHANNEL = 16_000
SOUND_SHARE = 0.2  # of a byte cap, the most the sound may take when the cap is tight
_CONTAINER_BYTES = 8 * 1024  # the audio stream's share of the MP4's index, per started minute
_LAYOUTS = {1: "mono", 2: "stereo"}
_S16 = 32767.0


@dataclass(frozen=True)
class SoundTrack:
    """Audio samples, (channels, samples) float32 in [-1, 1], at `rate` samples per second."""

    samples: np.ndarray
    rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[0] not in _LAYOUTS or self.samples.dtype != np.float32:
            raise ValueError(f"samples must be (1 or 2, N) float32, got {self.samples.shape} {self.samples.dtype}")
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    def __len__(self) -> int:
        return self.samples.shape[1]

    @property
    def seconds(self) -> float:
        return len(self) / self.rate


def sample_at(frame: int, fps: int, rate: int) -> int:
    """The sample where frame `frame` of a video at `fps` starts."""
    return round(frame * rate / fps)


def silence(channels: int, rate: int, samples: int) -> SoundTrack:
    return SoundTrack(np.zeros((channels, samples), np.float32), rate)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """`samples` cut or padded with silence to exactly `length` samples (a vocoder gives about the length asked)."""
    if samples.shape[1] >= length:
        return samples[:, :length]
    return np.pad(samples, ((0, 0), (0, length - samples.shape[1])))


def as_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """Mono to stereo by copying, stereo to mono by averaging; unchanged when it already has `channels`."""
    if samples.shape[0] == channels:
        return samples
    if channels == 2:
        return np.repeat(samples[:1], 2, axis=0)
    return samples.mean(axis=0, keepdims=True, dtype=np.float32)


def join(before: np.ndarray, lead_in: np.ndarray, after: np.ndarray, rate: int) -> np.ndarray:
    """`before`, then `after`, with no gap: over the last `CROSSFADE_SECONDS` before the seam, `before` fades out
    while `lead_in` (the new part's own sound for that time: what it rendered over the frames it continued from)
    fades in. The result is exactly `len(before) + len(after)` samples long; (channels, N) float32 throughout."""
    fade = min(round(CROSSFADE_SECONDS * rate), before.shape[1], lead_in.shape[1])
    if fade == 0:
        return np.concatenate([before, after], axis=1)
    ramp = (np.arange(fade, dtype=np.float32) + 0.5) / fade
    fade_in, fade_out = np.sin(ramp * np.pi / 2), np.cos(ramp * np.pi / 2)  # equal power: no dip in loudness
    mixed = before[:, -fade:] * fade_out + lead_in[:, -fade:] * fade_in
    return np.concatenate([before[:, :-fade], mixed.astype(np.float32), after], axis=1)


def sound_bitrate(channels: int, seconds: float, max_bytes: int) -> int:
    """AAC bitrate for a track: the usual rate, lowered when it would take more than `SOUND_SHARE` of the cap."""
    usual = BITRATE_PER_CHANNEL * channels
    share = int(max_bytes * SOUND_SHARE * 8 / max(seconds, 1e-3))
    return max(MIN_BITRATE_PER_CHANNEL * channels, min(usual, share))


def sound_bytes(bitrate: int, seconds: float) -> int:
    """What the AAC stream is budgeted in the MP4: its bits at `bitrate` with a tenth of a second (a padded last
    frame) and 5 % of rate-control overshoot, and its share of the index."""
    return int(bitrate * (seconds + 0.1) / 8 * 1.05) + _CONTAINER_BYTES * (1 + int(seconds // 60))


def add_sound(video: Path, track: SoundTrack, bitrate: int) -> int:
    """Rewrite the MP4 at `video` (replaced atomically) with its video packets as they are and `track` as an AAC
    stream beside them, both starting at time 0 (+faststart). Returns the new size in bytes."""
    video = Path(video)
    source = video.read_bytes()

    def write(tmp: Path) -> None:
        with reading.open_video(source) as before, writing.mp4_container(tmp) as output:
            template = before.streams.video[0]
            stream = output.add_stream_from_template(template)
            sound = _aac_stream(output, track, bitrate)
            for packet in before.demux(template):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = stream
                output.mux(packet)
            _encode_samples(output, sound, track, "fltp", track.samples)

    write_atomically(video, write)
    return video.stat().st_size


def _aac_stream(container, track: SoundTrack, bitrate: int):
    stream = container.add_stream("aac", rate=track.rate, layout=_LAYOUTS[track.channels])
    stream.bit_rate = bitrate
    return stream


def _encode_samples(container, stream, track: SoundTrack, format: str, array: np.ndarray) -> None:
    """One frame of every sample (PyAV cuts it into the encoder's frame size), then the encoder's last packets."""
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=format, layout=_LAYOUTS[track.channels])
    frame.sample_rate = track.rate
    frame.pts = 0  # explicit, in samples: the stream starts with the video, at 0
    frame.time_base = Fraction(1, track.rate)
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def save_sound(track: SoundTrack, path: Path) -> Path:
    """Keep a clip's whole track for its extensions: FLAC, 16-bit. Reading it back and saving it again gives the
    same samples, so a chain of extensions quantises its sound once, not once per link."""

    def write(tmp: Path) -> None:
        with av.open(str(tmp), mode="w", format="flac") as container:
            stream = container.add_stream("flac", rate=track.rate, layout=_LAYOUTS[track.channels])
            stream.format = "s16"
            pcm = np.round(np.clip(track.samples, -1.0, 1.0) * _S16).astype(np.int16)
            _encode_samples(container, stream, track, "s16", pcm.T.reshape(1, -1))  # packed: channels interleaved

    return write_atomically(Path(path), write)


def load_sound(path: Path) -> SoundTrack:
    """The track `save_sound` kept."""
    track = read_sound(Path(path))
    if track is None:
        raise ValueError(f"{path} holds no sound")
    return track


def read_sound(source: VideoSource, rate: int | None = None) -> SoundTrack | None:
    """The first audio stream of a file (an MP4's AAC, a FLAC), as float samples (at `rate`: resampled; at its own
    otherwise) cut to the stream's own length (an AAC decoder adds padding up to its frame size); None when it has
    no audio. More than two channels are mixed down to stereo. In a file with video the samples are placed by time
    against the video's start: sound that starts later is preceded by silence, sound from before it is cut."""
    with reading.open_video(source) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        channels = min(stream.codec_context.channels, 2)
        parts = []
        rate = rate or stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=_LAYOUTS[channels], rate=rate)
        lead = None  # samples from the video's start to the sound's first
        for frame in container.decode(stream):
            if lead is None:
                lead = round((_start_of(frame) - _video_start(container)) * rate)
            parts.extend(resampled.to_ndarray() for resampled in resampler.resample(frame))
        parts.extend(resampled.to_ndarray() for resampled in resampler.resample(None))
        lossless = stream.codec_context.name == "flac" and rate == stream.codec_context.sample_rate
        length = None
        if stream.duration is not None and stream.time_base is not None:
            length = round(stream.duration * stream.time_base * rate)
    samples = np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((channels, 0), np.float32)
    if lossless:
        samples = np.round(samples * 32768.0) / _S16  # s16 read back as float is x / 32768: undo it exactly
        samples = samples.astype(np.float32)
    if length is not None and length <= samples.shape[1]:
        samples = samples[:, :length]
    if lead:
        samples = np.pad(samples, ((0, 0), (lead, 0))) if lead > 0 else samples[:, -lead:]
    return SoundTrack(np.ascontiguousarray(samples), rate)


def _start_of(frame: av.AudioFrame) -> float:
    return float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else 0.0


def _video_start(container) -> float:
    """When a file's video starts (its first frame is a clip's frame 0), in seconds; 0 without video."""
    if not container.streams.video:
        return 0.0
    video = container.streams.video[0]
    return float(video.start_time * video.time_base) if video.start_time is not None and video.time_base else 0.0
