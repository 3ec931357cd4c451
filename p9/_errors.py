"""The one protocol error of p9, saying whose fault it is, and the client's OSErrors."""

from __future__ import annotations

import os


class ProtocolError(Exception):
    """Bytes or messages that break 9P2000.L framing or encoding rules.

    Why one class: a caller handling untrusted input needs exactly one thing to catch. The
    attributes say whose fault it is and whether the stream is still usable.

    Attributes:
        remote: True when the peer sent something invalid, False for a local misuse
            (encoding a value that does not fit its field).
        tag: the tag of the offending frame when it is known, else None.
        msg_type: the message type number of the offending frame when known, else None.
        recoverable: True when the frame boundary was intact so the stream can continue
            (the caller may answer the tag with Rlerror); False when framing is lost.
    """

    def __init__(
        self,
        message: str,
        *,
        remote: bool = True,
        tag: int | None = None,
        msg_type: int | None = None,
        recoverable: bool = False,
    ) -> None:
        super().__init__(message)
        self.remote = remote
        self.tag = tag
        self.msg_type = msg_type
        self.recoverable = recoverable


def oserror(code: int, what: str = "") -> OSError:
    """An OSError for `code` with the errno's text and what failed (the client raises these)."""
    return OSError(code, os.strerror(code) + (f" ({what})" if what else ""))
