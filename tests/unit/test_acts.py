"""The act recogniser's state machine on constructed frames, and the whole pipeline on real clips."""

from __future__ import annotations

import pytest

from detector.acts import ActRecogniser, Person, Sighting
from detector.config import ActsConfig, CameraConfig, SceneConfig, ZoneConfig
from detector.scene import SceneView, StaticObject, ViewTransform
from detector.zones import ZoneMap

FPS = 5.0
BAG = (400, 300, 440, 340)
NEAR = (380, 140, 440, 340)  # a person standing right at the bag (height 200)
FAR = (60, 100, 120, 300)  # the same person far away


class Run:
    """Feeds one frame every 0.2 s into a recogniser and keeps what it emits."""

    def __init__(self, cfg: ActsConfig | None = None, zones: ZoneMap | None = None) -> None:
        self.rec = ActRecogniser(cfg or ActsConfig(), zones or ZoneMap(CameraConfig()), "cam", (640, 480))
        self.t = 0.0
        self.i = 0
        self.acts = []
        self.other = []
        self.watched: dict[int, tuple] = {}
        self.view = ViewTransform()  # how the camera's view moved since it started

    def frames(
        self,
        seconds: float,
        people=(),
        objects=(),
        changed=None,
        sightings=(),
        relit=False,
        detect_every: int = 1,
        bare=None,
    ) -> list:
        """`detect_every`: the detector runs on every n-th frame only (a motion gate)."""
        new = []
        for k in range(round(seconds * FPS)):
            view = SceneView(self.t, tuple(objects), dict(changed or {}), relit, view=self.view, bare=dict(bare or {}))
            ran = k % detect_every == 0
            step = self.rec.step(
                self.t,
                self.i,
                [Person(k, b) for k, b in people] if ran else [],
                list(sightings) if ran else [],
                view,
                ran,
            )
            for lid, box in step.watch:
                self.watched[lid] = box
            for lid in step.unwatch:
                self.watched.pop(lid, None)
            new += [a for a in step.acts if a.is_act]
            self.other += [a for a in step.acts if not a.is_act]  # found, vanished
            self.t = round(self.t + 1 / FPS, 6)
            self.i += 1
        self.acts += new
        return new


def bag(since: float, key: int = 1, change: str = "added", cls: str = "unknown", scenery: bool = False) -> StaticObject:
    return StaticObject(key, BAG, since, change, cls, scenery, 0.005)


def left_bag(run: Run) -> None:
    """A person walks up carrying something; a bag appears at their feet (t = 2 s)."""
    run.frames(2.0, people=[(7, NEAR)])
    run.frames(2.0, people=[(7, NEAR)], objects=[bag(2.0)])


def test_littering_after_dwell_when_owner_walks_away():
    run = Run()
    left_bag(run)
    assert run.frames(1.0, people=[(7, FAR)], objects=[bag(2.0)]) == []  # not yet: dwell
    acts = run.frames(4.0, people=[(7, FAR)], objects=[bag(2.0)])
    assert len(acts) == 1
    act = acts[0]
    # no zones: one, named after the camera
    assert act.kind == "littering" and act.box == BAG and act.zone == CameraConfig().name
    assert act.t_release == 2.0 and 4.0 + ActsConfig().dwell_s <= act.t_notify <= 7.0
    assert act.severity == "bag"  # 40 px against a 200 px person (0.2 of their height)
    assert act.litter_id in run.watched
    assert run.frames(10.0, objects=[bag(2.0)]) == []  # one act per litter


def test_no_act_while_owner_stays():
    run = Run()
    left_bag(run)
    assert run.frames(20.0, people=[(7, NEAR)], objects=[bag(2.0)]) == []


def test_object_without_anyone_near_is_not_littering():
    # A static region with nobody around when it appeared: a shadow, a light patch.
    run = Run()
    run.frames(2.0, people=[(7, FAR)])
    assert run.frames(20.0, people=[(7, FAR)], objects=[bag(2.0)]) == []


def test_someone_arriving_after_it_appeared_is_not_its_owner():
    # A change appears with nobody around; a passer-by then walks up to it and on.
    run = Run()
    run.frames(3.0, people=[(7, FAR)], objects=[bag(2.0)])
    run.frames(2.0, people=[(9, NEAR)], objects=[bag(2.0)])
    assert run.frames(10.0, people=[(9, FAR)], objects=[bag(2.0)]) == []


