"""The act recogniser's state machine on constructed frames, and the whole pipeline on real clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.config import Settings
from detector.scene import StaticObject

BAG = (400, 300, 440, 340)


def bag(since: float, key: int = 1, change: str = "added", cls: str = "unknown", scenery: bool = False) -> StaticObject:
    return StaticObject(key, BAG, since, change, cls, scenery, 0.005)


# -- the whole pipeline on real clips (each a few seconds) -------------------------------------------


def _acts(clip: Path):
    from detector.replay import iterate

    return [a for r in iterate(clip, Settings()) for a in r.acts if a.is_act]  # not found/vanished


def _centre_dist(a, b) -> float:
    return ((a[0] + a[2] - b[0] - b[2]) ** 2 + (a[1] + a[3] - b[1] - b[3]) ** 2) ** 0.5 / 2


def test_aboda_video4_one_left_bag(footage_dir: Path, model_dir: Path):
    acts = _acts(footage_dir / "aboda_video4.avi")
    assert [a.kind for a in acts] == ["littering"]
    assert 8.0 <= acts[0].t_notify <= 23.0
    assert _centre_dist(acts[0].box, (448, 360, 510, 415)) < 30


def test_pets2009_negative(footage_dir: Path, model_dir: Path):
    assert _acts(footage_dir / "pets2009_vtest_480x360.avi") == []


def _altered_copy(src: Path, dst: Path, from_s: float, change, to_s: float = float("inf")) -> Path:
    """`src` re-encoded with `change` applied to every frame from `from_s` on (until `to_s`)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.write(change(frame) if from_s <= i / fps < to_s else frame)
        i += 1
    cap.release()
    out.release()
    return dst


def _relit_copy(src: Path, dst: Path, from_s: float, left: float, right: float) -> Path:
    """The lights changed from `from_s` on: a gain running from `left` to `right` across the view."""

    def relit(frame):
        gain = np.linspace(left, right, frame.shape[1], dtype=np.float32)[None, :, None]
        return np.clip(frame * gain, 0, 255).astype(np.uint8)

    return _altered_copy(src, dst, from_s, relit)


