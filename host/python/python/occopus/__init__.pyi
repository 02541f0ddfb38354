"""Type hints of the `occopus` package (see its docstrings)."""

import os
from typing import Any, Callable, Literal, Optional, Union

_Path = Union[str, os.PathLike[str]]
Phase = Literal["waiting", "creating", "pending", "checking", "ready", "failed", "stopped", "destroying", "destroyed"]

class Event:
    """One state change of an instance."""
    time_ms: int
    infra_id: str
    node: str
    instance_id: str
    phase: Phase
    detail: Optional[str]

class Diagnostic:
    """A problem of the files, with its place (str() gives `file:line:col: error: ...`)."""
    severity: Literal["error", "warning"]
    file: Optional[str]
    line: Optional[int]
    column: Optional[int]
    message: str
    help: str

class Instance:
    """One instance of a node, as recorded."""
    id: str
    node: str
    state: Literal["creating", "pending", "running", "ready", "failed", "destroying"]
    address: Optional[str]
    private_address: Optional[str]
    cloud_id: Optional[str]
    error: Optional[str]
    health: Literal["healthy", "failing", "unknown"]
    health_detail: Optional[str]

class Infra:
    """A recorded infrastructure."""
    id: str
    name: str
    status: str
    nodes: dict[str, dict[str, Any]]
    instances: list[Instance]
    def occopus_report(self) -> dict[str, Any]:
        """Occopus's own report: {node: {"instances": {...}, "scaling": {...}}}."""
    def instances_of(self, node: str) -> list[Instance]:
        """The instances of `node`."""

class Occopus:
    """An open occopus: plugins loaded, state database open."""
    def __init__(
        self,
        state: _Path,
        *,
        config: Optional[_Path] = None,
        plugin_dir: Optional[_Path] = None,
        cache_dir: Optional[_Path] = None,
        local_cloud_dir: Optional[_Path] = None,
        auth_data: Optional[_Path] = None,
        read_only: bool = False,
    ) -> None: ...
    def __enter__(self) -> "Occopus": ...
    def __exit__(self, *exc: object) -> Literal[False]: ...
    def validate(self, infra: _Path, nodes: Optional[_Path] = None) -> list[Diagnostic]:
        """Validates without building; returns the warnings, raises InvalidDescription."""
    def build(
        self,
        infra: _Path,
        nodes: Optional[_Path] = None,
        *,
        infra_id: Optional[str] = None,
        rollback: bool = False,
        on_event: Optional[Callable[[Event], object]] = None,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """Builds (or resumes) the infrastructure; returns the report."""
    def destroy(
        self,
        infra_id: str,
        *,
        on_event: Optional[Callable[[Event], object]] = None,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """Destroys an infrastructure and forgets it; returns the report."""
    def info(self, infra_id: Optional[str] = None) -> list[Infra]:
        """The recorded infrastructures, or the one named (NotFound if none)."""
    def plan(
        self, infra: _Path, nodes: Optional[_Path] = None, *, infra_id: Optional[str] = None
    ) -> dict[str, Any]:
        """What building the files would change: {"plan": {...}, "text": "..."}."""
    def maintain_once(
        self,
        infra_id: str,
        *,
        on_event: Optional[Callable[[Event], object]] = None,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """One maintenance pass: heals failed instances, applies queued scaling."""
    def scale(
        self,
        infra_id: str,
        node: str,
        *,
        by: Optional[int] = None,
        to: Optional[int] = None,
        instance: Optional[str] = None,
    ) -> dict[str, Any]:
        """Queues a scaling request (ScaleRefused outside the node's limits)."""
    def import_node_definitions(self, path: _Path) -> list[str]:
        """Stores node definitions for later builds; returns the types imported."""
    def local_cloud_nodes(self, infra_id: Optional[str] = None) -> list[dict[str, Any]]:
        """The built-in local cloud's nodes."""

class aio:
    """Coroutine versions of the blocking methods (run in a worker thread)."""
    @staticmethod
    async def validate(o: Occopus, infra: _Path, nodes: Optional[_Path] = None) -> list[Diagnostic]: ...
    @staticmethod
    async def build(o: Occopus, infra: _Path, nodes: Optional[_Path] = None, **kwargs: Any) -> dict[str, Any]: ...
    @staticmethod
    async def destroy(o: Occopus, infra_id: str, **kwargs: Any) -> dict[str, Any]: ...
    @staticmethod
    async def plan(o: Occopus, infra: _Path, nodes: Optional[_Path] = None, **kwargs: Any) -> dict[str, Any]: ...
    @staticmethod
    async def maintain_once(o: Occopus, infra_id: str, **kwargs: Any) -> dict[str, Any]: ...

class OccopusError(Exception):
    """Any failure of occopus; `code` names its kind."""
    code: str
class InvalidDescription(OccopusError):
    """The files have problems: `diagnostics` lists them with their places."""
    diagnostics: list[Diagnostic]
class BadConfiguration(OccopusError): ...
class NotFound(OccopusError): ...
class LeaseHeld(OccopusError): ...
class ScaleRefused(OccopusError): ...
class PluginUnavailable(OccopusError): ...
class CloudCallFailed(OccopusError): ...
class OperationFailed(OccopusError):
    """The operation ran and failed; `report` (if any) is its report."""
    report: dict[str, Any]
class StateDatabaseError(OccopusError): ...