def test_scenery_is_never_litter():
    run = Run()
    run.frames(2.0, people=[(7, NEAR)])
    car = StaticObject(1, BAG, 2.0, "added", "car", True, 0.005)
    assert run.frames(20.0, people=[(7, FAR)], objects=[car]) == []


@pytest.mark.parametrize(
    "cls, littering",
    [("couch", True), ("refrigerator", True), ("tv", True), ("suitcase", True), ("chair", False), ("dog", False)],
)
def test_dumped_furniture_is_litter_but_the_places_own_furniture_is_not(cls, littering):
    # Fly-tipping leaves a sofa or a fridge; a chair moved and left is the place's own.
    # The scenery flag is what scene memory sets from its class (SceneConfig.scenery_classes).
    # Its region is 20 px against the owner's 200 (a tenth of their height): by size alone a
    # small item, but a bag or an appliance the detector names is never that.
    run = Run()
    run.frames(2.0, people=[(7, NEAR)])
    box = (410, 320, 430, 340)
    obj = StaticObject(1, box, 2.0, "added", cls, cls in SceneConfig().scenery_classes, 0.001)
    run.frames(2.0, people=[(7, NEAR)], objects=[obj])
    acts = run.frames(6.0, people=[(7, FAR)], objects=[obj])
    assert [(a.object_class, a.severity) for a in acts] == ([(cls, "bag")] if littering else [])


def test_change_at_head_height_is_not_dropped_litter():
    # Something settles up at the person's head height (foliage, a load on a truck): no one's
    # feet are near its bottom, so nobody could have dropped it there.
    run = Run()
    high = StaticObject(1, (400, 140, 440, 180), 2.0, "added", "unknown", False, 0.005)
    run.frames(2.0, people=[(7, NEAR)])
    run.frames(2.0, people=[(7, NEAR)], objects=[high])
    assert run.frames(20.0, people=[(7, FAR)], objects=[high]) == []


def test_where_a_person_stood_is_not_litter():
    # A person-sized region where someone stood still, left behind when they walk on.
    run = Run()
    ghost = StaticObject(1, (385, 150, 435, 340), 2.0, "added", "unknown", False, 0.02)
    run.frames(2.0, people=[(7, NEAR)])
    assert run.frames(20.0, people=[(7, FAR)], objects=[ghost]) == []


def test_where_a_group_stood_is_not_litter():
    # Three people standing together; each box holds only a third of the region they leave.
    run = Run()
    group = [(1, (300, 140, 340, 340)), (2, (340, 140, 380, 340)), (3, (380, 140, 420, 340))]
    ghost = StaticObject(1, (300, 160, 420, 340), 2.0, "added", "unknown", False, 0.07)
    run.frames(2.0, people=group)
    assert run.frames(20.0, people=[(1, FAR)], objects=[ghost]) == []


def test_region_taller_than_its_owner_is_not_litter():
    # Nobody carries off something that, lying on the ground, stands taller than they do.
    run = Run()
    tall = StaticObject(1, (440, 100, 520, 340), 2.0, "added", "unknown", False, 0.06)
    run.frames(2.0, people=[(7, NEAR)])
    run.frames(2.0, people=[(7, NEAR)], objects=[tall])
    assert run.frames(20.0, people=[(7, FAR)], objects=[tall]) == []


def test_region_cut_by_the_top_of_the_view_is_not_litter():
    run = Run()
    top = StaticObject(1, (400, 0, 440, 40), 2.0, "added", "unknown", False, 0.005)
    run.frames(2.0, people=[(7, (380, 0, 440, 60))])  # someone half out of view at the top
    assert run.frames(20.0, people=[(7, FAR)], objects=[top]) == []


TRUCK = (300, 120, 560, 330)
TRUCK_SEEN = Sighting(TRUCK, "truck", 0.6)
AT_TAILGATE = (400, 300, 440, 340)  # under the tailgate, on the truck's own ground line


def at_object(box, since: float) -> tuple[tuple, StaticObject]:
    """A person standing at an object in `box`, and the object's static region (from `since`)."""
    return (box[0] - 20, box[3] - 200, box[2], box[3]), StaticObject(1, box, since, "added", "unknown", False, 0.005)


