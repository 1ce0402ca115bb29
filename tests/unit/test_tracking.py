"""The tracker adapter: one Kalman step per detector run, whatever the time between runs.

(The motion gate leaves 0.2-2 s between runs; that the person on aboda_video4 keeps one
track through them is checked end to end in test_replay.py.)"""

from __future__ import annotations

import numpy as np
import supervision as sv

from detector.config import TrackerConfig
from detector.tracking import Tracker


def person(box) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([box], np.float32), confidence=np.array([0.8], np.float32), class_id=np.array([0])
    )


def test_track_confirmed_on_second_sighting_and_kept_while_moving():
    tracker = Tracker(TrackerConfig(), analysis_fps=5.0)
    ids = []
    for i in range(7):  # one call per detector run, whatever the gap the motion gate left before it
        out = tracker.update(person([300 + 4 * i, 200, 360 + 4 * i, 380]))
        ids.append(out.tracker_id.tolist())
    assert ids[0] == []  # a track is confirmed on its second sighting
    assert all(len(i) == 1 for i in ids[1:]) and len({i[0] for i in ids[1:]}) == 1, ids


def test_two_people_keep_their_own_ids_and_output_is_sorted():
    tracker = Tracker(TrackerConfig(), analysis_fps=5.0)
    ids_by_side: list[tuple[int, int]] = []  # (id of the one walking left, id of the one walking right)
    for step in range(6):
        both = sv.Detections(
            xyxy=np.array(
                [[500 - 5 * step, 100, 560 - 5 * step, 300], [100 + 5 * step, 120, 160 + 5 * step, 320]], np.float32
            ),
            confidence=np.array([0.9, 0.85], np.float32),
            class_id=np.array([0, 0]),
        )
        out = tracker.update(both)
        assert out.tracker_id.tolist() == sorted(out.tracker_id.tolist())
        if len(out) == 2:
            # boxes stay with their detections: the one starting at x 500 is always right of the other
            right = int(out.xyxy[:, 0].argmax())
            assert out.xyxy[right, 0] > 400 and out.xyxy[1 - right, 0] < 200
            ids_by_side.append((int(out.tracker_id[right]), int(out.tracker_id[1 - right])))
    assert len(ids_by_side) >= 4 and len(set(ids_by_side)) == 1, ids_by_side  # the same two ids throughout
    assert len(set(ids_by_side[0])) == 2


def test_held_boxes_keep_a_person_the_detector_lost_and_only_people():
    """The redactor blurs people the tracker still holds while the detector does not see them."""
    tracker = Tracker(TrackerConfig(), analysis_fps=5.0)
    car = [600, 300, 760, 380]
    for i in range(4):
        both = sv.Detections(
            xyxy=np.array([[300 + 4 * i, 200, 360 + 4 * i, 380], car], np.float32),
            confidence=np.array([0.8, 0.8], np.float32),
            class_id=np.array([0, 2]),
        )
        tracker.update(both)
    assert len(tracker.held_boxes(0)) == 1 and len(tracker.held_boxes(2)) == 1
    empty = sv.Detections(xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32), class_id=np.zeros(0))
    assert len(tracker.update(empty)) == 0  # nobody detected on this frame...
    held = tracker.held_boxes(0)
    assert len(held) == 1  # ...but the person is still held, near where they were going
    assert 300 < (held[0, 0] + held[0, 2]) / 2 < 360 and held[0, 1] < 220
    for _ in range(60):  # a lost track is dropped after its buffer: nothing held for ever
        tracker.update(empty)
    assert len(tracker.held_boxes(0)) == 0


def test_a_lost_person_is_kept_for_lost_track_buffer_s_and_no_longer():
    """`lost_track_buffer_s` is seconds at the analysis rate: a person the detector misses for
    1.6 s (a passer-by in front) comes back under the same id; one missed for 2.4 s is gone.
    (`trackers` counts its buffer in frames at 30 fps: given in analysed frames, a 2 s buffer
    kept a lost person for 2 frames, 0.4 s.)"""
    fps = 5.0
    cfg = TrackerConfig(lost_track_buffer_s=2.0)
    box = [300, 200, 360, 380]
    for missed_s, same in ((1.6, True), (2.4, False)):
        tracker = Tracker(cfg, analysis_fps=fps)
        before = [tracker.update(person(box)).tracker_id.tolist() for _ in range(3)][-1]
        for _ in range(round(missed_s * fps)):
            tracker.update(sv.Detections.empty())
        after = [tracker.update(person(box)).tracker_id.tolist() for _ in range(2)][-1]
        assert len(before) == 1 and len(after) == 1
        assert (after == before) is same, (missed_s, before, after)
