"""Where the redactor blurs (pure geometry, no model) and the H.264 video writer."""

from __future__ import annotations

import av
import numpy as np
import pytest

from detector.privacy import face_regions, head_region, merge_rects


def test_upright_person_gets_the_top_of_its_box_and_a_margin():
    x1, y1, x2, y2 = head_region((100, 40, 160, 220))  # 60 x 180: a pedestrian seen from the side
    assert x1 < 100 and x2 > 160  # wider than the box (detector boxes are not tight on heads)
    assert y1 < 40  # and above it
    assert 40 + 0.25 * 180 <= y2 < 40 + 0.5 * 180  # the head and neck, not the body


def test_upper_body_cut_off_gets_a_head_as_big_as_its_width():
    # 80 x 110: someone behind a desk; a fixed top fifth (22 px) would cut the face in half
    _, _, _, y2 = head_region((0, 100, 80, 210))
    assert y2 - 100 >= 0.75 * 80


@pytest.mark.parametrize("box", [(0, 0, 100, 100), (0, 0, 200, 90), (50, 50, 130, 140)])
def test_squat_box_is_blurred_whole(box):
    # seen from above or through a fisheye, seated, crouching, lying: the head can be anywhere
    x1, y1, x2, y2 = head_region(box)
    assert x1 <= box[0] and y1 <= box[1] and x2 >= box[2] and y2 >= box[3]


def test_a_tiny_face_is_blurred_over_a_region_twice_its_size_a_large_one_with_its_margin():
    faces = np.array([[100, 10, 106, 17], [200, 200, 300, 320]], np.float32)  # 6x7 px (far away) and 100x120
    tiny, large = face_regions(faces, 0.3)
    assert tiny[2] - tiny[0] >= 16 and tiny[3] - tiny[1] >= 16  # its edge well outside the face
    assert tiny[0] < 100 - 4 and tiny[2] > 106 + 4 and tiny[1] < 10 - 4 and tiny[3] > 17 + 4
    assert np.allclose(large, [170, 164, 330, 356])  # 30% of its size on every side, nothing more


def test_merge_rects_unions_overlaps_clips_and_sorts():
    boxes = np.array([[50, 50, 100, 100], [90, 90, 150, 140], [-10, 300, 30, 330], [400, 10, 402, 12]], np.float32)
    assert merge_rects(boxes, 320, 320) == [(0, 300, 30, 320), (50, 50, 150, 140)]  # tiny one dropped


def _write(path, frames, fps=5.0):
    from detector.replay import H264Writer

    w = H264Writer(path, frames[0].shape[1], frames[0].shape[0], fps)
    for f in frames:
        w.write(f)
    w.close()


def test_video_is_h264_yuv420p_deterministic_and_odd_sizes_are_padded(tmp_path):
    ramp = np.linspace(0, 200, 161, dtype=np.uint8)[None, :, None].repeat(121, 0).repeat(3, 2)
    frames = []
    for i in range(12):  # a white square moving right over a grey ramp
        f = ramp.copy()
        f[40:80, 10 * i : 10 * i + 40] = 255
        frames.append(f)
    _write(tmp_path / "a.mp4", frames)
    _write(tmp_path / "b.mp4", frames)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    with av.open(str(tmp_path / "a.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"  # what browsers play
        assert (s.codec_context.width, s.codec_context.height) == (162, 122)
        decoded = [f.to_ndarray(format="bgr24") for f in c.decode(s)]
        rate = float(s.average_rate)  # read while open: newer PyAV refuses a closed container's streams
    assert len(decoded) == 12
    assert abs(rate - 5.0) < 1e-6
    # the content is the frames written (lossy, but close), in order, not a blank or shifted picture
    for i in (0, 3, 11):
        assert np.abs(decoded[i][:121, :161].astype(int) - frames[i]).mean() < 6


def test_unwritable_video_is_one_clear_error(tmp_path):
    from detector.protocol.errors import UserError
    from detector.replay import H264Writer

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write video"):
        H264Writer(blocker / "x.mp4", 64, 64, 5.0)