@pytest.mark.parametrize(
    "box, litter",
    [
        (AT_TAILGATE, False),  # part of the truck or of its load
        ((400, 360, 440, 400), True),  # clearly in front of it on the ground
    ],
)
def test_changes_at_a_vehicle_are_not_litter(box, litter):
    run = Run()
    near, obj = at_object(box, 2.0)
    run.frames(2.0, people=[(7, near)], sightings=[TRUCK_SEEN])
    run.frames(2.0, people=[(7, near)], objects=[obj], sightings=[TRUCK_SEEN])
    acts = run.frames(6.0, people=[(7, FAR)], objects=[obj], sightings=[TRUCK_SEEN])
    assert [a.kind for a in acts] == (["littering"] if litter else [])


def test_a_bag_left_beside_a_vehicle_is_litter_once_the_vehicle_has_gone():
    """Fly-tipping: a bag set down beside the truck that brought it (on the same ground
    line, so while the truck stands it could be its load or its door), and the truck drives
    off: what still lies there was left. Judged only once the truck is gone."""
    run = Run()
    near, obj = at_object(AT_TAILGATE, 2.0)
    run.frames(2.0, people=[(7, near)], sightings=[TRUCK_SEEN])
    run.frames(2.0, people=[(7, near)], objects=[obj], sightings=[TRUCK_SEEN])
    assert run.frames(6.0, objects=[obj], sightings=[TRUCK_SEEN]) == []  # he got in; it stands
    memory = ActsConfig().vehicle_memory_s
    assert run.frames(memory - 1.0, objects=[obj]) == []  # gone from view, maybe not far
    acts = run.frames(4.0, objects=[obj])
    assert [a.kind for a in acts] == ["littering"]
    assert acts[0].t_notify <= 10.0 + memory + 2.0  # within two seconds of the truck's memory


def test_ground_a_vehicle_uncovered_as_it_left_is_not_litter():
    """The same place, but the region shows only as the truck drives off (the ground it
    stood on, a patch of oil), with someone standing near: not something put down."""
    run = Run()
    near, obj = at_object(AT_TAILGATE, 6.0)
    run.frames(6.0, people=[(7, near)], sightings=[TRUCK_SEEN])
    run.frames(2.0, people=[(7, near)], objects=[obj])
    assert run.frames(20.0, people=[(7, FAR)], objects=[obj]) == []


def test_passer_by_occluding_litter_is_not_a_cleanup():
    run = Run()
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    assert [a.kind for a in run.acts] == ["littering"]
    # Someone walks over the spot: while they cover it the region looks changed...
    run.frames(2.0, people=[(9, NEAR)], changed={1: 0.9})
    # ...and after they left it looks as it did: the bag is still there.
    assert run.frames(10.0, people=[(9, FAR)], changed={1: 0.05}) == []


def test_cleanup_of_litter_taken_away():
    run = Run()
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    lid = run.acts[0].litter_id
    run.frames(2.0, people=[(9, NEAR)], changed={lid: 0.9})
    acts = run.frames(5.0, people=[(9, FAR)], changed={lid: 0.9})
    assert [(a.kind, a.litter_id, a.box) for a in acts] == [("cleanup", lid, BAG)]
    assert lid not in run.watched


def test_change_without_a_person_is_not_a_cleanup():
    run = Run()
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    lid = run.acts[0].litter_id
    run.frames(30.0)  # the person has long gone
    assert run.frames(10.0, changed={lid: 0.9}) == []


def test_cleanup_of_litter_present_at_start():
    # A bottle detected lying there in the first seconds is existing litter: no act...
    run = Run()
    bottle = Sighting(BAG, "bottle", 0.6)
    assert run.frames(4.0, sightings=[bottle]) == []
    assert len(run.watched) == 1
    lid = next(iter(run.watched))
    # ...until a person picks it up and carries it off.
    run.frames(2.0, people=[(3, NEAR)], changed={lid: 0.2})
    acts = run.frames(4.0, people=[(3, FAR)], changed={lid: 0.95})
    assert [(a.kind, a.litter_id, a.object_class) for a in acts] == [("cleanup", lid, "bottle")]


BOTTLES = [(100 + 60 * k, 310, 130 + 60 * k, 340) for k in range(3)]  # three small bottles, 30 px apart


