"""`detector audit`: many recordings, on this box or a Ray cluster, with the same bytes.

One module per seam: `inputs` (which files), `reader` (frames of a stretch of a file, as the
whole file would give them), `segments` (the plan, the overlap rule, merging), `work` (what a
worker does), `engines` (local processes or Ray actors), `run` (options to files), `summary`
(Markdown, HTML, JSON).
"""

from detector.audit.run import AuditOptions, AuditOutcome, run
from detector.audit.segments import Segment, SegmentRule, merge

__all__ = ["AuditOptions", "AuditOutcome", "Segment", "SegmentRule", "merge", "run"]
