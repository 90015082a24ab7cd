"""Video/image I/O in recut.video."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engines.common.metrics import psnr
from recut import video as V
from recut.video import MediaError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 24-frame 24 fps test video and its decoded frames."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    V.make_test_video(path, frames=24, width=64, height=48, fps=24, seed=1)
    frames, fps = V.read_video(path)
    return path, frames, fps


# ------------------------------------------------------------------ round trip


def test_round_trip(tmp_path):
    src = V.make_test_frames(10, 64, 48, seed=0)
    path = tmp_path / "out.mp4"
    V.write_mp4(path, src, fps=12)
    info = V.probe(path)
    assert info == V.VideoInfo(frames=10, fps=12.0, width=64, height=48)
    frames, fps = V.read_video(path)
    assert frames.shape == (10, 48, 64, 3) and frames.dtype == np.uint8
    assert fps == 12.0
    assert psnr(frames, src) > 30


def test_round_trip_fractional_fps_and_odd_size(tmp_path):
    src = V.make_test_frames(6, 61, 45, seed=2)
    path = tmp_path / "odd.mp4"
    V.write_mp4(path, src, fps=29.97)
    frames, fps = V.read_video(path)
    # Odd sizes are padded by one pixel on the right/bottom.
    assert frames.shape == (6, 46, 62, 3)
    assert fps == pytest.approx(29.97, abs=1e-3)
    assert psnr(frames[:, :45, :61], src) > 30


def test_codec_is_h264(clip):
    import av

    assert V.video_codec() == "libx264"
    with av.open(str(clip[0])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_make_test_video_is_deterministic(tmp_path):
    for seed in range(4):
        blobs = {V.make_test_video(tmp_path / f"{seed}_{i}.mp4", seed=seed).read_bytes() for i in range(3)}
        assert len(blobs) == 1, f"seed {seed}: encoder output varies between runs"
    # Memory the encoder has not written must not reach the file: glibc fills
    # fresh and freed heap memory with MALLOC_PERTURB_'s byte.
    code = "import sys, recut.video as V; V.make_test_video(sys.argv[1], seed=int(sys.argv[2]))"
    for seed in (1, 3):
        outs = set()
        for perturb in ("0", "165"):
            out = tmp_path / f"perturb{perturb}_{seed}.mp4"
            env = {**os.environ, "MALLOC_PERTURB_": perturb}
            subprocess.run([sys.executable, "-c", code, str(out), str(seed)], check=True, env=env)
            outs.add(out.read_bytes())
        assert len(outs) == 1, f"seed {seed}: the encoder's output depends on uninitialised memory"
    a = tmp_path / "3_0.mp4"
    assert V.probe(a) == V.VideoInfo(frames=8, fps=8.0, width=64, height=64)
    assert not np.array_equal(V.make_test_frames(seed=3), V.make_test_frames(seed=4))
    # The square moves.
    f = V.make_test_frames()
    assert not np.array_equal(f[0], f[-1])


# ------------------------------------------------------------------ sampling


def test_sampling_start_count_stride(clip):
    path, all_frames, src_fps = clip
    assert all_frames.shape[0] == 24 and src_fps == 24.0
    x, fps = V.read_video(path, start=2, count=5, stride=3)
    assert np.array_equal(x, all_frames[2:15:3]) and fps == 8.0
    x, fps = V.read_video(path, start=20)
    assert np.array_equal(x, all_frames[20:]) and fps == 24.0
    x, fps = V.read_video(path, stride=5)
    assert np.array_equal(x, all_frames[::5]) and fps == pytest.approx(4.8)
    x, _ = V.read_video(path, count=1)
    assert np.array_equal(x, all_frames[:1])
    # Exactly enough frames: last requested index 23.
    x, _ = V.read_video(path, start=3, count=11, stride=2)
    assert np.array_equal(x, all_frames[3:24:2])


def test_sampling_fps(clip):
    path, all_frames, _ = clip
    x, fps = V.read_video(path, fps=8)
    assert fps == 8.0 and np.array_equal(x, all_frames[::3])
    x, fps = V.read_video(path, start=1, fps=12, count=4)
    assert fps == 12.0 and np.array_equal(x, all_frames[[1, 3, 5, 7]])
    # Upsampling repeats the nearest frame (ties round up).
    x, fps = V.read_video(path, fps=48, count=6)
    assert fps == 48.0 and np.array_equal(x, all_frames[[0, 1, 1, 2, 2, 3]])
    # fps overrides stride.
    x, _ = V.read_video(path, fps=8, stride=5)
    assert x.shape[0] == 8


def test_sampling_argument_validation(clip):
    for kw in ({"start": -1}, {"count": 0}, {"stride": 0}, {"fps": 0}):
        with pytest.raises(ValueError):
            V.read_video(clip[0], **kw)


# ------------------------------------------------------------------ errors


def _assert_names(exc_info, path, text):
    msg = str(exc_info.value)
    assert msg.startswith(f"{path}: "), msg
    assert text in msg, msg


def test_missing_file(tmp_path):
    p = tmp_path / "nope.mp4"
    for fn in (V.read_video, V.probe, V.read_image, V.load_frames):
        with pytest.raises(MediaError) as e:
            fn(p)
        _assert_names(e, p, "file not found")
    assert isinstance(e.value, ValueError)


def test_directory(tmp_path):
    with pytest.raises(MediaError) as e:
        V.read_video(tmp_path)
    _assert_names(e, tmp_path, "directory")


def test_corrupt_file(tmp_path):
    p = tmp_path / "junk.mp4"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    for fn in (V.read_video, V.probe):
        with pytest.raises(MediaError) as e:
            fn(p)
        _assert_names(e, p, "not a readable video (")


def test_truncated_file(tmp_path, clip):
    p = tmp_path / "cut.mp4"
    p.write_bytes(clip[0].read_bytes()[:200])
    with pytest.raises(MediaError) as e:
        V.read_video(p)
    assert str(e.value).startswith(f"{p}: ")


def test_zero_frames(tmp_path):
    import av

    p = tmp_path / "empty.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        c.start_encoding()
    for fn in (V.read_video, V.probe):
        with pytest.raises(MediaError) as e:
            fn(p)
        _assert_names(e, p, "contains no video frames")


def test_too_few_frames(clip):
    path = clip[0]
    with pytest.raises(MediaError) as e:
        V.read_video(path, count=20, stride=2)
    _assert_names(
        e,
        path,
        "has 24 frames, but the spec asks for frames 0..40 (start 0, count 20, stride 2)",
    )
    with pytest.raises(MediaError) as e:
        V.read_video(path, start=24)
    _assert_names(e, path, "has 24 frames")
    with pytest.raises(MediaError) as e:
        V.read_video(path, fps=8, count=9)
    _assert_names(e, path, "has 24 frames, but the spec asks for frames 0..25")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_no_leaked_file_handles(tmp_path, clip):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 1000)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        V.read_video(clip[0], count=2)
        V.probe(clip[0])
        for kw in ({"count": 99},):
            with pytest.raises(MediaError):
                V.read_video(clip[0], **kw)
        with pytest.raises(MediaError):
            V.read_video(junk)
    assert len(os.listdir("/proc/self/fd")) == before


# ------------------------------------------------------------------ images


def test_read_image_modes(tmp_path):
    rgb = V.make_test_frames(1, 20, 10)[0]
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(V.read_image(tmp_path / "a.png"), rgb)

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    got = V.read_image(tmp_path / "b.png")
    assert got.shape == (10, 20, 3) and np.array_equal(got, rgb)

    grey = rgb[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "c.png")
    got = V.read_image(tmp_path / "c.png")
    assert got.dtype == np.uint8 and np.array_equal(got, np.dstack([grey] * 3))

    Image.fromarray(rgb).save(tmp_path / "d.jpg", quality=95)
    got = V.read_image(tmp_path / "d.jpg")
    assert got.shape == (10, 20, 3)


def test_read_image_corrupt(tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(b"not an image at all")
    with pytest.raises(MediaError) as e:
        V.read_image(p)
    _assert_names(e, p, "not a readable image")
    # A truncated PNG.
    rgb = V.make_test_frames(1, 32, 32)[0]
    good = tmp_path / "good.png"
    Image.fromarray(rgb).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(MediaError) as e:
        V.read_image(cut)
    _assert_names(e, cut, "not a readable image")


def test_read_images_resizes_to_first(tmp_path):
    a = V.make_test_frames(1, 20, 10, seed=0)[0]
    b = V.make_test_frames(1, 40, 20, seed=1)[0]
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    out = V.read_images([tmp_path / "a.png", tmp_path / "b.png"])
    assert out.shape == (2, 10, 20, 3) and out.dtype == np.uint8
    assert np.array_equal(out[0], a)
    with pytest.raises(ValueError):
        V.read_images([])


# ------------------------------------------------------------------ fit_frames


def _halves(h, w):
    """One frame, left half red, right half blue."""
    f = np.zeros((1, h, w, 3), np.uint8)
    f[0, :, : w // 2, 0] = 255
    f[0, :, w // 2 :, 2] = 255
    return f


def test_fit_crop():
    out = V.fit_frames(_halves(20, 40), 20, 20, "crop")
    assert out.shape == (1, 20, 20, 3)
    assert (out[0, :, :10, 0] == 255).all() and (out[0, :, :10, 2] == 0).all()
    assert (out[0, :, 10:, 2] == 255).all() and (out[0, :, 10:, 0] == 0).all()
    # Enlarging: 10x20 -> cover 40x40 (scaled to 40x80, center-cropped).
    out = V.fit_frames(_halves(10, 20), 40, 40, "crop")
    assert out.shape == (1, 40, 40, 3)
    assert (out[0, :, :15, 0] == 255).all() and (out[0, :, 25:, 2] == 255).all()


def test_fit_stretch():
    out = V.fit_frames(_halves(20, 40), 10, 30, "stretch")
    assert out.shape == (1, 30, 10, 3)
    assert (out[0, :, :4, 0] == 255).all() and (out[0, :, 6:, 2] == 255).all()


def test_fit_pad():
    src = _halves(20, 40)
    out = V.fit_frames(src, 40, 40, "pad")
    assert out.shape == (1, 40, 40, 3)
    assert (out[0, :10] == 0).all() and (out[0, 30:] == 0).all()
    assert np.array_equal(out[0, 10:30], src[0])
    out = V.fit_frames(src, 30, 10, "pad")  # fit 20x40 into 10x30 -> 10x20
    assert out.shape == (1, 10, 30, 3)
    assert (out[0, :, :5] == 0).all() and (out[0, :, 25:] == 0).all()
    assert (out[0, :, 5:14, 0] == 255).all()


def test_fit_identity_and_validation():
    f = V.make_test_frames(3, 16, 8)
    out = V.fit_frames(f, 16, 8)
    assert np.array_equal(out, f) and out is not f
    with pytest.raises(ValueError):
        V.fit_frames(f, 8, 8, "zoom")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        V.fit_frames(f[0], 8, 8)
    with pytest.raises(ValueError):
        V.fit_frames(f, 0, 8)


# ------------------------------------------------------------------ other writers


def test_write_gif(tmp_path):
    src = V.make_test_frames(4, 32, 24)
    p = tmp_path / "a.gif"
    V.write_gif(p, src, fps=10)
    with Image.open(p) as im:
        assert im.n_frames == 4 and im.size == (32, 24)
        assert im.info["duration"] == 100


def test_save_load_frames_lossless(tmp_path):
    src = V.make_test_frames(3, 17, 9)
    p = tmp_path / "frames.bin"  # no .npy suffix is added
    V.save_frames(p, src)
    assert p.exists()
    back = V.load_frames(p)
    assert back.dtype == np.uint8 and np.array_equal(back, src)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"garbage")
    with pytest.raises(MediaError) as e:
        V.load_frames(bad)
    _assert_names(e, bad, "not a readable .npy file")


def test_writers_reject_bad_frames(tmp_path):
    with pytest.raises(ValueError):
        V.write_mp4(tmp_path / "x.mp4", np.zeros((0, 8, 8, 3), np.uint8), 8)
    with pytest.raises(ValueError):
        V.write_mp4(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), 8)
    with pytest.raises(ValueError):
        V.write_mp4(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.uint8), 0)


def test_frames_selected_counts_what_read_video_returns(clip):
    """Validation counts an input's frames without decoding it: the same count as the decode, for
    strides and for fps resampling up and down."""
    path, _, _ = clip
    info = V.probe(path)
    for start in (0, 1, 5, 23):
        for stride, fps in [(1, None), (3, None), (7, None), (1, 8.0), (1, 5.0), (1, 24.0), (1, 30.0), (1, 60.0)]:
            got = V.frames_selected(info, start, stride, fps)
            x, _ = V.read_video(path, start=start, stride=stride, fps=fps)
            assert got == len(x), (start, stride, fps)
    assert V.frames_selected(info, 24) == 0 and V.frames_selected(info, 30, fps=8.0) == 0
