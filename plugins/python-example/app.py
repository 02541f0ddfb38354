"""`static`: an occopus driver written in Python, for machines that already exist.

A node of type `static` is one of the addresses listed in its resource section;
occopus does not create or destroy the machine, it only hands it out, observes it
as running and lets the health checks decide when it is ready:

    resource:
      type: static
      addresses: [127.102.0.10, 127.102.0.11]

Instance N of a node gets the address at position hash(instance id) modulo the
number of addresses. Its schema says `"x-occopus-inventory": false`: there is
nothing to list or forget. Built with componentize-py (see docs/plugins.md).
"""

import hashlib
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import driver
from wit_world.imports import logging
from wit_world.imports.occopus_plugin_types import (
    InstanceState,
    InstanceStatus,
    PluginError_InvalidConfig,
    Target,
)

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "static resource",
    "type": "object",
    "required": ["type", "addresses"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "static"},
        "name": {"type": "string"},
        "addresses": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    # The machines exist anyway: nothing to list or forget (see docs/plugins.md).
    "x-occopus-inventory": False,
}


def addresses_of(resource_json: str) -> list:
    """The `addresses` of a resource section; an invalid-config error otherwise."""
    try:
        resource = json.loads(resource_json)
    except ValueError as error:
        raise Err(PluginError_InvalidConfig(f"the resource is not JSON: {error}"))
    addresses = resource.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        raise Err(PluginError_InvalidConfig("`addresses` must be a non-empty list"))
    if not all(isinstance(a, str) and a for a in addresses):
        raise Err(PluginError_InvalidConfig("every entry of `addresses` must be text"))
    return addresses


def pick(addresses: list, instance_id: str) -> str:
    digest = hashlib.sha256(instance_id.encode()).digest()
    return addresses[int.from_bytes(digest[:8], "big") % len(addresses)]


class Driver(exports.Driver):
    def describe(self) -> driver.DriverInfo:
        return driver.DriverInfo(
            name="static",
            version="0.1.0",
            resource_types=["static"],
            resource_schema=json.dumps(SCHEMA),
        )

    def validate(self, resource: str) -> None:
        addresses_of(resource)

    def create(self, request: driver.CreateRequest) -> str:
        address = pick(addresses_of(request.target.resource), request.instance_id)
        logging.log(logging.Level.INFO, f"{request.instance_id} is {address}")
        return f"{request.instance_id}={address}"

    def status(self, target: Target, cloud_id: str) -> InstanceStatus:
        _, _, address = cloud_id.partition("=")
        if address not in addresses_of(target.resource):
            return InstanceStatus(InstanceState.SHUTDOWN, [], [], "not listed")
        return InstanceStatus(InstanceState.RUNNING, [address], [address], None)

    def destroy(self, target: Target, cloud_id: str) -> None:
        return None

    def list(self, target: Target, infra_id: str) -> list:
        return []
