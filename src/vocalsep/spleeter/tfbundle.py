"""Read TensorFlow checkpoints (the "tensor bundle" format) without TensorFlow.

A TensorFlow 2 / ``tf.compat.v1.train.Saver`` checkpoint with prefix ``P`` is

- ``P.index``: a sorted string table in LevelDB's table format
  (``tensorflow/core/lib/io/table*``, ``tensorflow/core/util/tensor_bundle``):
  data blocks of prefix-compressed key/value entries with restart points, an
  index block pointing at them, a metaindex block, and a 48-byte footer with
  the two block handles and the magic number ``0xdb4775248b80fb57``.  Each
  block is followed by a compression byte (0: none, which TensorFlow always
  writes; 1: Snappy) and the masked CRC32C of the block and that byte.  The
  entry with the empty key is a ``BundleHeaderProto`` (number of shards,
  endianness); every other key is a tensor name whose value is a
  ``BundleEntryProto`` (dtype, shape, shard id, offset, size, masked CRC32C).
- ``P.data-SSSSS-of-NNNNN``: the tensors' raw bytes, in the byte order the
  header names, at the entry's offset.

The few protobuf fields are decoded by hand; no TensorFlow, no protobuf
runtime.  Checksums of the index blocks and of every tensor are verified
(CRC32C, vectorised with NumPy).  Partitioned (sliced) variables and string tensors are refused.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # 2 block handles padded to 40 bytes + 8-byte magic
BLOCK_TRAILER = 5  # compression type byte + masked crc32c

# tensorflow/core/framework/types.proto -> numpy dtype (the numeric ones a checkpoint holds)
_DTYPES = {
    1: np.dtype("float32"),  # DT_FLOAT
    2: np.dtype("float64"),  # DT_DOUBLE
    3: np.dtype("int32"),  # DT_INT32
    4: np.dtype("uint8"),  # DT_UINT8
    5: np.dtype("int16"),  # DT_INT16
    6: np.dtype("int8"),  # DT_INT8
    9: np.dtype("int64"),  # DT_INT64
    10: np.dtype("bool"),  # DT_BOOL
    17: np.dtype("uint16"),  # DT_UINT16
    19: np.dtype("float16"),  # DT_HALF
    22: np.dtype("uint32"),  # DT_UINT32
    23: np.dtype("uint64"),  # DT_UINT64
}
_DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}


# -- CRC32C (Castagnoli), as TensorFlow and LevelDB use it -----------------------------

def _make_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _crc_update_py(reg: int, data: bytes | memoryview) -> int:
    t = _TABLE_LIST
    for b in bytes(data):
        reg = t[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def _crc_update(reg: int, data: bytes | memoryview | np.ndarray) -> int:
    """The CRC32C register after ``data``, starting from ``reg`` (no pre/post inversion).

    Long inputs are cut into equal lanes processed side by side in NumPy; the
    lanes' registers are then chained with the linear operator "shift by one
    lane of zero bytes", itself computed by 32 extra lanes fed with zeros.
    """
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    n = buf.size
    if n < 1 << 16:
        return _crc_update_py(reg, buf.tobytes())
    lanes = min(8192, n // 256)
    length = n // lanes
    main = buf[: lanes * length].reshape(lanes, length)
    # registers: the data lanes start at 0; lanes + b (b < 32) hold the basis vector 1 << b and see zero bytes
    regs = np.zeros(lanes + 32, np.uint32)
    regs[lanes:] = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
    column = np.zeros(lanes + 32, np.uint32)
    for j in range(length):
        column[:lanes] = main[:, j]
        regs = _TABLE[(regs ^ column) & 0xFF] ^ (regs >> 8)
    cols = [int(v) for v in regs[lanes:]]  # the operator: a register shifted by `length` zero bytes

    def shift(r: int) -> int:
        out = 0
        b = 0
        while r:
            if r & 1:
                out ^= cols[b]
            r >>= 1
            b += 1
        return out

    for r in regs[:lanes]:
        reg = shift(reg) ^ int(r)
    return _crc_update_py(reg, buf[lanes * length :].tobytes())


def crc32c(data: bytes | memoryview | np.ndarray) -> int:
    """CRC32C of ``data`` (the standard one: ``crc32c(b"123456789") == 0xE3069283``)."""
    return _crc_update(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB/TensorFlow's masked CRC: rotate right by 15 bits and add a constant."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# -- varints, protobuf ---------------------------------------------------------------------

def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _proto_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a serialised protobuf message, in order."""
    out = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise ValueError("truncated fixed64")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field")
            value = bytes(buf[pos : pos + size])
            pos += size
        elif wire == 5:
            if pos + 4 > len(buf):
                raise ValueError("truncated fixed32")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((field, wire, value))
    return out


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


