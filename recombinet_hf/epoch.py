"""`SharedEpoch`: the epoch counter a dataset shares with its DataLoader workers.

`set_epoch` runs in the main process, but persistent workers keep their own copy of the
dataset for the whole run. The counter therefore lives in a named shared-memory block: forked
workers inherit the mapping, and spawned workers (macOS/Windows default) attach to it by name
when the dataset is unpickled, so a later `set_epoch` reaches both.
"""

from __future__ import annotations

import mmap
import os
import struct
import weakref
from multiprocessing import shared_memory
from typing import Optional

_FORMAT = "q"  # one signed 64-bit integer


def _release(memory: shared_memory.SharedMemory, owner_pid: Optional[int]) -> None:
    """Close the mapping; the creating process also removes the block (forked copies never do)."""
    try:
        memory.close()
    except BufferError:  # a view is still alive at interpreter exit; the OS reclaims it
        pass
    if owner_pid == os.getpid():
        try:
            memory.unlink()
        except FileNotFoundError:
            pass


class _AnonymousBlock:
    """Fallback storage: an anonymous shared mapping (shared with forked children only)."""

    name = None

    def __init__(self) -> None:
        self.buf = memoryview(mmap.mmap(-1, struct.calcsize(_FORMAT)))


class SharedEpoch:
    """An integer epoch visible to every process that holds a copy.

    Deep copies share the counter. Pickling carries the block's name and the current value:
    unpickling attaches to the block while the creating process lives, and otherwise starts a
    private counter at that value.
    """

    def __init__(self, value: int = 0) -> None:
        try:
            self._memory = shared_memory.SharedMemory(create=True, size=struct.calcsize(_FORMAT))
            weakref.finalize(self, _release, self._memory, os.getpid())
        except OSError:  # no usable /dev/shm: an anonymous shared map still reaches forked workers
            self._memory = _AnonymousBlock()
        self.value = value

    @classmethod
    def _attach(cls, name: Optional[str], value: int) -> "SharedEpoch":
        if name is None:
            return cls(value)
        try:
            memory = shared_memory.SharedMemory(name=name)
        except (FileNotFoundError, OSError):
            return cls(value)
        epoch = cls.__new__(cls)
        epoch._memory = memory
        weakref.finalize(epoch, _release, memory, None)
        return epoch

    @property
    def value(self) -> int:
        return struct.unpack_from(_FORMAT, self._memory.buf)[0]

    @value.setter
    def value(self, epoch: int) -> None:
        struct.pack_into(_FORMAT, self._memory.buf, 0, int(epoch))

    def __deepcopy__(self, memo) -> "SharedEpoch":
        return self

    def __reduce__(self):
        return (SharedEpoch._attach, (self._memory.name, self.value))