def _shelf(run: Run, boxes) -> list[int]:
    """Bottles detected lying there at start: existing litter, one id each."""
    run.frames(4.0, sightings=[Sighting(b, "bottle", 0.6) for b in boxes])
    assert len(run.watched) == len(boxes)
    return sorted(run.watched)


def test_items_taken_in_one_pick_up_are_one_cleanup():
    run = Run()
    first, second, third = _shelf(run, BOTTLES)
    hand = (80, 150, 200, 345)  # over the first two
    run.frames(1.0, people=[(3, hand)], changed={first: 0.2, second: 0.2})
    # Both go in the same grab; the second looks gone a little later (it was half hidden).
    run.frames(0.4, people=[(3, FAR)], changed={first: 0.9, second: 0.3})
    acts = run.frames(4.0, people=[(3, FAR)], changed={first: 0.9, second: 0.9})
    assert [(a.kind, a.litter_id, a.also) for a in acts] == [("cleanup", first, ((second, "small"),))]
    assert acts[0].box == (BOTTLES[0][0], 310, BOTTLES[1][2], 340)  # encloses both
    assert acts[0].to_json()["also"] == [{"litter_id": second, "severity": "small"}]
    assert third in run.watched and first not in run.watched and second not in run.watched


def test_item_back_in_place_before_its_pick_up_is_reported_has_no_cleanup():
    run = Run()
    first, second = _shelf(run, BOTTLES[:2])
    run.frames(1.0, people=[(3, (80, 150, 200, 345))], changed={first: 0.2, second: 0.2})
    # The first looks gone and waits for the second, still on its way out of view...
    run.frames(0.6, people=[(3, FAR)], changed={first: 0.9, second: 0.2})
    run.frames(0.6, people=[(3, FAR)], changed={first: 0.9, second: 0.9})
    # ...when the first is seen lying in its place again: it was not taken after all.
    back = StaticObject(9, BOTTLES[0], run.t, "added", "bottle", False, 0.003)
    run.frames(0.2, people=[(3, FAR)], objects=[back], changed={second: 0.9})
    run.frames(3.0, people=[(3, FAR)], changed={second: 0.9})
    assert [(a.litter_id, a.also) for a in run.acts] == [(second, ())]
    assert first in run.watched


def test_items_taken_one_after_another_are_separate_cleanups():
    run = Run()
    first, second = _shelf(run, BOTTLES[:2])
    run.frames(1.0, people=[(3, (80, 150, 150, 345))], changed={first: 0.2})
    run.frames(3.0, people=[(3, FAR)], changed={first: 0.9})
    run.frames(1.0, people=[(3, (150, 150, 220, 345))], changed={first: 0.9, second: 0.2})
    run.frames(3.0, people=[(3, FAR)], changed={first: 0.9, second: 0.9})
    assert [(a.litter_id, a.also) for a in run.acts] == [(first, ()), (second, ())]


def test_far_apart_items_taken_at_once_are_separate_cleanups():
    # Two people clearing two spots across the view at the same moment: two acts.
    run = Run()
    first, second = _shelf(run, [BOTTLES[0], (560, 310, 590, 340)])
    run.frames(1.0, people=[(3, (80, 150, 150, 345)), (4, (540, 150, 620, 345))], changed={first: 0.2, second: 0.2})
    run.frames(3.0, people=[(3, FAR)], changed={first: 0.9, second: 0.9})
    assert sorted((a.litter_id, a.also) for a in run.acts) == [(first, ()), (second, ())]


def test_existing_litter_found_when_a_motion_gate_skips_the_detector():
    # A quiet scene: the detector runs once every 2 s. Frames it skipped are no evidence
    # that the bottle is absent.
    run = Run()
    assert run.frames(4.0, sightings=[Sighting(BAG, "bottle", 0.6)], detect_every=10) == []
    assert len(run.watched) == 1


