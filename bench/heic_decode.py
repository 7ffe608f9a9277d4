"""HEIC decode time: a 12 MP iPhone-style HEIC (HEVC, made once from the package's photos by
pillow-heif's x265) decoded by pillow-heif as the image processes do, against libvips decoding
the same picture as a q90 JPEG, interleaved, with 1 and 2 decoder threads.

    python bench/heic_decode.py [--rounds 5]

Prints the median seconds of each and the ratios. (Encoding the HEIC takes about a minute:
it is made once, into bench/.cache/generated/.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.photos import GENERATED, photo  # noqa: E402

NAME = "Elephants_4032x3024"


def sources() -> tuple[bytes, bytes]:
    """The HEIC and the JPEG of the same 4032x3024 picture."""
    import pillow_heif
    import pyvips

    heic, jpeg = GENERATED / f"{NAME}.heic", GENERATED / f"{NAME}.jpg"
    if not heic.exists() or not jpeg.exists():
        GENERATED.mkdir(parents=True, exist_ok=True)
        image = pyvips.Image.thumbnail(
            str(photo("Elephants_5640x3172.jpg")), 4032, height=3024, crop="centre"
        )
        image.jpegsave(str(jpeg), Q=90, keep="none")
        array = image.numpy()
        heif_file = pillow_heif.from_bytes("RGB", (image.width, image.height), array.tobytes())
        heif_file.save(str(heic), quality=60, tile_size=512)  # an iPhone's size and tiles
    return heic.read_bytes(), jpeg.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import pillow_heif
    import pyvips

    pyvips.cache_set_max(0)
    heic, jpeg = sources()
    print(f"load average at start: {os.getloadavg()}")
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            pillow_heif.options.DECODE_THREADS = threads
            pyvips.concurrency_set(threads)
            start = time.perf_counter()
            heif_file = pillow_heif.open_heif(heic, convert_hdr_to_8bit=True)
            assert len(heif_file.data) == heif_file.stride * heif_file.size[1]
            times.setdefault(f"HEIC, pillow-heif, {threads} thread(s)", []).append(
                time.perf_counter() - start
            )
            start = time.perf_counter()
            pyvips.Image.new_from_buffer(jpeg, "").avg()
            times.setdefault(f"JPEG q90, libvips, {threads} thread(s)", []).append(
                time.perf_counter() - start
            )
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"{NAME}: HEIC {len(heic) / 1e6:.2f} MB, JPEG {len(jpeg) / 1e6:.2f} MB")
    for threads in (1, 2):
        h = medians[f"HEIC, pillow-heif, {threads} thread(s)"]
        j = medians[f"JPEG q90, libvips, {threads} thread(s)"]
        print(f"{threads} thread(s): HEIC {h:.3f} s, JPEG {j:.3f} s, HEIC/JPEG {h / j:.2f}x")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
