"""One way to fail: `OSError(errno, message)`, which the Sentry turns into -errno."""

from __future__ import annotations

import os


def error(err: int, what: object = None) -> OSError:
    """An OSError for `err`, with the offending value in the message when given."""
    msg = os.strerror(err)
    if what is not None:
        msg = f"{msg}: {what!r}"
    return OSError(err, msg)

