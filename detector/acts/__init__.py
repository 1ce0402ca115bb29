"""Act recogniser: littering and clean-up, a state machine over small typed values.

- `recogniser.py`: the state machine (static regions in, acts out), litter keyed on place;
- `littering.py`: owner, attendance and plausibility of a drop;
- `cleanup.py`: known litter taken away, pick-ups grouped into one act;
- `startup.py`: existing litter seen while the camera starts;
- `recent.py`: people and vehicles seen lately; `values.py`: the small values it keeps.
"""

from detector.acts.recogniser import ActRecogniser
from detector.acts.values import ActsStep, Person, Sighting

__all__ = ["ActRecogniser", "ActsStep", "Person", "Sighting"]
