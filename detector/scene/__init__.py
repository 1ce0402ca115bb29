"""Scene memory: static objects found with a dual background model, classed by the detector.

- `memory.py`: the long- and short-term backgrounds, run on every frame; litter watching;
- `view.py`: the view transform (lights changed, camera knocked) shared with the recogniser;
- `regions.py`: static regions, keyed by location, put down or taken away.

Pure: frames and boxes in, `SceneView` out; no I/O. Tolerates frames without detections
(a motion gate may skip the detector): the background model runs on every frame given.
"""

from detector.scene.memory import SceneMemory, SceneView
from detector.scene.regions import Change, StaticObject
from detector.scene.view import Lighting, ViewTransform

__all__ = ["Change", "Lighting", "SceneMemory", "SceneView", "StaticObject", "ViewTransform"]