def test_object_put_back_is_watched_once_it_lies_there_alone():
    # Until the hand that put it back has left, the region shows the hand too: a reference
    # taken then would make the object itself look "gone" later.
    run = Run()
    run.frames(4.0, sightings=[Sighting(BAG, "bottle", 0.6)])
    lid = next(iter(run.watched))
    run.frames(2.0, people=[(3, NEAR)], changed={lid: 0.2})
    run.frames(4.0, people=[(3, FAR)], changed={lid: 0.95})
    assert lid not in run.watched and [a.kind for a in run.acts] == ["cleanup"]
    run.frames(3.0, people=[(4, NEAR)], objects=[bag(10.0, key=7)])
    assert lid not in run.watched
    # A put-back is judged as a drop is: re-armed once its owner has left it for dwell_s.
    run.frames(2.0, people=[(4, FAR)], objects=[bag(10.0, key=7)])
    assert lid in run.watched


def test_litter_seen_lifted_by_an_unseen_hand_is_a_cleanup():
    # Close-up: only a hand reaches in and the detector sees no person, but the bottle
    # itself is detected raised off where it lay, then the spot looks empty.
    run = Run()
    run.frames(4.0, sightings=[Sighting(BAG, "bottle", 0.6)])
    lid = next(iter(run.watched))
    jitter = (401, 296, 441, 337)  # the same bottle, its box a few pixels off
    assert run.frames(5.0, sightings=[Sighting(jitter, "bottle", 0.6)], changed={lid: 0.9}) == []
    raised = (402, 280, 442, 325)  # bottom 15 px (0.38 of its height) higher
    run.frames(0.2, sightings=[Sighting(raised, "bottle", 0.6)], changed={lid: 0.3})
    acts = run.frames(3.0, changed={lid: 0.9})
    assert [(a.kind, a.litter_id) for a in acts] == [("cleanup", lid)]


def test_removed_object_taken_by_a_person_is_a_cleanup():
    # Something that was part of the scene (never detected) is taken by an upright person.
    run = Run()
    run.frames(4.0)
    run.frames(2.0, people=[(5, NEAR)])
    acts = run.frames(5.0, people=[(5, FAR)], objects=[bag(5.0, change="removed")])
    assert [a.kind for a in acts] == ["cleanup"]


def test_one_object_taken_in_two_pieces_is_one_cleanup():
    # A bottle's body and cap show as two adjacent removed regions: one clean-up, not two.
    run = Run()
    run.frames(4.0)
    run.frames(2.0, people=[(5, NEAR)])
    body = bag(5.0, change="removed")
    cap = StaticObject(2, (405, 270, 435, 298), 5.0, "removed", "unknown", False, 0.003)
    run.frames(3.0, people=[(5, FAR)], objects=[body])
    run.frames(5.0, people=[(5, FAR)], objects=[body, cap])
    assert [a.kind for a in run.acts] == ["cleanup"]
    # Someone puts a thing back there and takes it again later: that is a new clean-up.
    run.frames(2.0, people=[(6, NEAR)])
    again = StaticObject(3, (405, 270, 435, 298), 16.0, "removed", "unknown", False, 0.003)
    run.frames(5.0, people=[(6, FAR)], objects=[again])
    assert [a.kind for a in run.acts] == ["cleanup", "cleanup"]


def test_reappearing_object_gives_no_second_littering():
    run = Run()
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    lid = run.acts[0].litter_id
    run.frames(2.0, people=[(9, NEAR)], changed={lid: 0.9})
    run.frames(5.0, people=[(9, FAR)], changed={lid: 0.9})
    assert [a.kind for a in run.acts] == ["littering", "cleanup"]
    # Put back by someone and left: same location, no new littering act.
    run.frames(2.0, people=[(9, NEAR)], objects=[bag(16.5, key=5)])  # put down at 16.5 s, the person at it
    run.frames(10.0, people=[(9, FAR)], objects=[bag(16.5, key=5)])
    assert [a.kind for a in run.acts] == ["littering", "cleanup"]
    assert lid in run.watched  # re-armed: a later clean-up refers to the same litter


def test_no_new_acts_right_after_a_lighting_jump():
    run = Run()
    run.frames(2.0, people=[(7, NEAR)])
    run.frames(0.2, people=[(7, FAR)], relit=True)
    assert run.frames(ActsConfig().settle_s - 0.4, people=[(7, FAR)], objects=[bag(2.4)]) == []


def test_a_light_change_keeps_an_object_waiting_to_be_litter():
    run = Run()
    left_bag(run)
    run.frames(0.2, people=[(7, FAR)], objects=[bag(2.0)], relit=True)
    acts = run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    assert [a.kind for a in acts] == ["littering"] and acts[0].t_release == 2.0


