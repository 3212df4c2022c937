"""Where each frame's packet is in a segment's Matroska file, and a live Matroska stream
of chosen packets (what :class:`~.fed_decoder.FedDecoder` feeds FFmpeg).

A segment file written by FFmpeg is ``EBML header, Segment{SeekHead, Info,
Tracks, Tags, Cluster*, Cues}`` with one ``SimpleBlock`` (one frame) per
``Cluster`` at these frame sizes.  :func:`index_file` reads only the element
headers (a few hundred bytes a frame, about 10 ms a file), so any frame's
packet can be sent to a running decoder without decoding the others: an
intra-only codec needs nothing else.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from ..errors import SourceError

EBML_ID = 0x1A45DFA3
SEGMENT_ID = 0x18538067
INFO_ID = 0x1549A966
TRACKS_ID = 0x1654AE6B
TRACK_ENTRY_ID = 0xAE
TRACK_UID_ID = 0x73C5  # random per file: not part of what the decoder needs
CLUSTER_ID = 0x1F43B675
SIMPLE_BLOCK_ID = 0xA3
BLOCK_GROUP_ID = 0xA0
BLOCK_ID = 0xA1
#: a Segment of unknown size: a stream that goes on as long as packets come
_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def _vint(buf: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer at ``pos``: ``(value, position after it)``."""
    if pos >= len(buf):
        raise ValueError("cut")
    b0 = buf[pos]
    n = 1
    while n <= 8 and not b0 & (0x80 >> (n - 1)):
        n += 1
    if n > 8 or pos + n > len(buf):
        raise ValueError("bad vint")
    val = b0 if keep_marker else b0 & ((0x80 >> (n - 1)) - 1)
    for c in buf[pos + 1:pos + n]:
        val = (val << 8) | c
    return val, pos + n


def _element(buf: bytes, pos: int) -> tuple[int, int, int]:
    """``(id, data start, data size)`` of the element at ``pos``."""
    eid, p = _vint(buf, pos, True)
    size, p = _vint(buf, p, False)
    return eid, p, size


@dataclass
class FileIndex:
    """One Matroska file's packets.

    Attributes
    ----------
    path : the file
    header : EBML header, a Segment of unknown size, Info and Tracks: the start of a
        live stream that decodes like this file
    codec_key : Tracks without the per-file random ids: files with equal keys decode
        with one decoder (same codec, size and codec private data)
    blocks : ``(offset, length, is_simple)`` of each frame's SimpleBlock element (or
        a BlockGroup's Block), in order
    """

    path: str
    header: bytes
    codec_key: bytes
    blocks: list


def index_file(path: str) -> FileIndex:
    """Index ``path``'s packets; SourceError (one line) for a file that is not such a file."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            return _index(f, path, size)
    except (OSError, ValueError, KeyError) as e:
        raise SourceError(f"{path}: cannot index its frames ({e}); the segment file is damaged "
                          "or not a Matroska file nirf-overlay wrote") from None


def _index(f, path: str, size: int) -> FileIndex:
    head = f.read(64 * 1024)
    eid, p, n = _element(head, 0)
    if eid != EBML_ID:
        raise ValueError("no EBML header")
    ebml = head[:p + n]
    eid, seg_start, _ = _element(head, p + n)
    if eid != SEGMENT_ID:
        raise ValueError("no Segment")
    parts: dict = {}
    blocks = []
    pos = seg_start
    while pos < size:
        f.seek(pos)
        h = f.read(16)
        if len(h) < 2:
            break
        eid, p, n = _element(h, 0)
        if eid == CLUSTER_ID:
            if not _cluster_blocks(f, pos + p, min(pos + p + n, size), blocks):
                break  # cut inside a frame
        elif eid in (INFO_ID, TRACKS_ID):
            f.seek(pos)
            parts[eid] = f.read(p + n)
        pos += p + n
    return _done(ebml, parts, path, blocks)


def _cluster_blocks(f, start: int, end: int, blocks: list) -> bool:
    """Append the cluster's frames (SimpleBlocks; a BlockGroup's Block) to ``blocks``
    as ``(offset, length, is_simple)``; False when the file ends inside one."""
    q = start
    while q < end:
        f.seek(q)
        h = f.read(16)
        cid, cp, cn = _element(h, 0)
        if cid in (SIMPLE_BLOCK_ID, BLOCK_GROUP_ID):
            if q + cp + cn > end:
                return False
            if cid == SIMPLE_BLOCK_ID:
                blocks.append((q, cp + cn, True))
            else:
                g = q + cp
                while g < q + cp + cn:
                    f.seek(g)
                    gid, gp, gn = _element(f.read(16), 0)
                    if gid == BLOCK_ID:
                        blocks.append((g, gp + gn, False))
                        break
                    g += gp + gn
        q += cp + cn
    return True


def _done(ebml: bytes, parts: dict, path: str, blocks: list) -> FileIndex:
    header = ebml + struct.pack(">I", SEGMENT_ID) + _UNKNOWN_SIZE + parts[INFO_ID] + parts[TRACKS_ID]
    return FileIndex(path, header, _codec_key(parts[TRACKS_ID]), blocks)


def _codec_key(tracks: bytes) -> bytes:
    """The Tracks element's TrackEntry children except TrackUID, concatenated."""
    _, p, n = _element(tracks, 0)
    out = []
    end = p + n
    while p < end:
        eid, q, m = _element(tracks, p)
        if eid == TRACK_ENTRY_ID:
            r, stop = q, q + m
            while r < stop:
                cid, s, k = _element(tracks, r)
                if cid != TRACK_UID_ID:
                    out.append(tracks[r:s + k])
                r = s + k
        p = q + m
    return b"".join(out)


def cluster(f, block: tuple, timecode: int) -> bytes:
    """A Cluster holding the frame ``block`` of the open file ``f`` as a SimpleBlock, at
    ``timecode`` (milliseconds; the block's own relative time is set to 0)."""
    off, length, simple = block
    f.seek(off)
    sb = bytearray(f.read(length))
    if len(sb) != length:
        raise SourceError(f"{f.name}: cut short inside a frame")
    _, p = _vint(sb, 0, True)
    _, p = _vint(sb, p, False)
    _, p = _vint(sb, p, False)  # the track number
    sb[p:p + 2] = b"\x00\x00"  # relative timecode
    if not simple:  # a Block: the same layout, marked as a key frame (intra-only)
        sb[p + 2] |= 0x80
        sb = bytearray(struct.pack(">B", SIMPLE_BLOCK_ID)) + sb[1:]
    tc = b"\xe7\x88" + struct.pack(">Q", int(timecode))
    return struct.pack(">I", CLUSTER_ID) + b"\x01" + (len(tc) + len(sb)).to_bytes(7, "big") + tc + sb