@dataclass(frozen=True)
class BundleEntry:
    """One tensor's ``BundleEntryProto``."""

    name: str
    dtype: int  # TensorFlow DataType enum
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked
    sliced: bool


def parse_entry(name: str, value: bytes) -> BundleEntry:
    dtype = 0
    shape: list[int] = []
    shard = offset = size = 0
    crc = None
    sliced = False
    for field, wire, v in _proto_fields(value):
        if field == 1 and wire == 0:
            dtype = int(v)
        elif field == 2 and wire == 2:
            for f2, w2, v2 in _proto_fields(v):  # TensorShapeProto
                if f2 == 2 and w2 == 2:  # Dim
                    dim = 0
                    for f3, w3, v3 in _proto_fields(v2):
                        if f3 == 1 and w3 == 0:
                            dim = _signed64(int(v3))
                    shape.append(dim)
                elif f2 == 3 and w2 == 0 and v2:
                    raise ValueError(f"tensor {name!r} has an unknown rank")
        elif field == 3 and wire == 0:
            shard = int(v)
        elif field == 4 and wire == 0:
            offset = _signed64(int(v))
        elif field == 5 and wire == 0:
            size = _signed64(int(v))
        elif field == 6 and wire == 5:
            crc = int(v)
        elif field == 7:
            sliced = True
    return BundleEntry(name, dtype, tuple(shape), shard, offset, size, crc, sliced)


# -- the sorted string table ----------------------------------------------------------------