def test_litter_follows_a_knocked_camera():
    # After littering the camera is knocked 60 px right: the bag is now seen at x 460-500.
    # Someone taking it there is a clean-up of that litter, reported where it now lies.
    run = Run()
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    lid = run.acts[0].litter_id
    run.view = ViewTransform(offset=(60.0, 0.0))
    run.frames(0.2)
    moved = (BAG[0] + 60, BAG[1], BAG[2] + 60, BAG[3])
    assert run.rec.litter() == [(lid, moved, "unknown")]
    run.frames(2.0, people=[(9, (450, 140, 510, 340))], changed={lid: 0.9})  # overlaps only the moved bag
    acts = run.frames(5.0, people=[(9, FAR)], changed={lid: 0.9})
    assert [(a.kind, a.litter_id, a.box) for a in acts] == [("cleanup", lid, moved)]


def test_zone_from_the_foot_point():
    zones = ZoneMap(
        CameraConfig(
            zones=[
                ZoneConfig(id="path", polygon=[(0, 0), (640, 0), (640, 320), (0, 320)]),
                ZoneConfig(id="kerb", polygon=[(0, 320), (640, 320), (640, 480), (0, 480)]),
            ]
        )
    )
    run = Run(zones=zones)
    left_bag(run)
    # The bag's box spans both zones (y 300-340); its foot point (420, 340) is on the kerb.
    acts = run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    assert [a.zone for a in acts] == ["kerb"]


def test_outside_every_zone_is_not_watched():
    zones = ZoneMap(CameraConfig(zones=[ZoneConfig(id="top", polygon=[(0, 0), (640, 0), (640, 100), (0, 100)])]))
    run = Run(zones=zones)
    left_bag(run)
    assert run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)]) == []


# -- the whole pipeline on real clips (each a few seconds) -------------------------------------------


# -- failure classes of unseen footage (issue 10) -------------------------------------------------


def test_owner_standing_by_the_bag_for_a_minute_then_walking_away_is_littering():
    # The bag is set down at 2 s with its owner beside it (so it is hidden from the background
    # model and first reported only at 60 s, with the time its pixels began to differ); the
    # act is the owner walking away, however long they stayed.
    run = Run()
    run.frames(2.0, people=[(7, NEAR)])
    run.frames(58.0, people=[(7, NEAR)])
    assert run.frames(2.0, people=[(7, NEAR)], objects=[bag(2.0)]) == []
    acts = run.frames(4.0, people=[(7, FAR)], objects=[bag(2.0)])
    assert [a.kind for a in acts] == ["littering"]
    assert acts[0].t_notify - 62.0 <= ActsConfig().dwell_s + 1.0  # soon after they left it


def test_a_region_ruled_out_stays_ruled_out_when_the_scene_gives_it_a_new_key():
    # Beside a lorry it is part of the lorry; the scene loses the region a while and reports
    # it again under a new key after the lorry was last seen (its memory has run out): the
    # verdict belongs to the place and the change, not to the key.
    run = Run()
    truck = Sighting(TRUCK, "truck", 0.6)
    box = (400, 300, 440, 340)
    near = (380, 140, 440, 340)
    run.frames(2.0, people=[(7, near)], sightings=[truck])
    run.frames(2.0, people=[(7, near)], objects=[StaticObject(1, box, 2.0, "added", "unknown", False, 0.005)])
    run.frames(ActsConfig().vehicle_memory_s + 1.0, people=[(7, near)])
    again = StaticObject(2, box, 2.0, "added", "unknown", False, 0.005)
    assert run.frames(10.0, people=[(7, FAR)], objects=[again]) == []


def test_unknown_region_at_the_border_is_not_litter_but_a_detected_object_is():
    # At the border only part of whatever is there is in view (a person standing half out of
    # the picture): without the detector's word that it is a carryable object, it is not litter.
    for cls, expected in (("unknown", []), ("bottle", ["littering"])):
        run = Run()
        side = (0, 300, 40, 340)
        edge = StaticObject(1, side, 2.0, "added", cls, False, 0.005, edge=True)
        run.frames(2.0, people=[(7, (0, 140, 60, 340))])
        run.frames(2.0, people=[(7, (0, 140, 60, 340))], objects=[edge])
        away = (500, 100, 560, 300)
        assert [a.kind for a in run.frames(6.0, people=[(7, away)], objects=[edge])] == expected


