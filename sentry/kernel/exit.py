"""TaskExit, in a module of its own so handler modules can import it without cycles."""


class TaskExit(Exception):
    """Raised by exit/exit_group handlers: the task (or its group) ends with `status`."""

    def __init__(self, status: int, *, group: bool = True) -> None:
        super().__init__(status)
        self.status = status
        self.group = group
