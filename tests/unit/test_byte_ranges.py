"""The one byte range a Range header asks for, as the media route serves it."""

from __future__ import annotations

import pytest

from wasync.api.byte_ranges import ByteRange, Unsatisfiable, requested


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 10, 100)),
        ("bytes=10-", ByteRange(10, 100, 100)),
        ("bytes=-5", ByteRange(95, 100, 100)),
        ("bytes=-500", ByteRange(0, 100, 100)),  # more than there is: all of it
        ("bytes=90-500", ByteRange(90, 100, 100)),  # cut at the end
        ("BYTES = 1 - 2", ByteRange(1, 3, 100)),
        ("bytes=99-99", ByteRange(99, 100, 100)),
    ],
)
def test_one_range(header: str, expected: ByteRange) -> None:
    assert requested(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    [None, "bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=-", "bytes=a-b", "0-10", ""],
)
def test_what_is_answered_with_the_whole_body(header: str | None) -> None:
    assert requested(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable) as raised:
        requested(header, size)
    assert raised.value.content_range == f"bytes */{size}"


def test_content_range() -> None:
    assert ByteRange(2, 6, 10).content_range == "bytes 2-5/10"
    assert ByteRange(2, 6, 10).length == 4