def test_aboda_bag_found_when_the_lights_dim_before_it_is_litter(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # Dimmed to 40-50% at 16 s, between the bag being set down (13 s) and the owner leaving.
    clip = _relit_copy(footage_dir / "aboda_video4.avi", tmp_path / "dimmed.mp4", 16.0, 0.4, 0.5)
    acts = _acts(clip)
    assert [a.kind for a in acts] == ["littering"]
    assert 8.0 <= acts[0].t_notify <= 23.0
    assert _centre_dist(acts[0].box, (448, 360, 510, 415)) < 30


def test_an_exposure_step_as_a_white_car_drives_in_keeps_scene_memory(footage_dir: Path, model_dir: Path):
    """The overhead car park: a white car driving in at 26.8 s makes the camera's auto-exposure
    step (most of the view changes, gain about 1.5). A smooth light explains all of it but the
    car (about a fifth of the view), which used to make the step look like a turned camera: the
    models started afresh three times in three seconds, forgetting every candidate, owner and
    litter ground. What the detector sees (here the car, named a cell phone from above) is not
    held against the light."""
    from detector.replay import iterate

    clip = footage_dir / "parkinglot_overhead_car-detection.mp4"
    views = [r.scene for r in iterate(clip, Settings(source={"max_seconds": 30.0}))]
    assert any(v.relit for v in views if 26.0 <= v.time_s <= 28.0)
    assert not any(v.reset for v in views)


def test_pets2009_lights_changing_is_still_negative(footage_dir: Path, model_dir: Path, tmp_path: Path):
    clip = _relit_copy(footage_dir / "pets2009_vtest_480x360.avi", tmp_path / "pets.mp4", 20.0, 1.4, 1.6)
    assert _acts(clip) == []


def _knocked_copy(src: Path, dst: Path, from_s: float, dx: int, dy: int) -> Path:
    """The camera knocked by (dx, dy) pixels from `from_s` on."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return _altered_copy(
        src, dst, from_s, lambda f: cv2.warpAffine(f, m, f.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    )


def test_aboda_camera_knocked_before_the_bag_is_litter(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # Knocked 24 px right, 12 down at 17 s: before, every edge in view became a "static object"
    # (six false acts); now the one bag is found, where it lies in the knocked view.
    acts = _acts(_knocked_copy(footage_dir / "aboda_video4.avi", tmp_path / "knocked.mp4", 17.0, 24, 12))
    assert [a.kind for a in acts] == ["littering"]
    assert _centre_dist(acts[0].box, (448 + 24, 360 + 12, 510 + 24, 415 + 12)) < 30


def test_pets2009_camera_knocked_is_still_negative(footage_dir: Path, model_dir: Path, tmp_path: Path):
    assert _acts(_knocked_copy(footage_dir / "pets2009_vtest_480x360.avi", tmp_path / "pets.mp4", 30.0, 6, 3)) == []


def test_aboda_cycle_littering_then_cleanup(footage_dir: Path, model_dir: Path):
    acts = _acts(footage_dir / "aboda_video4_cycle.mp4")
    assert [a.kind for a in acts] == ["littering", "cleanup"]
    assert acts[0].litter_id == acts[1].litter_id
    assert 8.0 <= acts[0].t_notify <= 23.0 and 63.5 <= acts[1].t_notify <= 75.0


def test_intel_shelf_three_pick_ups_three_cleanups(footage_dir: Path, model_dir: Path):
    # A hand takes the left bottle (6 s), later the left and middle ones together (16 s),
    # then the right one (31 s); put-backs in between are no acts.
    # The clear left bottle, put back and then taken again in the second grab, barely differs
    # from the grey wall behind it: that grab is reported by the middle bottle alone.
    acts = _acts(footage_dir / "intel_bottle-detection.mp4")
    assert [a.kind for a in acts] == ["cleanup"] * 3
    assert [t0 <= a.t_notify <= t0 + 10 for a, t0 in zip(acts, (6.0, 16.0, 31.0))] == [True] * 3
    assert [(a.box[0] + a.box[2]) // 2 // 200 for a in acts] == [0, 1, 2]  # left, middle, right bottle


def _shaker():
    """A frame edit that moves the whole view by up to 1% of its width, afresh on every frame."""
    rng = np.random.default_rng(0)

    def shake(frame: np.ndarray) -> np.ndarray:
        dx, dy = rng.uniform(-0.01, 0.01, 2) * frame.shape[1]
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        return cv2.warpAffine(frame, m, frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)

    return shake


def test_a_shaking_camera_invents_no_clean_up(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The whole view jitters by up to 1% of its width on every frame (a camera on a pole in the
    # wind). Before: a spot the walker crossed, and later the left bag itself, looked "taken
    # away" in their smeared pixels, and gave two clean-ups of things nobody picked up.
    shake = _shaker()
    acts = _acts(_altered_copy(footage_dir / "aboda_video4.avi", tmp_path / "shaking.mp4", 0.0, shake))
    assert [a.kind for a in acts if a.kind == "cleanup"] == []


def test_a_shaking_camera_over_a_crowd_invents_no_clean_up(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The overhead crowd jittered the same way. Judged against the models, a shaking camera was
    # not seen there (people moving everywhere, and models blurred by the shake, leave no shift
    # that explains the change), and a smeared spot looked "taken away" by the walkers on it.
    # Between consecutive frames, people aside, the shake shows.
    shake = _shaker()
    from clip_edits import Clip

    crowd = Clip.read(footage_dir / "crowd_overhead_vtest.avi")
    shaken = Clip(tuple(shake(f) for f in crowd.frames), crowd.fps).write(tmp_path / "crowd.mp4")
    assert _acts(shaken) == []


def test_the_lobby_at_half_size_gives_no_act(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The fisheye office lobby at 320x180 (a substream). The head and shoulders of a man standing
    # among others, whom the detector keeps losing, became a static region; a neighbour's feet
    # were at its bottom, and it was "littering" once he had gone. A thing put down lies at its
    # owner's feet, not up inside someone's box.
    def half(frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)

    from clip_edits import Clip

    lobby = Clip.read(footage_dir / "office_lobby_fisheye_cctv.mp4")
    halved = Clip(tuple(half(f) for f in lobby.frames), lobby.fps).write(tmp_path / "lobby_half.mp4")
    assert _acts(halved) == []


def test_the_lobby_lights_up_gives_no_act(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The lights go up by half at 8.6 s (a gain from 1.6 to 1.4 across the view): the bright
    # lobby saturates, and places one smooth gain cannot explain began to differ with the light.
    # Before: one of them looked "taken away" by a man walking by, a clean-up of nothing.
    lobby = _relit_copy(footage_dir / "office_lobby_fisheye_cctv.mp4", tmp_path / "lobby.mp4", 8.6, 1.6, 1.4)
    assert _acts(lobby) == []


def test_the_lobby_at_two_frames_a_second_gives_no_act(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The fisheye office lobby kept at 2 frames a second. A man stands at the right through the
    # warm-up, which the detector misses at that rate, and walks off: his place looks as if
    # something was taken away, and he was its "taker". Nothing was seen lying there before.
    from clip_edits import Clip

    from detector.sources import FileSource

    frames = FileSource(footage_dir / "office_lobby_fisheye_cctv.mp4", 2.0)
    lobby = Clip(tuple(f.image for f in frames), 2.0).write(tmp_path / "lobby_2fps.mp4")
    assert _acts(lobby) == []


def test_aboda_cycle_in_heavy_jpeg_still_has_both_acts(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # Littering then clean-up, every frame JPEG-compressed at quality 15. The bag came to lie
    # where the woman had just stood, and its region took over that earlier change's place:
    # its owner was looked for only before the earlier change began, and nobody owned it.
    from clip_edits import Clip

    def jpeg(frame: np.ndarray) -> np.ndarray:
        return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_COLOR)

    cycle = Clip.read(footage_dir / "aboda_video4_cycle.mp4")
    compressed = Clip(tuple(jpeg(f) for f in cycle.frames), cycle.fps).write(tmp_path / "cycle_jpeg.mp4")
    assert [a.kind for a in _acts(compressed)] == ["littering", "cleanup"]


def test_aboda_bag_left_under_a_keyframe_pulse_has_its_owner(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # A low-bitrate stream: sharp at each keyframe (every 2 s), then blurring into blocks (JPEG
    # quality 70 falling to 15). Scene memory's region for the man's passing, left of the bag,
    # slid onto the bag when he put it down and kept its older start (10.4 s, when he was
    # still walking in at the bottom of the view): the owner, looked for only then, was
    # not found. Most of the region's pixels began to differ at the put-down (13.2 s).
    from clip_edits import Clip

    def pulse(frame: np.ndarray, t: float) -> np.ndarray:
        quality = round(70 - 55 * (t % 2.0) / 2.0)
        return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)

    cycle = Clip.read(footage_dir / "aboda_video4_cycle.mp4").cut(0.0, 30.0)
    pulsed = Clip(tuple(pulse(f, i / cycle.fps) for i, f in enumerate(cycle.frames)), cycle.fps)
    acts = _acts(pulsed.write(tmp_path / "cycle_pulse.mp4"))
    assert [a.kind for a in acts] == ["littering"]
    assert _centre_dist(acts[0].box, (448, 360, 510, 415)) < 30


def _shadowed(footage_dir: Path, dst: Path, t0: float, t1: float) -> Path:
    """aboda_video4 with a dark patch on the paving (a shadow, a wet stain) from t0 to t1 s,
    where the man walking off crosses at about 20 s."""
    x1, y1, x2, y2 = 318, 384, 362, 406

    def shadow(frame: np.ndarray) -> np.ndarray:
        frame = frame.copy()
        frame[y1:y2, x1:x2] = (frame[y1:y2, x1:x2] * 0.55).astype(np.uint8)
        return frame

    return _altered_copy(footage_dir / "aboda_video4.avi", dst, t0, shadow, t1)


def test_a_shadow_moving_off_where_someone_walked_is_no_clean_up(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The patch lies there from the first frame and goes at 26 s with nobody near: the ground
    # looks as if something was taken away. Before: the man crossing the spot 5 s later was
    # taken for its taker, and a clean-up of nothing reported.
    acts = _acts(_shadowed(footage_dir, tmp_path / "shadow.mp4", 0.0, 26.0))
    assert [a.kind for a in acts] == ["littering"]  # the bag, as in the untouched clip


def test_a_shadow_falling_where_someone_walked_is_no_littering(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The patch comes at 24 s, 4 s after the man crossed the spot, with nobody near. Before: he
    # was taken for its owner (looked for 4 s back), and it was littering once he had gone.
    acts = _acts(_shadowed(footage_dir, tmp_path / "shadow.mp4", 24.0, 99.0))
    assert [a.kind for a in acts] == ["littering"]
    assert _centre_dist(acts[0].box, (448, 360, 510, 415)) < 30  # the bag


def test_a_chair_foot_restless_for_seconds_is_no_littering(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The fisheye office lobby kept by a recorder at 1 frame a second: beside a woman seated at a
    # desk (the detector misses her), the foot of her chair changes for 14 s before it is seen
    # still, with nobody over it. Before: a passer-by of the first seconds was its owner, and it
    # was littering. A thing put down comes to rest at once.
    from clip_edits import Clip

    from detector.sources import FileSource

    frames = FileSource(footage_dir / "office_lobby_fisheye_cctv.mp4", 1.0)
    lobby = Clip(tuple(f.image for f in frames), 1.0).write(tmp_path / "lobby_1fps.mp4")
    assert _acts(lobby) == []


# -- failure classes of unseen footage (issue 10), on real clips edited (tests/clip_edits.py) -------


def _scenario(name: str, footage_dir: Path, tmp_path: Path):
    import clip_edits

    clip, events = clip_edits.SCENARIOS[name](footage_dir)
    return _acts(clip.write(tmp_path / f"{name}.mp4")), events


def test_owner_standing_by_the_bag_half_a_minute_then_leaving(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # Before: the bag was absorbed into the background while he stood there, and his own
    # ghost gave a clean-up. The act is him walking away: notified within 10 s of it.
    acts, (event,) = _scenario("long_attended", footage_dir, tmp_path)
    assert [a.kind for a in acts] == ["littering"]
    assert event["t_start"] <= acts[0].t_notify <= event["t_start"] + 10.0
    assert _centre_dist(acts[0].box, event["where"]["box"]) < 30


def test_person_half_out_of_view_at_the_border_is_no_act(footage_dir: Path, model_dir: Path, tmp_path: Path):
    acts, (event,) = _scenario("edge_occluder", footage_dir, tmp_path)
    assert [a.kind for a in acts] == ["littering"]
    assert _centre_dist(acts[0].box, event["where"]["box"]) < 30


def test_a_lorry_standing_in_view_is_no_act(footage_dir: Path, model_dir: Path, tmp_path: Path):
    acts, (event,) = _scenario("lorry_stops", footage_dir, tmp_path)
    assert [a.kind for a in acts] == ["littering"]
    assert _centre_dist(acts[0].box, event["where"]["box"]) < 30


def test_bag_left_taken_put_back_and_taken_again(footage_dir: Path, model_dir: Path, tmp_path: Path):
    # One littering act (the put-back re-arms the same litter), one clean-up per pick-up.
    acts, events = _scenario("putback_loop", footage_dir, tmp_path)
    assert [a.kind for a in acts] == ["littering", "cleanup", "cleanup"]
    assert len({a.litter_id for a in acts}) == 1
    pickups = [e["t_start"] for e in events if e["type"] == "pickup"]
    assert [t0 <= a.t_notify <= t0 + 10.0 for a, t0 in zip(acts[1:], pickups)] == [True, True]


@pytest.mark.parametrize("name", ["sun_on_litter", "shade_on_litter"])
def test_light_falling_on_litter_and_its_ground_keeps_it_watched(
    name: str, footage_dir: Path, model_dir: Path, tmp_path: Path
):
    # The sun (1.5x, 35-50 s) or a shadow (0.6x, from 35 s on) over the ground around the left
    # bag, too small a part of the view to be a change of light. Before: the bag looked gone
    # while it lay there (the sun: it "vanished" at 48.6 s, its clean-up never came) or still
    # there once taken (the shadow dims its contrast; no clean-up). Its look is now judged in
    # the light it was taken in, as the ground around it tells.
    acts, (_, taken) = _scenario(name, footage_dir, tmp_path)
    assert [a.kind for a in acts] == ["littering", "cleanup"]
    assert acts[0].litter_id == acts[1].litter_id
    assert taken["t_start"] <= acts[1].t_notify <= taken["t_start"] + 10.0


@pytest.mark.parametrize("name", ["aboda_video4.avi", "aboda_video4_reversed.mp4"])
def test_auto_exposure_hunting_delays_no_act(name: str, footage_dir: Path, model_dir: Path, tmp_path: Path):
    # The camera's exposure swings by +-15% every 6 s, a drift the models follow as it comes and
    # scene memory takes out every few seconds. Before: each time it did, every judgement waited
    # 2 s for the view to settle, as after a sudden change of light: the bag's littering came
    # 1.4 s later than without the hunting, and its clean-up in the reversed clip 3.8 s later
    # (9.9 s after the pick-up, at the edge of the 10 s in which it counts).
    from clip_edits import Clip

    clip = Clip.read(footage_dir / name)
    gains = [1.0 + 0.15 * np.sin(2 * np.pi * (i / clip.fps) / 6.0) for i in range(len(clip.frames))]
    hunting = Clip(tuple(np.clip(f * g, 0, 255).astype(np.uint8) for f, g in zip(clip.frames, gains)), clip.fps)
    steady, hunted = _acts(footage_dir / name), _acts(hunting.write(tmp_path / "hunting.mp4"))
    assert [a.kind for a in hunted] == [a.kind for a in steady] and len(steady) == 1
    assert abs(hunted[0].t_notify - steady[0].t_notify) <= 0.5
