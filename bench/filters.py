"""The worst cases of imgflo's filter graphs against the job deadline: each graph at the far end
of its ranges on a 5120x2880 JPEG with no width (so the filters run at full size), in a fresh
process set up as a worker process is (``execute.init``: one libvips thread, as two workers on
two cores have, and the address-space limit), timed as a worker runs a job (``execute``).

    python bench/filters.py            # every case
    python bench/filters.py motionblur # the cases of one graph

Not part of ``bench/run.py`` or the tests: it measures what bounds the graphs' ranges.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CASES: list[tuple[str, dict[str, object]]] = [
    ("gaussianblur", {"std-dev-x": 1500, "std-dev-y": 1500}),
    ("gaussianblur", {"std-dev-x": 8, "std-dev-y": 8}),  # the largest exact Gaussian
    ("gaussianblur", {"std-dev-x": 1500, "std-dev-y": 0, "abyss-policy": "white"}),
    ("halodarken", {"edgeblur-x": 1500, "edgeblur-y": 1500}),
    ("halodarken", {"edgeblur-x": 8, "edgeblur-y": 8}),
    ("motionblur", {"length": 1000, "angle": 45}),  # the largest turned canvas
    ("motionblur", {"length": 1000, "angle": 17}),
    ("motionblur", {"length": 1000, "angle": 90}),
    ("motionblur", {"length": 24, "angle": 45}),  # the longest exact kernel
    ("croprotate", {"degrees": 45, "width": 2000}),
]

ONE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from imgserver.runtime import execute
from imgserver.settings import Settings
settings = Settings()
execute.init(1, settings.worker_memory_limit)
import pyvips
from imgserver.messages import Limits, RenderJob
from imgserver.request import parse_params
from multidict import MultiDict
from tests.images import catalogue, texture
graph, query = catalogue()[sys.argv[1]], json.loads(sys.argv[2])
source = bytes(texture(5120, 2880).jpegsave_buffer(Q=85))
params, _ = parse_params(graph, MultiDict({k: str(v) for k, v in query.items()}))
limits = Limits(settings.max_source_pixels, settings.max_output_pixels, settings.max_frames)
job = RenderJob(graph.name, graph.definition, params, "jpeg", "jpeg", limits)
started = time.monotonic()
outcome = execute.execute(job, source)
print(json.dumps({
    "seconds": round(time.monotonic() - started, 2),
    "size": [getattr(outcome, "width", None), getattr(outcome, "height", None)],
    "error": getattr(getattr(outcome, "error", None), "code", None),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    "deadline": settings.job_deadline,
}))
"""


def main() -> None:
    only = set(sys.argv[1:])
    for graph, query in CASES:
        if only and graph not in only:
            continue
        done = subprocess.run(
            [sys.executable, "-c", ONE, graph, json.dumps(query), str(REPO)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(graph, query, "failed:", done.stderr[-1000:])
            continue
        print(graph, json.dumps(query), done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
