"""TEST SCAFFOLDING, not a real network driver: an ML2 mechanism driver that
binds every port to the first segment of its network, standing in for the L2
agent the test OpenStack has not (without one, Neutron cannot bind ports and
every boot fails with PortBindingFailed). It moves no packet."""

from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindEveryPort(api.MechanismDriver):
    """Binds each port at once, as an OVS agent would, without one."""

    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True},
                status="ACTIVE",
            )
            return
