"""Scene memory on real and synthetic frames: static objects, removals, lighting, people."""

from __future__ import annotations

import cv2
import numpy as np

from detector.config import SceneConfig
from detector.scene import SceneMemory, SceneView

FPS = 5.0
OBJ = (300, 300, 360, 350)  # where a dark object is put down (source pixels)


def _textured(w: int = 640, h: int = 480) -> np.ndarray:
    rng = np.random.default_rng(1)
    grey = cv2.GaussianBlur(rng.integers(90, 170, (h, w), dtype=np.uint8), (0, 0), 3)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _with_object(image: np.ndarray, box=OBJ, value: int = 25) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, box[:2], box[2:], (value, value, value), -1)
    return out


def _feed(scene: SceneMemory, image: np.ndarray, t: float, seconds: float, **kw) -> tuple[float, list[SceneView]]:
    views = []
    for _ in range(round(seconds * FPS)):
        views.append(scene.update(image, t, **kw))
        t = round(t + 1 / FPS, 6)
    return t, views


def _near(a, b, tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def test_object_put_down_becomes_static_added():
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    t, views = _feed(scene, bg, 0.0, 5.0)
    assert all(not v.objects for v in views)
    t, views = _feed(scene, _with_object(bg), t, 5.0)
    objs = views[-1].objects
    assert len(objs) == 1
    assert objs[0].change == "added" and _near(objs[0].box, OBJ)
    assert 5.0 <= objs[0].since <= 5.4  # when it appeared, not when it was confirmed
    assert not any(v.objects for v in views[: round(SceneConfig().persist_s * FPS)])  # persistence first


def test_person_standing_through_warm_up_leaves_no_ghost():
    # Someone stands still for the whole warm-up and then walks off: the ground they hid
    # was never seen, so it is learnt when uncovered, not reported as a change.
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    person = (280, 150, 380, 360)
    t, _ = _feed(scene, _with_object(bg, person, 40), 0.0, SceneConfig().warmup_s + 1.0, persons=[person])
    _, views = _feed(scene, bg, t, 6.0)
    assert all(v.objects == () for v in views)
    # The place is watched normally afterwards: something put down there is found.
    _, views = _feed(scene, _with_object(bg), t + 6.0, 5.0)
    assert len(views[-1].objects) == 1


def test_object_under_a_person_box_is_not_proposed():
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    t, _ = _feed(scene, bg, 0.0, 5.0)
    person = (280, 150, 380, 360)
    _, views = _feed(scene, _with_object(bg), t, 5.0, persons=[person])
    assert views[-1].objects == ()


def test_detector_box_gives_the_class():
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    t, _ = _feed(scene, bg, 0.0, 5.0)
    _, views = _feed(scene, _with_object(bg), t, 5.0, objects=[(OBJ, "backpack", 0.4)])
    assert [o.object_class for o in views[-1].objects] == ["backpack"]


def test_thin_edge_line_is_not_an_object():
    # A change a couple of grey-copy pixels thick (an edge shifting with exposure, a stalk)
    # is no object, however long; without the thickness rule this line would be one.
    line = (200, 300, 440, 305)
    found = []
    for thickness in (0.0, SceneConfig().min_thickness_px):
        scene = SceneMemory(SceneConfig(min_thickness_px=thickness))
        bg = _textured()
        t, _ = _feed(scene, bg, 0.0, 5.0)
        _, views = _feed(scene, _with_object(bg, line, 60), t, 5.0)
        found.append(len(views[-1].objects))
    assert found == [1, 0]


def test_big_box_around_a_small_region_lends_no_class():
    # A shelf or a car detected around a small object is not that object's class.
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    t, _ = _feed(scene, bg, 0.0, 5.0)
    _, views = _feed(scene, _with_object(bg), t, 5.0, objects=[((0, 0, 640, 480), "bench", 0.6)])
    assert [(o.object_class, o.scenery) for o in views[-1].objects] == [("unknown", False)]


def test_an_attended_object_is_not_absorbed_into_the_background():
    # Its owner stands beside it far longer than candidate_hold_s: it stays an object (the act
    # will be them walking away); one left alone that long is absorbed.
    hold = SceneConfig().candidate_hold_s
    beside = (370, 150, 430, 350)  # a person box next to the object, not over it
    found = []
    for persons in ([beside], []):
        scene = SceneMemory(SceneConfig())
        bg = _textured()
        t, _ = _feed(scene, bg, 0.0, 5.0)
        _, views = _feed(scene, _with_object(bg), t, hold + 2 * SceneConfig().long_tau_s, persons=persons)
        found.append(len(views[-1].objects))
    assert found == [1, 0]


def test_an_object_at_the_border_is_marked_as_cut():
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    t, _ = _feed(scene, bg, 0.0, 5.0)
    side = (0, 300, 50, 350)
    _, views = _feed(scene, _with_object(_with_object(bg), side), t, 5.0)
    edges = sorted((o.box[0] == 0, o.edge) for o in views[-1].objects)
    assert edges == [(False, False), (True, True)]


def test_ground_seen_again_where_litter_lay():
    # A watched object: someone standing on it changes its pixels but shows no ground; taken
    # away, its pixels show the ground seen before it came.
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    t, _ = _feed(scene, bg, 0.0, 5.0)
    t, _ = _feed(scene, _with_object(bg), t, 4.0)
    scene.watch(1, OBJ)
    t, views = _feed(scene, _with_object(bg, OBJ, 200), t, 3.0)  # covered by something bright
    assert views[-1].changed[1] > 0.8 and views[-1].bare[1] < 0.2
    _, views = _feed(scene, bg, t, 3.0)
    assert views[-1].changed[1] > 0.8 and views[-1].bare[1] > 0.8


def test_a_shadow_falling_over_watched_litter_is_not_it_gone():
    # A shadow (a cloud's, an awning's, a lorry's standing by) falls over a watched object and
    # the ground around it, too small a part of the view to be a change of light: the object
    # is still there, darker with its ground. Taken away in the shadow, it is gone, and the
    # ground it shows is the ground seen before it came, in that shadow.
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    shadow = (250, 250, 420, 400)

    def shaded(image: np.ndarray, gain: float) -> np.ndarray:
        out = image.copy()
        x1, y1, x2, y2 = shadow
        out[y1:y2, x1:x2] = (out[y1:y2, x1:x2] * gain).astype(np.uint8)
        return out

    bright = _with_object(bg, OBJ, 200)  # a white bag
    t, _ = _feed(scene, bg, 0.0, 5.0)
    t, _ = _feed(scene, bright, t, 4.0)
    scene.watch(1, OBJ)
    views = []
    for gain in np.linspace(1.0, 0.65, 10):  # the shadow comes over 2 s
        views.append(scene.update(shaded(bright, gain), t))
        t = round(t + 1 / FPS, 6)
    t, held = _feed(scene, shaded(bright, 0.65), t, 3.0)
    assert max(v.changed[1] for v in views + held) < 0.2
    _, views = _feed(scene, shaded(bg, 0.65), t, 3.0)
    assert views[-1].changed[1] > 0.8 and views[-1].bare[1] > 0.8


def test_a_piece_of_a_large_change_is_told_from_an_object_alone():
    # A lorry arrives: two large blocks and a small piece between them (cut off by the mask or
    # a colour change) appear at the same moment; elsewhere an object is put down on its own.
    # Only the piece changed together with much more around it.
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    t, _ = _feed(scene, bg, 0.0, 5.0)
    blocks, piece, alone = [(70, 100, 250, 380), (338, 100, 518, 380)], (274, 200, 314, 240), (400, 430, 440, 470)
    frame = _with_object(_with_object(_with_object(_with_object(bg, blocks[0], 220), blocks[1], 220), piece), alone)
    _, views = _feed(scene, frame, t, 5.0)
    small = [o for o in views[-1].objects if o.area_frac < 0.01]
    together = {
        ("piece" if _near(o.box, piece) else "alone" if _near(o.box, alone) else o.box): o.together for o in small
    }
    assert sorted(together) == ["alone", "piece"]
    assert together["piece"] > 2.0 and together["alone"] < 0.5


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def _structured(w: int = 640, h: int = 480) -> np.ndarray:
    """A view with edges everywhere (kerbs, windows, paving): random grey rectangles."""
    rng = np.random.default_rng(2)
    image = np.full((h, w, 3), 128, np.uint8)
    for _ in range(120):
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        sw, sh = int(rng.integers(10, 80)), int(rng.integers(10, 80))
        v = int(rng.integers(30, 230))
        cv2.rectangle(image, (x, y), (x + sw, y + sh), (v, v, v), -1)
    return image


def test_a_shaking_view_is_told_from_a_steady_and_a_knocked_one():
    scene = SceneMemory(SceneConfig())
    image = _structured()
    t, steady = _feed(scene, image, 0.0, 8.0)
    assert not any(v.shaking for v in steady)
    # Knocked once, 8 px right and 4 down: the view stays there (a shift taken, not a shake).
    t, knocked = _feed(scene, _shifted(image, 8, 4), t, 6.0)
    assert not any(v.shaking for v in knocked)
    # Jittering by up to 1% of the width on every frame, as on a pole in the wind.
    rng = np.random.default_rng(0)
    shaking = []
    for _ in range(round(4 * FPS)):
        dx, dy = rng.uniform(-6.4, 6.4, 2)
        shaking.append(scene.update(_shifted(image, 8 + dx, 4 + dy), t))
        t = round(t + 1 / FPS, 6)
    assert sum(v.shaking for v in shaking) >= 0.75 * len(shaking)
    # Still again: steady within the shake window (2 s) and from then on.
    t, after = _feed(scene, _shifted(image, 8, 4), t, 5.0)
    assert not any(v.shaking for v in after[round(2.5 * FPS) :])


def test_something_large_crossing_the_view_is_no_shake():
    # A textured slab a third of the view wide slides across plain ground by 40 px a frame (a
    # car seen from above on asphalt): it correlates better than the ground it hides, but no
    # shaking camera moves its whole view that far from one frame to the next.
    h, w = 480, 640
    ground = np.full((h, w, 3), 120, np.uint8)
    slab = _structured()[:200, :220]
    scene = SceneMemory(SceneConfig())
    t, _ = _feed(scene, ground, 0.0, 4.0)
    for x in range(0, w - 220, 40):
        frame = ground.copy()
        frame[140:340, x : x + 220] = slab
        assert not scene.update(frame, t).shaking
        t = round(t + 1 / FPS, 6)


def test_a_region_that_slid_onto_another_place_tells_when_it_formed_there():
    # A change (where someone stood) and, beside it, an object put down 5 s later. When the
    # first change goes, the region over the object is still dated from the first (its edge
    # pixels began to differ then); `formed` tells when most of the pixels it covers did.
    scene = SceneMemory(SceneConfig())
    bg = _textured()
    first, obj = (240, 300, 300, 350), (290, 300, 360, 350)
    t, _ = _feed(scene, bg, 0.0, 5.0)
    t, views = _feed(scene, _with_object(bg, first), t, 5.0)
    assert [o.formed for o in views[-1].objects] == [None]  # where it began
    t, _ = _feed(scene, _with_object(_with_object(bg, first), obj), t, 3.0)
    _, views = _feed(scene, _with_object(bg, obj), t, 4.0)
    (slid,) = views[-1].objects
    assert _near(slid.box, obj) and 5.0 <= slid.since <= 5.4
    assert slid.formed is not None and 10.0 <= slid.formed <= 10.4
