"""Part 4, bytes: what ``compress`` and a passthrough make of each source, by us and by
thumbor: output bytes, and SSIM against the source (bench/ssim.py)."""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path
from urllib.parse import quote

import aiohttp
from PIL import Image

from bench import lab, ssim
from bench.client import Failure
from bench.context import Context, log
from bench.workload import BYTES_SOURCES, CPUS, QUALITY, QUICK_BYTES_SOURCES


async def fetch(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as r:
        data = await r.read()
        if r.status != 200:
            raise Failure(f"{url}: {r.status} {data[:200]!r}")
        return data


def bytes_part(ctx: Context) -> list[dict]:
    """compress (q75, full size, same format) and passthrough (800 px, q80) of each source, by
    us and by thumbor: output bytes and SSIM against the source."""
    names = QUICK_BYTES_SOURCES if ctx.args.quick else BYTES_SOURCES
    origin = ctx.nginx.origin
    host = origin.removeprefix("http://")
    thumbor = None if ctx.args.skip_thumbor else ctx.thumbor()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        svc = lab.Service(Path(tmp), {"IMGSERVER_WORKERS": str(CPUS)}).start()
        try:
            for name in names:
                ext = Path(name).suffix.lstrip(".")
                src = quote(f"{origin}/{name}?v=bytes", safe="")
                urls = {
                    ("compress", "ours"): f"{svc.base}/graph/compress.{ext}?input={src}&quality=75",
                    ("resize", "ours"): f"{svc.base}/graph/passthrough.jpg?input={src}"
                    f"&width=800&quality={QUALITY}",
                }
                if thumbor:
                    urls[("compress", "thumbor")] = (
                        f"{thumbor.base}/unsafe/filters:quality(75)/{host}/{name}"
                    )
                    urls[("resize", "thumbor")] = (
                        f"{thumbor.base}/unsafe/800x0/filters:quality({QUALITY}):format(jpeg)/"
                        f"{host}/{name}"
                    )

                async def get_all(urls: dict = urls) -> dict:
                    async with aiohttp.ClientSession() as s:
                        return {k: await fetch(s, u) for k, u in urls.items()}

                outputs = asyncio.run(get_all())
                source = ctx.paths[name].read_bytes()
                refs: dict = {}
                for (kind, system), data in outputs.items():
                    out = ssim.decode(data)
                    size = (out.width, out.height)
                    if size not in refs:
                        refs[size] = ssim.reference(source, *size)
                    score = ssim.ssim(refs[size], ssim.luma(out))
                    fmt = Image.open(io.BytesIO(data)).format
                    rows.append(
                        {
                            "source": name,
                            "source_bytes": len(source),
                            "kind": kind,
                            "system": system,
                            "bytes": len(data),
                            "ssim": score,
                            "format": fmt,
                            "width": size[0],
                            "height": size[1],
                            "kept_source": data == source,
                        }
                    )
                log(f"bytes: {name} done")
        finally:
            svc.stop()
    return rows
