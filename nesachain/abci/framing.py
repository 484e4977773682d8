"""ABCI socket framing: each message is an unsigned-varint length followed by that many bytes.

(CometBFT v0.34 used a signed varint; v0.38 uses unsigned.) ``FrameReader`` accepts bytes as
they arrive — a frame split across reads, or many frames in one read — and yields whole frames.
"""

from __future__ import annotations

from nesachain.types.varint import encode_uvarint

__all__ = ["FrameError", "FrameReader", "encode_frame", "encode_uvarint"]

MAX_FRAME = 64 * 1024 * 1024


class FrameError(ValueError):
    """The byte stream is not valid ABCI framing."""


def encode_frame(payload: bytes) -> bytes:
    return encode_uvarint(len(payload)) + payload


class FrameReader:
    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame now complete, in order."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            length, header = self._length()
            if length is None or len(self._buf) < header + length:
                return frames
            frames.append(bytes(self._buf[header : header + length]))
            del self._buf[: header + length]

    def _length(self) -> tuple[int | None, int]:
        value = 0
        for i, byte in enumerate(self._buf):
            if i >= 10:
                raise FrameError("length varint longer than 10 bytes")
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if value > self._max:
                    raise FrameError(f"frame of {value} bytes exceeds the {self._max} limit")
                return value, i + 1
        return None, 0
