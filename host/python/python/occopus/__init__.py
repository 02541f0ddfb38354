"""occopus for Python programs: build, maintain, scale and destroy
infrastructures described in Occopus's files, from a program.

    import occopus
    with occopus.Occopus("state.db", local_cloud_dir="local-cloud") as o:
        report = o.build("infra.yaml", on_event=print)

The work is done by occopus's Rust library (the same as the `occopus`
command's); blocking calls release the GIL, and Ctrl-C stops a build
gracefully (build again to resume). `asyncio` programs use the `aio`
functions, which run the blocking calls in a worker thread.
"""

import asyncio
import functools

from occopus._native import (
    BadConfiguration,
    CloudCallFailed,
    Diagnostic,
    Event,
    Infra,
    Instance,
    InvalidDescription,
    LeaseHeld,
    NotFound,
    Occopus as _Occopus,
    OccopusError,
    OperationFailed,
    PluginUnavailable,
    ScaleRefused,
    StateDatabaseError,
)

__all__ = [
    "Occopus",
    "Event",
    "Diagnostic",
    "Infra",
    "Instance",
    "OccopusError",
    "InvalidDescription",
    "BadConfiguration",
    "NotFound",
    "LeaseHeld",
    "ScaleRefused",
    "PluginUnavailable",
    "CloudCallFailed",
    "OperationFailed",
    "StateDatabaseError",
    "aio",
]


class Occopus(_Occopus):
    __doc__ = _Occopus.__doc__

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class aio:
    """The blocking methods of `Occopus` as coroutines, run in a worker
    thread (the GIL is released while they wait, so the event loop runs on):

        report = await occopus.aio.build(o, "infra.yaml")

    `on_event` callbacks run in that thread; Ctrl-C is the event loop's
    (cancel the task to give up waiting; the build goes on to its end).
    """

    @staticmethod
    def _wrap(name):
        method = getattr(_Occopus, name)

        @functools.wraps(method)
        async def call(o, *args, **kwargs):
            return await asyncio.to_thread(method, o, *args, **kwargs)

        return staticmethod(call)


for _name in ("validate", "build", "destroy", "plan", "maintain_once"):
    setattr(aio, _name, aio._wrap(_name))
del _name