def _snappy_decompress(data: bytes) -> bytes:
    """Raw Snappy (the block format LevelDB uses), for blocks written with compression type 1."""
    n, pos = _varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > len(data):
                raise ValueError("truncated snappy literal")
            out += data[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ValueError("bad snappy copy offset")
        for _ in range(length):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != n:
        raise ValueError(f"snappy block decodes to {len(out)} bytes, header says {n}")
    return bytes(out)


def _read_block(table: bytes, offset: int, size: int, verify: bool) -> bytes:
    if offset < 0 or size < 0 or offset + size + BLOCK_TRAILER > len(table):
        raise ValueError(f"block at {offset}+{size} lies outside the file")
    contents = table[offset : offset + size]
    kind = table[offset + size]
    if verify:
        stored = struct.unpack_from("<I", table, offset + size + 1)[0]
        actual = mask_crc(crc32c(table[offset : offset + size + 1]))
        if stored != actual:
            raise ValueError(f"block at offset {offset}: checksum mismatch")
    if kind == 0:
        return contents
    if kind == 1:
        return _snappy_decompress(contents)
    raise ValueError(f"block at offset {offset}: unknown compression type {kind}")


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise ValueError("block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise ValueError("bad restart count")
    entries = []
    pos = 0
    key = b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise ValueError("corrupt block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + vlen]))
        pos += vlen
    return entries


def read_table(path: str | os.PathLike, verify: bool = True) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table file, in key order."""
    table = Path(path).read_bytes()
    if len(table) < FOOTER_SIZE:
        raise ValueError("file too short for a table footer")
    footer = table[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
        raise ValueError("not a TensorFlow/LevelDB table (bad magic number)")
    pos = 0
    _meta_off, pos = _varint(footer, pos)
    _meta_size, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    out: list[tuple[bytes, bytes]] = []
    for _sep, handle in _block_entries(_read_block(table, index_off, index_size, verify)):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        out.extend(_block_entries(_read_block(table, off, size, verify)))
    keys = [k for k, _ in out]
    if keys != sorted(keys):
        raise ValueError("table keys are not sorted")
    return out


# -- the bundle -------------------------------------------------------------------------------

def checkpoint_prefix(path: str | os.PathLike) -> Path:
    """The checkpoint prefix of a folder (its ``checkpoint`` file, else the only ``*.index``), an
    ``.index`` file, or a prefix itself."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        if state.is_file():
            for line in state.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    # the folder's own files first, even when the state file names an absolute
                    # path (written on another machine, or before the folder was copied)
                    for cand in (p / Path(name).name, p / name, Path(name)):
                        if cand.with_name(cand.name + ".index").is_file():
                            return cand
        indexes = sorted(p.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        raise ModelError(f"{p}: no TensorFlow checkpoint found (need a 'checkpoint' file or one *.index file)")
    if p.suffix == ".index" and p.is_file():
        return p.with_suffix("")
    if p.with_name(p.name + ".index").is_file():
        return p
    raise ModelError(f"{p}: no TensorFlow checkpoint (no {p.name}.index)")


class TensorBundle:
    """A TensorFlow checkpoint opened for reading: ``names()``, ``entry(name)``, ``read(name)``."""

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.prefix = checkpoint_prefix(path)
        self.verify = verify
        index = self.prefix.with_name(self.prefix.name + ".index")
        try:
            records = read_table(index, verify)
        except (ValueError, struct.error) as exc:
            raise ModelError(f"{index}: not a readable TensorFlow checkpoint index ({exc})") from None
        self.num_shards = 1
        self.little_endian = True
        self.entries: dict[str, BundleEntry] = {}
        for key, value in records:
            try:
                if key == b"":
                    for field, wire, v in _proto_fields(value):
                        if field == 1 and wire == 0:
                            self.num_shards = int(v)
                        elif field == 2 and wire == 0:
                            self.little_endian = int(v) == 0
                    continue
                name = key.decode("utf-8")
                self.entries[name] = parse_entry(name, value)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ModelError(f"{index}: corrupt entry {key[:60]!r} ({exc})") from None
        self._shards: dict[int, np.memmap] = {}

    def names(self) -> list[str]:
        return sorted(self.entries)

    def entry(self, name: str) -> BundleEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise ModelError(f"{self.prefix}: no tensor {name!r} in the checkpoint") from None

    def shard_path(self, shard: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard:05d}-of-{self.num_shards:05d}")

    def _shard(self, shard: int) -> np.memmap:
        if shard not in self._shards:
            path = self.shard_path(shard)
            if not path.is_file():
                raise ModelError(f"{path}: missing checkpoint data file")
            if path.stat().st_size == 0:  # np.memmap cannot map an empty file
                raise ModelError(f"{path}: the checkpoint data file is empty (0 bytes)")
            try:
                self._shards[shard] = np.memmap(path, np.uint8, mode="r")
            except (OSError, ValueError) as exc:
                raise ModelError(f"{path}: cannot read the checkpoint data file ({exc})") from None
        return self._shards[shard]

    def read(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a new native-byte-order NumPy array."""
        e = self.entry(name)
        where = f"{self.prefix}: tensor {name!r}"
        if e.sliced:
            raise ModelError(f"{where} is partitioned (sliced); this reader does not support partitioned variables")
        if e.dtype not in _DTYPES:
            raise ModelError(f"{where} has dtype {_DTYPE_NAMES.get(e.dtype, e.dtype)}, which this reader does not support")
        dtype = _DTYPES[e.dtype].newbyteorder("<" if self.little_endian else ">")
        count = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        if any(d < 0 for d in e.shape) or count * dtype.itemsize != e.size:
            raise ModelError(f"{where}: shape {e.shape} does not match its {e.size} bytes")
        data = self._shard(e.shard_id)
        if e.offset < 0 or e.offset + e.size > data.size:
            raise ModelError(f"{where} lies outside {self.shard_path(e.shard_id)} (truncated file?)")
        raw = np.asarray(data[e.offset : e.offset + e.size])
        if self.verify and e.crc32c is not None and mask_crc(crc32c(raw)) != e.crc32c:
            raise ModelError(f"{where}: checksum mismatch in {self.shard_path(e.shard_id)} (corrupt file?)")
        return raw.view(dtype).reshape(e.shape).astype(dtype.newbyteorder("="))

    def read_all(self, names=None) -> dict[str, np.ndarray]:
        return {n: self.read(n) for n in (names if names is not None else self.names())}
