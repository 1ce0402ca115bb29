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
    out = Redactor(PrivacyConfig(head_fraction=0.2), faces).redact(image, person)
    head = (slice(40, 72), slice(100, 160))
    assert np.abs(out[head].astype(int) - image[head]).mean() > 20  # head region changed
    assert np.array_equal(out[100:200, 100:160], image[100:200, 100:160])  # body untouched
    assert np.array_equal(out[:, :90], image[:, :90])