def _littered_and_taken(run: Run) -> int:
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    lid = run.acts[0].litter_id
    run.frames(2.0, people=[(9, NEAR)], changed={lid: 0.9}, bare={lid: 0.9})
    run.frames(3.0, people=[(9, FAR)], changed={lid: 0.9}, bare={lid: 0.9})
    assert [a.kind for a in run.acts] == ["littering", "cleanup"]
    return lid


def test_a_region_flickering_back_is_not_a_put_back():
    # After the clean-up the region shows again for a moment: its change began before the
    # pick-up (a remnant, or a flicker of the same region), so nothing is re-armed and the
    # next person walking over the spot takes nothing.
    run = Run()
    lid = _littered_and_taken(run)
    run.frames(2.0, people=[(9, FAR)], objects=[bag(2.0, key=4)])
    assert lid not in run.watched
    run.frames(2.0, people=[(11, NEAR)], changed={lid: 0.9})
    assert run.frames(5.0, people=[(11, FAR)], changed={lid: 0.9}) == []


def test_a_real_put_back_is_re_armed_and_taken_again():
    run = Run()
    lid = _littered_and_taken(run)
    t_back = run.t
    run.frames(2.0, people=[(9, NEAR)], objects=[bag(t_back, key=5)])
    run.frames(3.0, people=[(9, FAR)], objects=[bag(t_back, key=5)])
    assert lid in run.watched  # re-armed, and no second littering act
    assert [a.kind for a in run.acts] == ["littering", "cleanup"]
    run.frames(2.0, people=[(11, NEAR)], changed={lid: 0.9}, bare={lid: 0.9})
    acts = run.frames(3.0, people=[(11, FAR)], changed={lid: 0.9}, bare={lid: 0.9})
    assert [(a.kind, a.litter_id) for a in acts] == [("cleanup", lid)]


def test_no_cleanup_while_the_ground_under_the_litter_is_not_seen():
    # Someone stands on the spot (or a person at the border flickers in and out of the
    # detector's view): the pixels changed, but they do not show the ground seen before the
    # object came. Once they do, it was taken.
    run = Run()
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    lid = run.acts[0].litter_id
    run.frames(2.0, people=[(9, NEAR)], changed={lid: 0.9}, bare={lid: 0.1})
    assert run.frames(5.0, people=[(9, FAR)], changed={lid: 0.9}, bare={lid: 0.1}) == []
    acts = run.frames(3.0, people=[(9, FAR)], changed={lid: 0.9}, bare={lid: 0.8})
    assert [(a.kind, a.litter_id) for a in acts] == [("cleanup", lid)]


def test_litter_gone_with_nobody_near_has_vanished_and_is_no_cleanup():
    run = Run()
    left_bag(run)
    run.frames(5.0, people=[(7, FAR)], objects=[bag(2.0)])
    lid = run.acts[0].litter_id
    run.frames(30.0)
    gone = run.frames(ActsConfig().vanish_s + 1.0, changed={lid: 0.9}, bare={lid: 0.9})
    assert gone == [] and [(a.kind, a.litter_id) for a in run.other] == [("vanished", lid)]
    assert lid not in run.watched


def test_existing_litter_is_found_not_littered():
    run = Run()
    run.frames(4.0, sightings=[Sighting(BAG, "bottle", 0.6)])
    lid = next(iter(run.watched))
    assert run.acts == [] and [(a.kind, a.litter_id, a.t_release) for a in run.other] == [("found", lid, 0.0)]


def test_a_piece_of_something_large_that_came_or_went_is_not_litter():
    # A lorry pulls away: the ground it uncovers changed all at once around this region (the
    # scene measures 5x its own area), and a man walked past it. Not one object left.
    for together, expected in ((5.0, []), (0.3, ["littering"])):
        run = Run()
        piece = StaticObject(1, BAG, 2.0, "added", "unknown", False, 0.005, together=together)
        run.frames(2.0, people=[(7, NEAR)])
        run.frames(2.0, people=[(7, NEAR)], objects=[piece])
        assert [a.kind for a in run.frames(6.0, people=[(7, FAR)], objects=[piece])] == expected
