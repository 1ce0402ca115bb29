"""Face blurring on real images and real footage, checked with the real YuNet model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector.config import PrivacyConfig


@pytest.fixture(scope="module")
def faces(model_dir):
    from detector.privacy import FaceDetector

    return FaceDetector("yunet-dynamic")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def test_astronaut_face_found_before_and_not_after_blur(faces, astronaut):
    from detector.privacy import Redactor

    boxes, scores = faces.detect(astronaut)
    assert len(boxes) == 1 and scores[0] > 0.8
    x1, y1, x2, y2 = boxes[0]
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200  # her face, not elsewhere
    redactor = Redactor(PrivacyConfig(), faces)
    original = astronaut.copy()
    jpeg = redactor.snapshot(astronaut)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert len(faces.detect(decoded)[0]) == 0
    # the blurred area really lost its detail (not just a slight smoothing)
    roi = lambda im: cv2.cvtColor(im[int(y1) : int(y2), int(x1) : int(x2)], cv2.COLOR_BGR2GRAY)  # noqa: E731
    assert cv2.Laplacian(roi(decoded), cv2.CV_64F).var() < 0.05 * cv2.Laplacian(roi(astronaut), cv2.CV_64F).var()
    # the input frame is never modified, not a pixel
    assert np.array_equal(astronaut, original)


def test_large_frame_is_downscaled_for_yunet(faces, astronaut):
    from detector.privacy import Redactor

    big = cv2.resize(astronaut, (2048, 2048))  # face ~ 400 px: beyond YuNet's training range
    assert len(faces.detect(big)[0]) == 1
    assert len(faces.detect(Redactor(PrivacyConfig(), faces).redact(big))[0]) == 0


def test_head_of_person_without_face_is_blurred(faces):
    from detector.privacy import Redactor

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # texture, no face
    person = np.array([[100, 40, 160, 200]], float)
    out = Redactor(PrivacyConfig(), faces).redact(image, person)
    head = (slice(40, 80), slice(100, 160))
    assert np.abs(out[head].astype(int) - image[head]).mean() > 20  # head region changed
    assert np.array_equal(out[100:200, 100:160], image[100:200, 100:160])  # body untouched
    assert np.array_equal(out[:, :85], image[:, :85])


def _tiny_face_scene(astronaut: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]]:
    """A 1280x720 frame with one ~9x10 px face (a walker 30 m away): YuNet misses it at 1x."""
    small = cv2.resize(astronaut, (51, 51), interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 110, np.uint8)
    frame[300:351, 600:651] = small
    return frame, (slice(305, 319), slice(616, 628))


def _detail(image: np.ndarray, where) -> float:
    return cv2.Laplacian(cv2.cvtColor(image[where], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()


def test_tiny_face_with_nothing_known_is_found_at_twice_the_size_and_blurred(faces, astronaut):
    """A face too small for 1x can be anywhere (someone standing still, missed by the detector,
    outside any moving region): a frame within `face_pixels` at 2x is searched whole at 2x."""
    from detector.privacy import Redactor, Seen

    frame, face = _tiny_face_scene(astronaut)
    assert len(faces.detect(frame, 1.0)[0]) == 0 and len(faces.detect(frame, 2.0)[0]) == 1  # the premise
    assert PrivacyConfig().face_pixels >= 4 * frame.shape[0] * frame.shape[1]
    out = Redactor(PrivacyConfig(), faces).redact(frame, Seen(time_s=0.0))
    assert _detail(out, face) < 0.1 * _detail(frame, face)


def test_frame_beyond_the_budget_searches_people_and_motion_at_twice_the_size(faces, astronaut):
    """On a frame too large to search whole at 2x within `face_pixels`, the regions where people
    may be are searched at 2x, however tall (a close walker's box can hide someone small behind
    it), and a face found there is blurred on the next frames for `carry_s`, not for ever."""
    from detector.privacy import Redactor, Seen

    frame, face = _tiny_face_scene(astronaut)
    cfg = PrivacyConfig(face_pixels=1280 * 720)  # this frame at 1x only
    redactor = Redactor(cfg, faces)
    assert _detail(redactor.redact(frame, Seen(time_s=0.0)), face) > 0.5 * _detail(frame, face)  # 1x misses it
    redactor = Redactor(cfg, faces)
    close_walker = np.array([[620, 0, 760, 700]], np.float32)  # 700 px tall; the tiny face well below its head
    out = redactor.redact(frame, Seen(time_s=0.0, people=close_walker))
    assert _detail(out, face) < 0.1 * _detail(frame, face)
    redactor = Redactor(cfg, faces)
    moving = np.array([[590, 290, 660, 420]], np.float32)  # wider than tall: no head-region blur, search only
    out = redactor.redact(frame, Seen(time_s=0.0, moving=moving))
    assert _detail(out, face) < 0.1 * _detail(frame, face)
    # the face stays blurred on the next frame even if nothing is reported there any more
    out = redactor.redact(frame, Seen(time_s=0.2))
    assert _detail(out, face) < 0.1 * _detail(frame, face)
    # ...but not for ever: a minute later, with nothing to go on, the 1x search misses it
    assert _detail(redactor.redact(frame, Seen(time_s=60.0)), face) > 0.5 * _detail(frame, face)


def test_snapshot_searches_the_whole_frame_at_twice_the_size(faces, astronaut):
    from detector.privacy import Redactor

    frame, face = _tiny_face_scene(astronaut)
    jpeg = Redactor(PrivacyConfig(), faces).snapshot(frame)  # nothing known about the frame
    out = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert _detail(out, face) < 0.1 * _detail(frame, face)


class _Counting:
    """The real face detector, recording the size of each image it is given at more than 1x."""

    def __init__(self, faces) -> None:
        self.faces, self.enlarged = faces, []

    def detect(self, image, scale=None):
        if scale is not None and scale > 1:
            self.enlarged.append(image.shape[:2])
        return self.faces.detect(image, scale)


def test_enlarged_search_covers_what_changed_since_the_last_whole_search(faces, astronaut):
    """Consecutive frames of one camera: the 2x search runs whole once, then only where the frame
    changed since; a tiny face appearing later (someone walking in) is found there, and one found
    by the whole search stays blurred while its pixels stay the same, long after `carry_s`."""
    from detector.privacy import Redactor, Seen

    frame, face = _tiny_face_scene(astronaut)
    empty = np.full_like(frame, 110)
    counting = _Counting(faces)
    redactor = Redactor(PrivacyConfig(), counting)
    redactor.redact(empty, Seen(time_s=0.0))
    assert counting.enlarged == [empty.shape[:2]]  # the first frame: whole
    for t in (0.2, 0.4, 60.0):  # the face appears and stays, nothing else known about it
        counting.enlarged.clear()
        out = redactor.redact(frame, Seen(time_s=t))
        assert _detail(out, face) < 0.1 * _detail(frame, face)
        # searched at 2x in a crop around the change only (its 51 px and the context around it)
        assert len(counting.enlarged) == 1 and counting.enlarged[0][0] * counting.enlarged[0][1] < 200 * 200
    redactor = Redactor(PrivacyConfig(), counting)
    redactor.redact(frame, Seen(time_s=0.0))  # found by the whole search
    counting.enlarged.clear()
    out = redactor.redact(frame, Seen(time_s=60.0))
    assert counting.enlarged == []  # nothing changed: nothing searched at 2x again...
    assert _detail(out, face) < 0.1 * _detail(frame, face)  # ...and the face is still blurred
    # a snapshot (rare, sent out) searches the whole frame anyway
    counting.enlarged.clear()
    redactor.snapshot(frame, Seen(time_s=60.2))
    assert counting.enlarged == [frame.shape[:2]]
