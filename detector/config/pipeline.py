"""Settings of one camera's pipeline (what `detector replay` and each worker use).

The model tree mirrors the YAML (one class per section). Every field has a default, so an
empty file, or no file at all, is a valid configuration.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from detector.protocol.config import Section, load_config


class SourceConfig(Section):
    analysis_fps: float = Field(5.0, gt=0, description="frames analysed per second of video; 0 < fps")
    max_seconds: float | None = Field(None, gt=0, description="stop after this much video time")


class DetectorConfig(Section):
    model: str = Field("yolox-nano", description="model name from detector/manifests/models.yaml")
    model_path: Path | None = Field(None, description="explicit ONNX file; overrides the lookup")
    score_threshold: float | None = Field(None, ge=0, le=1, description="default: the model's own")
    nms_iou: float = Field(0.45, gt=0, le=1, description="boxes of one class overlapping more than this are merged")
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads")
    # Persons, the COCO classes that people carry and drop, and the scenery classes
    # (vehicles, furniture): scene memory needs to see a vehicle to know that what changes
    # around it (a door, a load, the ground it uncovers) is not litter.
    classes: list[str] = Field(
        default_factory=lambda: [
            "person",
            "backpack",
            "umbrella",
            "handbag",
            "suitcase",
            "sports ball",
            "bottle",
            "wine glass",
            "cup",
            "bowl",
            "banana",
            "apple",
            "sandwich",
            "orange",
            "pizza",
            "donut",
            "cell phone",
            "book",
            "teddy bear",
            "vase",
            "bicycle",
            "car",
            "motorcycle",
            "bus",
            "truck",
            "boat",
            "train",
            "airplane",
            "bench",
            "chair",
            "couch",
            "potted plant",
            "dining table",
            "bed",
            "toilet",
            "tv",
            "refrigerator",
            "fire hydrant",
            "stop sign",
            "parking meter",
            "traffic light",
        ],
        description="detector classes reported; scenery classes must be here to be recognised as scenery",
    )


class MotionConfig(Section):
    """Motion gate: the detector runs only on frames with motion, people in view, or a periodic re-check."""

    enabled: bool = Field(True, description="false: run the detector on every analysed frame")
    width: int = Field(160, ge=32, le=1280, description="width of the small grey frame the gate compares")
    pixel_threshold: int = Field(25, ge=1, le=255, description="grey-level change that counts as motion")
    min_fraction: float = Field(0.002, ge=0, le=1, description="share of moving pixels that wakes the detector")
    global_fraction: float = Field(
        0.5, gt=0, le=1, description="share of the view changing at once that means lights/exposure: recalibrate"
    )
    recheck_s: float = Field(2.0, gt=0, description="run the detector at least this often, to classify static objects")
    tracking_interval_s: float = Field(
        0.4,
        ge=0,
        description="while only tracked objects move, run the detector this often and reuse its "
        "last result in between (0: every analysed frame); motion anywhere else runs it at once",
    )


class TrackerConfig(Section):
    lost_track_buffer_s: float = Field(2.0, gt=0, description="how long a lost track is kept")
    track_activation_threshold: float = Field(0.4, ge=0, le=1, description="detection score that may start a track")
    high_conf_det_threshold: float = Field(
        0.5, ge=0, le=1, description="ByteTrack's first-round (high-confidence) score"
    )
    minimum_iou_threshold: float = Field(0.1, ge=0, le=1, description="least overlap that links a detection to a track")
    minimum_consecutive_frames: int = Field(2, ge=1, description="detector runs in a row before a track is reported")


class ZoneConfig(Section):
    id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description="zone id used by the ledger"
    )
    polygon: list[tuple[float, float]] = Field(min_length=3, description="[x, y] corners in frame pixels")
    shared: bool = Field(
        False,
        description="another camera of the site sees this zone too and their litter counts in one score "
        "(every camera listing the zone must say so; cameras sharing a zone should not see the same spots, "
        "or litter seen by both counts twice)",
    )


class CameraConfig(Section):
    name: str = Field("camera", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str = Field("site", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    zones: list[ZoneConfig] = Field(
        default_factory=list, description="no zones: the whole view is one zone, named after the camera"
    )

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: list[ZoneConfig]) -> list[ZoneConfig]:
        ids = [z.id for z in zones]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate zone ids: {sorted({i for i in ids if ids.count(i) > 1})}")
        return zones


class SceneConfig(Section):
    """Scene memory: static objects from a long-term vs short-term background model."""

    work_width: int = Field(320, ge=64, le=1920, description="width of the grey copy the background model runs on")
    short_tau_s: float = Field(1.0, gt=0, description="time constant of the short-term background (s)")
    long_tau_s: float = Field(30.0, gt=0, description="time constant of the long-term background (s)")
    diff_threshold: float = Field(20.0, gt=0, le=255, description="grey-level difference that counts as a change")
    persist_s: float = Field(1.5, ge=0, description="a change must stay this long before it is a static region")
    warmup_s: float = Field(
        3.0, ge=0, description="after a (re)start the long-term model is built from this much video"
    )
    warmup_frames: int = Field(
        30, ge=1, le=200, description="at most this many (latest) warm-up frames go into its median"
    )
    min_area_frac: float = Field(0.0005, gt=0, lt=1, description="smallest static region, as a fraction of the view")
    max_area_frac: float = Field(0.2, gt=0, le=1, description="largest static region, as a fraction of the view")
    relight_fraction: float = Field(
        0.4,
        gt=0,
        le=1,
        description="if this fraction of the view changes at once, it is a lighting change or the view itself changed",
    )
    shift_check_fraction: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "if this fraction of the view changes at once, check whether the camera was "
            "knocked (a shift of the whole view is undone, memory kept)"
        ),
    )
    relight_unexplained: float = Field(
        0.15,
        ge=0,
        le=1,
        description=(
            "a lighting change is carried over (memory kept) if a smooth gain leaves at most this "
            "fraction of the view unexplained; else the backgrounds start afresh"
        ),
    )
    person_margin: float = Field(0.1, ge=0, le=1, description="person boxes grow by this fraction before masking")
    region_memory_s: float = Field(3.0, ge=0, description="a static region hidden this long keeps its key")
    candidate_hold_s: float = Field(
        30.0,
        gt=0,
        description=(
            "the long-term model stays frozen under a static region until it has been left alone "
            "(no person next to it) this long"
        ),
    )
    ghost_ratio: float = Field(
        1.2, gt=0, description="old-outline/new-outline edge ratio above which a region counts as removed"
    )
    min_thickness_px: float = Field(
        4.0,
        ge=0,
        description=(
            "a static region must be at least this thick somewhere "
            "(grey-copy pixels); thinner is an edge, not an object"
        ),
    )
    vote_max_area_ratio: float = Field(
        4.0, gt=0, description="a detection lends its class to a static region only if at most this many times its area"
    )
    scenery_classes: list[str] = Field(
        default_factory=lambda: [
            "car",
            "truck",
            "bus",
            "motorcycle",
            "bicycle",
            "bench",
            "chair",
            "potted plant",
            "dining table",
            "fire hydrant",
            "stop sign",
            "parking meter",
            "traffic light",
            "boat",
            "train",
            "airplane",
        ],
        description="detector classes that are never litter",
    )


class ActsConfig(Section):
    """Littering / clean-up recogniser."""

    # The act is the walking away: at walking pace (about 1.4 m/s) one second takes an owner more
    # than their own height beyond the attendance reach, while someone only shifting their weight
    # or stepping aside to let a passer-by through is back within it. Shorter buys false acts
    # first (leave-one-clip-out, 0.5 s: a false littering act on a real negative, no hit gained).
    dwell_s: float = Field(1.0, ge=0, description="an object must lie unattended this long before it is litter")
    min_static_s: float = Field(1.5, ge=0, description="an object must have been static this long before it is litter")
    # A walker's body (about 0.5 m across) passes a point in about 0.35 s at walking pace, so a
    # fragment of them left in the background lasts less; an object lying there outlasts it.
    confirm_s: float = Field(0.5, ge=0, description="a static region must be seen this long before it counts")
    # 0.08 of a person's height (about 1.7 m) is about 14 cm: a can or a cup lying on its side.
    # Smaller is a handful of pixels in a surveillance view, the size of noise and compression blocks.
    min_size_frac: float = Field(
        0.08, ge=0, description="objects smaller than this fraction of a person's height are ignored"
    )
    upright_ratio: float = Field(
        1.2, gt=0, description="a person box this much taller than wide counts as someone able to pick up"
    )
    # Attended means within reach: an object one object-size from a person's box, or about a
    # forearm (0.15 of body height, ~25 cm for an adult) from it, is one the person is standing
    # over or holding at their feet. Both scale with the image, so they hold at any distance.
    attend_factor: float = Field(
        1.0, gt=0, description="attended while a person's box is within this many object sizes"
    )
    attend_person_frac: float = Field(0.15, ge=0, description="...or within this fraction of that person's height")
    owner_reach: float = Field(
        1.0, gt=0, description="an owner was within this many person heights when the object appeared"
    )
    # Whoever puts a thing down is at it when its pixels begin to change (their body over it, a
    # hand letting go, a throw landing within a stride). Two seconds is the time the tracker holds
    # a person the detector misses (crouching to put it down), and two looks even at 1 fps; a
    # passer-by seen further back did not leave what appeared after them (a shadow falling).
    owner_lookback_s: float = Field(2.0, ge=0, description="how far back to look for the owner around the appearance")
    # An owner may attend a bag for minutes (standing over it, it is hidden from the
    # background model), so the object may first be seen long after it appeared: who was near
    # it then must still be known. Five minutes of people boxes cost a few hundred kB.
    memory_s: float = Field(
        300.0,
        gt=0,
        description="people seen this far back are kept, to find the owner of an object first seen long after",
    )
    # An owner puts an object down within about a stride of where they stand (~0.6 m, a third of
    # body height); on a ground plane seen from above the horizon, a depth offset that small moves
    # a foot line less than that in the image, so the band holds for any camera tilt.
    foot_band: float = Field(
        0.35,
        ge=0,
        le=2,
        description="an owner's foot line is within this fraction of their height of the object's bottom (same ground)",
    )
    max_height_frac: float = Field(
        1.0, gt=0, description="a dropped object's region is at most this fraction of its owner's height tall"
    )
    # Carried things are shorter than about half their carrier (bags, boxes, bottles); a static
    # region 0.7 of the height of the person box that covered it is that person's own ghost
    # (someone who stood still), not something they left.
    person_like_frac: float = Field(
        0.7, gt=0, le=2, description="a region this tall against the person box that held it is that person's ghost"
    )
    # A dropped object changes its own footprint (and its shadow); a piece of a vehicle that
    # arrived or left, or of a crowd, changed together with far more of the view around it.
    together_max: float = Field(
        2.0,
        ge=0,
        description=(
            "a static region around which more than this many times its own area changed within "
            "the same second is part of something larger (a vehicle), not an object put down or taken"
        ),
    )
    startup_s: float = Field(3.0, ge=0, description="carryable objects detected this early are existing litter")
    startup_min_score: float = Field(0.3, ge=0, le=1, description="detector score for existing litter at startup")
    # Gone means most of the object's own pixels no longer look like it: a passing shadow or a
    # foot over one edge changes less than half of it.
    gone_fraction: float = Field(0.5, gt=0, le=1, description="a litter region this changed counts as gone")
    gone_s: float = Field(
        1.0, ge=0, description="litter must look gone this long, after people left it, for a clean-up"
    )
    # Nobody was seen taking it: only a long absence is evidence. Ten seconds outlast a
    # vehicle or a person the detector missed stopping in front of it.
    vanish_s: float = Field(
        10.0,
        ge=0,
        description="litter that looks gone this long with nobody near it lately has vanished (no act)",
    )
    pickup_window_s: float = Field(
        1.0,
        ge=0,
        description=(
            "litter lying together whose last touches are this close in time went in one pick-up: one clean-up act"
        ),
    )
    touch_memory_s: float = Field(20.0, gt=0, description="a person overlap counts for a clean-up this long")
    # A detector's box on an object lying still jitters by well under a quarter of its height
    # frame to frame; a bottom edge raised that much means it is off the ground, in a hand.
    lift_frac: float = Field(
        0.25,
        gt=0,
        description=(
            "known litter detected with its bottom this fraction of its height "
            "above where it lay is being handled (counts as a touch)"
        ),
    )
    settle_s: float = Field(
        2.0, ge=0, description="after a recalibration (lighting/camera motion), no new acts this long"
    )
    # Severity by size against a person seen at the same place (a scale every view carries): under
    # 0.15 of body height (~25 cm: a bottle, a cup, a wrapper) small; over 0.6 (~1 m: a mattress,
    # furniture, a heap of sacks) bulky; bag-sized between.
    small_frac: float = Field(
        0.15, gt=0, description="object height below this fraction of a person's height: small item"
    )
    bulky_frac: float = Field(
        0.6, gt=0, description="object height above this fraction of a person's height: bulky load"
    )
    vehicle_classes: list[str] = Field(
        default_factory=lambda: ["car", "truck", "bus", "motorcycle", "bicycle", "boat", "train", "airplane"],
        description=(
            "detector classes whose doors, loads and uncovered ground are never litter "
            "(what is left beside one is judged once it has gone)"
        ),
    )
    vehicle_margin: float = Field(
        0.1, ge=0, le=1, description="a region within this fraction of a vehicle's size of its box belongs to it"
    )
    vehicle_memory_s: float = Field(
        10.0, ge=0, description="a change beside a vehicle seen this recently is not judged yet (it may be part of it)"
    )
    carryable_classes: list[str] = Field(
        default_factory=lambda: [
            "backpack",
            "umbrella",
            "handbag",
            "suitcase",
            "sports ball",
            "bottle",
            "wine glass",
            "cup",
            "bowl",
            "banana",
            "apple",
            "sandwich",
            "orange",
            "pizza",
            "donut",
            "cell phone",
            "book",
            "teddy bear",
            "vase",
            "frisbee",
            "kite",
            "remote",
        ],
        description="detector classes that can be litter",
    )
    # Fly-tipping dumps furniture and appliances whole. Such a thing does not appear in a
    # public place by itself and is not moved about there daily (unlike its chairs, benches
    # and tables, which stay scenery), so one left by a person is litter like a bag, and the
    # detector naming it is evidence of an object, not a reason to look away.
    bulky_classes: list[str] = Field(
        default_factory=lambda: ["couch", "bed", "tv", "refrigerator", "toilet", "microwave", "oven"],
        description="detector classes of dumped furniture and appliances: litter, at least bag-sized",
    )
    bag_classes: list[str] = Field(
        default_factory=lambda: ["backpack", "handbag", "suitcase"], description="classes that are at least a bag"
    )


class Settings(Section):
    """Settings of one camera's pipeline (what `detector replay` and each worker use)."""

    camera: CameraConfig = CameraConfig()
    source: SourceConfig = SourceConfig()
    detector: DetectorConfig = DetectorConfig()
    motion: MotionConfig = MotionConfig()
    tracker: TrackerConfig = TrackerConfig()
    scene: SceneConfig = SceneConfig()
    acts: ActsConfig = ActsConfig()


def load_settings(path: Path | None) -> Settings:
    return load_config(Settings, path)
