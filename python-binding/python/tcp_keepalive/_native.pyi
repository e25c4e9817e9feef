"""Type stubs of the Rust extension module ``tcp_keepalive._native``."""

import datetime
from typing import Final, List, Optional, Protocol, Tuple, Union, final

__all__ = [
    "__version__",
    "DEFAULT_COUNT",
    "DEFAULT_IDLE",
    "DEFAULT_INTERVAL",
    "KeepAlive",
    "KeepAliveError",
    "Settings",
    "configure",
    "from_env",
    "inspect",
    "socket_options",
]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

#: A socket.socket, anything with fileno() (an asyncio transport's socket too), or an int
#: descriptor. bool is refused.
_SocketLike = Union[_HasFileno, int]
#: int or float seconds, or a datetime.timedelta. Finer than a second rounds up (idle, interval)
#: or to whole milliseconds (user_timeout).
_Seconds = Union[int, float, datetime.timedelta]

#: The package's version, e.g. "0.1.0" (the distribution's, from Cargo.toml).
__version__: Final[str]
DEFAULT_IDLE: Final[int]
DEFAULT_INTERVAL: Final[int]
DEFAULT_COUNT: Final[int]

class KeepAliveError(OSError):
    """A socket error: not a TCP socket, not a socket, a closed descriptor, an option this system
    lacks, or a failed system call. ``errno`` is the kernel's code; the message is the core's."""

@final
class Settings:
    """Keep-alive settings of a socket, read from the kernel. Immutable and hashable."""

    @property
    def enabled(self) -> bool:
        """SO_KEEPALIVE: whether the kernel probes at all."""
    @property
    def idle(self) -> int:
        """TCP_KEEPIDLE: seconds of silence before the first probe."""
    @property
    def interval(self) -> int:
        """TCP_KEEPINTVL: seconds between unanswered probes."""
    @property
    def count(self) -> int:
        """TCP_KEEPCNT: unanswered probes before the connection is dropped."""
    @property
    def user_timeout(self) -> Optional[float]:
        """TCP_USER_TIMEOUT in seconds, None when unset."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class KeepAlive:
    """Validated keep-alive settings. Allowed: idle and interval 1 to 32767 s, count 1 to 127,
    user_timeout 1 ms to 2147483647 ms. Immutable and hashable."""

    def __new__(
        cls,
        idle: _Seconds = 60,
        interval: _Seconds = 10,
        count: int = 6,
        user_timeout: Optional[_Seconds] = None,
    ) -> "KeepAlive": ...
    @property
    def idle(self) -> int: ...
    @property
    def interval(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def user_timeout(self) -> Optional[float]: ...
    @property
    def detection_bound(self) -> int:
        """idle + interval * count seconds: the longest a silent dead peer goes unnoticed."""
    def apply(self, sock: _SocketLike) -> None:
        """Applies the settings, all or nothing."""
    def apply_to_new_socket(self, sock: _SocketLike) -> None:
        """Applies the settings to a socket just created and not yet shared (fewer system calls)."""
    def socket_options(self) -> List[Tuple[int, int, int]]:
        """(level, option, value) tuples for socket_options= of urllib3, requests and httpx."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def configure(
    sock: _SocketLike,
    idle: _Seconds = 60,
    interval: _Seconds = 10,
    count: int = 6,
    user_timeout: Optional[_Seconds] = None,
) -> None:
    """Turns keep-alive on for a TCP socket with these timings, all or nothing."""

def inspect(sock: _SocketLike) -> Settings:
    """Reads a socket's keep-alive settings from the kernel."""

def from_env(default: Optional[KeepAlive] = None) -> Optional[KeepAlive]:
    """The settings TCP_KEEPALIVE* ask for; None when TCP_KEEPALIVE=off; ``default`` when unset."""

def socket_options(
    idle: _Seconds = 60,
    interval: _Seconds = 10,
    count: int = 6,
    user_timeout: Optional[_Seconds] = None,
) -> List[Tuple[int, int, int]]:
    """(level, option, value) tuples turning keep-alive on, checked by the core."""
