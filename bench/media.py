"""Media store benchmark: each store's writes, reads and streaming, measured in one run
with the local directory as the baseline.

Stores: `local` (files), `database/sqlite` (blobs in a SQLite file) and, with
--postgres URL, `database/postgresql` (a fresh schema, dropped afterwards). For each:
small pictures (`--pictures` of `--picture-kib` KiB) put, stat'ed and read; one large
object (`--large-mib` MiB) put and streamed in 1 MiB chunks. `sqlite_substr_stream`
reads the same large SQLite blob with `substr()` per chunk, the way the store does not
(each call loads the whole blob), to show why it reads blobs incrementally.

    python bench/media.py                              # prints one JSON object
    python bench/media.py --postgres postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text

from wasync.media.database import DatabaseMediaStore
from wasync.media.local import LocalMediaStore
from wasync.media.store import CHUNK_BYTES, MediaStore
from wasync.store.db import Database, normalize_url

MIB = 2**20


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(store: MediaStore, pictures: list[bytes], large: bytes) -> dict[str, Any]:
    keys = [f"avatars/bench/{i}@s.whatsapp.net.jpg" for i in range(len(pictures))]

    def put_all() -> None:
        for key, data in zip(keys, pictures, strict=True):
            store.put(key, data, content_type="image/jpeg")

    def stat_all() -> None:
        for key in keys:
            assert store.stat(key) is not None

    def get_all() -> None:
        for key in keys:
            assert store.get(key) is not None

    put_s, stat_s, get_s = _timed(put_all), _timed(stat_all), _timed(get_all)
    big = "messages/1/ab/" + "ab" * 32
    put_large_s = _timed(lambda: store.put(big, large))

    def stream() -> None:
        chunks = store.stream(big, CHUNK_BYTES)
        assert chunks is not None
        assert sum(len(c) for c in chunks) == len(large)

    stream_s = _timed(stream)
    n = len(pictures)
    return {
        "pictures_put_per_s": round(n / put_s, 1),
        "pictures_stat_per_s": round(n / stat_s, 1),
        "pictures_get_per_s": round(n / get_s, 1),
        "large_put_mib_per_s": round(len(large) / MIB / put_large_s, 1),
        "large_stream_mib_per_s": round(len(large) / MIB / stream_s, 1),
    }


def substr_stream(db: Database, size: int) -> float:
    """MiB/s of reading the large SQLite blob with substr() per chunk."""
    with db.read() as conn:
        sha = conn.execute(text("SELECT sha256 FROM media_blobs ORDER BY size DESC")).scalar()
        start = time.perf_counter()
        offset = 0
        while offset < size:
            chunk = conn.execute(
                text("SELECT substr(data, :o, :n) FROM media_blobs WHERE sha256 = :s"),
                {"o": offset + 1, "n": CHUNK_BYTES, "s": sha},
            ).scalar()
            offset += len(chunk)
        return round(size / MIB / (time.perf_counter() - start), 1)


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    base = normalize_url(url)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=500)
    parser.add_argument("--picture-kib", type=int, default=50)
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--postgres", help="PostgreSQL URL to measure the shared store on")
    args = parser.parse_args()
    pictures = [os.urandom(args.picture_kib * 1024) for _ in range(args.pictures)]
    large = os.urandom(args.large_mib * MIB)
    out: dict[str, Any] = {
        "pictures": args.pictures,
        "picture_kib": args.picture_kib,
        "large_mib": args.large_mib,
    }
    with tempfile.TemporaryDirectory() as tmp:
        out["local"] = measure(LocalMediaStore(Path(tmp) / "media"), pictures, large)
        db = Database(f"sqlite:///{Path(tmp) / 'wasync.db'}")
        db.migrate()
        try:
            out["database/sqlite"] = measure(DatabaseMediaStore(db), pictures, large)
            out["database/sqlite"]["sqlite_substr_stream_mib_per_s"] = substr_stream(db, len(large))
        finally:
            db.close()
    if args.postgres:
        with pg_schema(args.postgres) as url:
            pg = Database(url)
            pg.migrate()
            try:
                out["database/postgresql"] = measure(DatabaseMediaStore(pg), pictures, large)
            finally:
                pg.close()
    base = out["local"]
    for name in ("database/sqlite", "database/postgresql"):
        if name in out:
            out[name]["vs_local"] = {
                k: round(v / base[k], 2) for k, v in out[name].items() if k in base
            }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
