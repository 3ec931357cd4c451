"""TaskExit, in a module of its own so handler modules can import it without cycles."""


class TaskExit(Exception):
    """Raised by exit/exit_group handlers: the task (or its group) ends with `status`."""

    def __init__(self, status: int, *, group: bool = True, signal: int = 0) -> None:
        super().__init__(status)
        self.status = status
        self.group = group
        self.signal = signal

    @property
    def wait_status(self) -> int:
        """What wait4 reports: the signal number for a kill, else ``code << 8``."""
        return self.signal if self.signal else (self.status & 0xFF) << 8
