"""``judgegap data download NAME``: fetch a dataset's official file (needs internet)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from judgegap.data.registry import DATASETS
from judgegap.errors import DataError


def download(name: str, data_dir: Path, url: str | None = None, timeout: float = 60.0) -> Path:
    """Download into ``data_dir`` under the official file name; returns the path."""
    spec = DATASETS.get(name)
    url = url or spec.url
    if not url:
        raise DataError(f"dataset {name} has no official download URL; place its file in {data_dir}")
    target = Path(data_dir) / spec.filenames[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise DataError(f"download of {name} failed: HTTP {resp.status_code} from {url}")
            total = int(resp.headers.get("content-length") or 0) or None
            with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn()) as prog:
                task = prog.add_task(name, total=total)
                for chunk in resp.iter_bytes():
                    buf.write(chunk)
                    prog.advance(task, len(chunk))
    except httpx.HTTPError as exc:
        raise DataError(f"download of {name} failed ({type(exc).__name__}: {exc}); no internet? "
                        f"Place {spec.filenames[0]} in {data_dir} by hand") from None
    payload = buf.getvalue()
    if payload[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            member = spec.url_member or next((n for n in zf.namelist() if n.endswith(spec.filenames[0])), None)
            if member is None or member not in zf.namelist():
                raise DataError(f"{url}: archive has no {spec.url_member or spec.filenames[0]}")
            payload = zf.read(member)
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(payload)
    spec.parse(tmp)  # validate the schema before it replaces anything
    tmp.replace(target)
    return target
