"""Video and image I/O for recut, built on PyAV, Pillow and OpenCV.

Frames are always ``uint8`` RGB arrays shaped ``[T, H, W, 3]`` (a single image
is ``[H, W, 3]``).  Reading never shells out to the ffmpeg CLI: decoding and
encoding go through PyAV's bundled libav, so the same wheel works everywhere.

Every failure to read media raises :class:`MediaError`, whose message starts
with the offending path, e.g. ``clips/cat.mp4: file not found``.

Encoding uses H.264 (``libx264``, ``yuv420p``) when the installed PyAV wheel
provides it and falls back to MPEG-4 Part 2 (``mpeg4``) otherwise; see
:func:`video_codec`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "MediaError",
    "VideoInfo",
    "fit_frames",
    "frames_selected",
    "load_frames",
    "make_test_frames",
    "make_test_video",
    "probe",
    "read_image",
    "read_images",
    "read_video",
    "save_frames",
    "video_codec",
    "write_gif",
    "write_mp4",
]

PathLike = str | os.PathLike[str]
FitMode = Literal["crop", "stretch", "pad"]

#: Frame rate assumed when a container declares none (ffmpeg's own default).
DEFAULT_FPS = 25.0


class MediaError(ValueError):
    """A media file is missing, unreadable, or does not satisfy a request.

    The message always names the file first: ``"<path>: <problem>"``.
    """

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class VideoInfo:
    """Basic facts about a video file, as reported by :func:`probe`."""

    frames: int
    fps: float
    width: int
    height: int


# --------------------------------------------------------------------------- reading


def _check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(path, "file not found")
    if p.is_dir():
        raise MediaError(path, "is a directory, not a file")
    return p


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    return str(exc).strip() or type(exc).__name__


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return DEFAULT_FPS


def _video_stream(container: av.container.InputContainer, path: PathLike):
    if not container.streams.video:
        raise MediaError(path, "contains no video frames (no video stream)")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def probe(path: PathLike) -> VideoInfo:
    """Frame count, frame rate and size of the first video stream of ``path``.

    The frame count comes from the container when it records one; otherwise
    (e.g. Matroska/WebM) the stream is decoded and its frames counted.
    Raises :class:`MediaError` if the file is missing, unreadable or has no
    video frames.
    """
    _check_file(path)
    try:
        with av.open(str(path), mode="r") as container:
            stream = _video_stream(container, path)
            fps = _stream_fps(stream)
            width = stream.codec_context.width
            height = stream.codec_context.height
            frames = int(stream.frames or 0)
            if frames <= 0:
                frames = 0
                for frame in container.decode(stream):
                    if frames == 0:
                        width, height = frame.width, frame.height
                    frames += 1
    except MediaError:
        raise
    except (av.FFmpegError, OSError, EOFError) as exc:
        raise MediaError(path, f"not a readable video ({_reason(exc)})") from exc
    if frames == 0:
        raise MediaError(path, "contains no video frames")
    return VideoInfo(frames=frames, fps=fps, width=int(width), height=int(height))


def _nearest(j: int, src_fps: float, fps: float) -> int:
    """Source offset of output frame ``j`` when resampling ``src_fps`` -> ``fps``."""
    # Half-up rounding with a tiny epsilon so exact ratios (e.g. 24 -> 8) are stable.
    return math.floor(j * src_fps / fps + 0.5 + 1e-9)


def frames_selected(info: VideoInfo, start: int = 0, stride: int = 1, fps: float | None = None) -> int:
    """How many frames :func:`read_video` returns with no ``count`` for this request on a video
    described by ``info`` (0 when ``start`` is past its end)."""
    if fps is None:
        return len(range(start, info.frames, stride))
    # output frame j reads source frame start + _nearest(j); _nearest grows with j
    n = max(0, math.floor((info.frames - start) * fps / info.fps) - 1)
    while n > 0 and start + _nearest(n - 1, info.fps, fps) >= info.frames:
        n -= 1
    while start + _nearest(n, info.fps, fps) < info.frames:
        n += 1
    return n


def read_video(
    path: PathLike,
    start: int = 0,
    count: int | None = None,
    stride: int = 1,
    fps: float | None = None,
) -> tuple[np.ndarray, float]:
    """Decode ``path`` to a ``uint8`` RGB array ``[T, H, W, 3]`` and its frame rate.

    Sampling: the first ``start`` frames are skipped; then every ``stride``-th
    frame is taken (frames ``start, start+stride, ...``).  If ``fps`` is given
    it replaces ``stride``: the clip from ``start`` on is resampled by time to
    ``fps``, output frame ``j`` being the source frame nearest to time
    ``j / fps`` (frames repeat when ``fps`` exceeds the source rate).  ``count``
    frames are returned, or all remaining ones when it is ``None``.

    Returns ``(frames, effective_fps)`` where ``effective_fps`` is
    ``source_fps / stride``, or ``fps`` when resampling.

    Raises :class:`MediaError` for a missing or unreadable file, a file with no
    video frames, or one with too few frames for the request.
    """
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if count is not None and count < 1:
        raise ValueError(f"count must be >= 1 or None, got {count}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    _check_file(path)

    out: list[np.ndarray] = []
    total = 0
    try:
        with av.open(str(path), mode="r") as container:
            stream = _video_stream(container, path)
            src_fps = _stream_fps(stream)
            j = 0  # index of the next output frame
            target = start  # source index of the next output frame
            done = False
            for frame in container.decode(stream):
                i = total
                total += 1
                if done or i < target:
                    continue
                rgb: np.ndarray | None = None
                # With fps resampling several outputs may map to one source frame.
                while not done and i == target:
                    if rgb is None:
                        rgb = frame.to_ndarray(format="rgb24")
                    out.append(rgb)
                    j += 1
                    if count is not None and j >= count:
                        done = True
                    elif fps is None:
                        target = start + j * stride
                    else:
                        target = start + _nearest(j, src_fps, fps)
                if done:
                    break  # no need to count the rest: the request is satisfied
    except MediaError:
        raise
    except (av.FFmpegError, OSError, EOFError) as exc:
        raise MediaError(path, f"not a readable video ({_reason(exc)})") from exc

    if total == 0:
        raise MediaError(path, "contains no video frames")
    if not out or (count is not None and len(out) < count):
        if fps is None:
            how = f"start {start}, count {count}, stride {stride}"
            end = start + count * stride if count is not None else None
        else:
            how = f"start {start}, count {count}, fps {fps:g} from {src_fps:g}"
            end = start + _nearest(count - 1, src_fps, fps) + 1 if count is not None else None
        asks = f"frames {start}..{end}" if end is not None else f"frames from {start} on"
        raise MediaError(path, f"has {total} frames, but the spec asks for {asks} ({how})")
    effective = float(fps) if fps is not None else src_fps / stride
    return np.stack(out), effective


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as ``uint8`` RGB ``[H, W, 3]``.

    EXIF orientation is applied; RGBA, greyscale, palette etc. are converted to
    RGB (alpha is dropped).  Raises :class:`MediaError` if missing or corrupt.
    """
    _check_file(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError as exc:
        raise MediaError(path, "not a readable image (unrecognised format)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError(path, f"not a readable image ({_reason(exc)})") from exc
    return np.ascontiguousarray(arr)


def write_image(path: PathLike, image: np.ndarray) -> None:
    """Write a ``uint8`` RGB ``[H, W, 3]`` image (the format follows the suffix, e.g. ``.png``)."""
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB").save(path)


def read_images(paths: list[PathLike] | tuple[PathLike, ...]) -> np.ndarray:
    """Read several images into ``[N, H, W, 3]``, resized to the first one's size."""
    paths = list(paths)
    if not paths:
        raise ValueError("read_images: no image paths given")
    images = [read_image(p) for p in paths]
    h, w = images[0].shape[:2]
    return np.stack([_resize(im, w, h) for im in images])


# --------------------------------------------------------------------------- geometry


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize one ``[H, W, C]`` image: INTER_AREA when shrinking, INTER_CUBIC otherwise."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    shrinking = width <= w and height <= h
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(img, (width, height), interpolation=interp)


def fit_frames(frames: np.ndarray, width: int, height: int, mode: FitMode = "crop") -> np.ndarray:
    """Resize ``uint8`` frames ``[T, H, W, 3]`` to exactly ``[T, height, width, 3]``.

    * ``"crop"``: scale to cover the target, then center-crop;
    * ``"stretch"``: plain resize, ignoring the aspect ratio;
    * ``"pad"``: scale to fit inside the target, then center on black.

    Shrinking uses ``cv2.INTER_AREA``, enlarging ``cv2.INTER_CUBIC``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"fit_frames expects [T, H, W, 3] frames, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"fit_frames expects uint8 frames, got {frames.dtype}")
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    if mode not in ("crop", "stretch", "pad"):
        raise ValueError(f"unknown fit mode {mode!r} (expected 'crop', 'stretch' or 'pad')")
    t, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames.copy()
    if mode == "stretch":
        return np.stack([_resize(f, width, height) for f in frames]) if t else _empty(width, height)

    if mode == "crop":
        scale = max(width / w, height / h)
        sw = max(width, round(w * scale))
        sh = max(height, round(h * scale))
    else:
        scale = min(width / w, height / h)
        sw = min(width, max(1, round(w * scale)))
        sh = min(height, max(1, round(h * scale)))
    out = np.zeros((t, height, width, 3), dtype=np.uint8)
    for k, f in enumerate(frames):
        s = _resize(f, sw, sh)
        if mode == "crop":
            y0, x0 = (sh - height) // 2, (sw - width) // 2
            out[k] = s[y0 : y0 + height, x0 : x0 + width]
        else:
            y0, x0 = (height - sh) // 2, (width - sw) // 2
            out[k, y0 : y0 + sh, x0 : x0 + sw] = s
    return out


def _empty(width: int, height: int) -> np.ndarray:
    return np.zeros((0, height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- writing


def video_codec() -> str:
    """The encoder :func:`write_mp4` uses: ``libx264`` if available, else ``mpeg4``."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames shaped [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError("no frames to write")
    return frames


def _rate(fps: float) -> Fraction:
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_mp4(path: PathLike, frames: np.ndarray, fps: float, crf: int = 18) -> None:
    """Encode ``uint8`` frames ``[T, H, W, 3]`` to an H.264 ``yuv420p`` MP4 at ``path``.

    yuv420p needs even dimensions, so an odd width/height is padded by one
    pixel on the right/bottom edge (replicating the last column/row); the file
    is then 1 pixel larger than ``frames`` in that dimension.  If the PyAV
    wheel lacks ``libx264`` the ``mpeg4`` encoder is used instead (``crf`` is
    then ignored in favour of a high fixed quality).  Writes ``path`` directly;
    atomic replacement is the caller's business.
    """
    frames = _check_frames(frames)
    rate = _rate(fps)
    _, h, w, _ = frames.shape
    ph, pw = h % 2, w % 2
    codec = video_codec()
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width = w + pw
        stream.height = h + ph
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # x264's macroblock-tree rate control reads memory it has not
            # written on these short clips (the output changed with glibc's
            # MALLOC_PERTURB_), so it is off: the same frames give the same bytes.
            stream.options = {"crf": str(int(crf)), "x264-params": "mbtree=0"}
        else:
            stream.codec_context.qscale = 2  # type: ignore[attr-defined]
            stream.codec_context.flags |= av.codec.context.Flags.qscale  # type: ignore[attr-defined]
        for f in frames:
            if ph or pw:
                f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            # Convert here rather than letting the encoder do it: PyAV's implicit
            # conversion inside encode() made libx264 output vary run to run.
            vf = vf.reformat(format="yuv420p")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_gif(path: PathLike, frames: np.ndarray, fps: float) -> None:
    """Write frames as a looping GIF (Pillow; per-frame palettes, 10 ms timing units)."""
    frames = _check_frames(frames)
    _rate(fps)
    duration = max(10, round(1000.0 / fps))
    images = [Image.fromarray(f, mode="RGB") for f in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=duration,
        loop=0,
        optimize=False,
    )


def save_frames(path: PathLike, frames: np.ndarray) -> None:
    """Save an array losslessly as ``.npy`` at exactly ``path`` (no suffix is added)."""
    arr = np.asarray(frames)
    if arr.dtype == object:
        raise ValueError("save_frames: object arrays are not supported")
    with open(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def load_frames(path: PathLike) -> np.ndarray:
    """Load an array written by :func:`save_frames`."""
    _check_file(path)
    try:
        with open(path, "rb") as fh:
            return np.load(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MediaError(path, f"not a readable .npy file ({_reason(exc)})") from exc


# --------------------------------------------------------------------------- test media


def make_test_frames(frames: int = 8, width: int = 64, height: int = 64, seed: int = 0) -> np.ndarray:
    """Deterministic ``[frames, height, width, 3]`` clip: a coloured square moving
    diagonally across a smooth gradient.  ``seed`` picks the colours and path."""
    if frames < 1 or width < 1 or height < 1:
        raise ValueError("frames, width and height must be positive")
    rng = np.random.default_rng(seed)
    bg_a, bg_b = rng.integers(0, 256, size=(2, 3))
    colour = rng.integers(64, 256, size=3).astype(np.uint8)
    x0, y0 = rng.uniform(0, 0.25, size=2)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    g = (xx / max(width - 1, 1) + yy / max(height - 1, 1)) / 2.0
    bg = ((1 - g)[..., None] * bg_a + g[..., None] * bg_b).round().astype(np.uint8)

    side = max(1, min(width, height) // 4)
    out = np.repeat(bg[None], frames, axis=0)
    for t in range(frames):
        p = t / max(frames - 1, 1)
        x = round((x0 + p * (0.75 - x0)) * (width - side))
        y = round((y0 + p * (0.75 - y0)) * (height - side))
        out[t, y : y + side, x : x + side] = colour
    return out


def make_test_video(
    path: PathLike,
    frames: int = 8,
    width: int = 64,
    height: int = 64,
    fps: float = 8,
    seed: int = 0,
) -> Path:
    """Write :func:`make_test_frames` to ``path`` as an MP4 and return the path."""
    write_mp4(path, make_test_frames(frames, width, height, seed), fps)
    return Path(path)
