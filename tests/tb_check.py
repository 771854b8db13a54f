"""Reads a run folder's TensorBoard event files back with TensorBoard's own readers: the raw events
through EventFileLoader (which checks every record's masked CRC-32C) and what TensorBoard shows
through EventAccumulator (scalars and images by tag).

Usage: tb_check.py RUN_FOLDER
Prints one JSON object; tests/export.rs asserts on it.
"""

import glob
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

run = sys.argv[1]
files = sorted(glob.glob(f"{run}/events.out.tfevents.*"))
events = [e for f in files for e in EventFileLoader(f).Load()]

# 0: keep every event, not a sample of them.
acc = EventAccumulator(run, size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
print(
    json.dumps(
        {
            "files": len(files),
            "events": len(events),
            "file_versions": [e.file_version for e in events if e.HasField("file_version")],
            "summary_steps": [e.step for e in events if e.HasField("summary")],
            "scalars": {t: [[s.step, s.value] for s in acc.Scalars(t)] for t in tags["scalars"]},
            "images": {
                t: [[i.step, i.width, i.height, i.encoded_image_string.hex()] for i in acc.Images(t)]
                for t in tags["images"]
            },
        }
    )
)
