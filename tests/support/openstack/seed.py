"""Seeds the test OpenStack, idempotently, with the standard library only
(it runs with Debian's /usr/bin/python3):

  seed.py catalog     a `service` project, a user per service (password `os`,
                      admin in `service`), the catalog's endpoints on 127.0.0.1
  seed.py ready       waits until a server boots (the fake hypervisor up, its
                      host mapped to the cell), booting and deleting a probe
  seed.py resources   what the tests use: flavors (one too big for the fake
                      host), an image, a keypair, a security group, an external
                      network with a subnet, a tenant network with a router,
                      and an application credential (written to DIR/app-credential.json)

The networks' addresses are on loopback (127.213.100.0/24 external,
127.214.0.0/24 tenant; no DHCP, which Neutron refuses there and which no agent
would serve): the fake hypervisor runs nothing, and a probe of an instance's
address must not leave the machine.
"""

import json
import sys
import urllib.error
import urllib.request

KEYSTONE = "http://127.0.0.1:15000/v3"
SERVICES = [
    # name, type, URL
    ("placement", "placement", "http://127.0.0.1:18778"),
    ("glance", "image", "http://127.0.0.1:19292"),
    ("neutron", "network", "http://127.0.0.1:19696"),
    ("nova", "compute", "http://127.0.0.1:18774/v2.1"),
]


def call(method, path, body=None, token=None, base=KEYSTONE, headers=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("X-Auth-Token", token)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request) as answer:
            text = answer.read()
            return answer.headers, (json.loads(text) if text else {})
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {path}: {error.code} {error.read().decode()}")


def admin_token():
    headers, _ = call("POST", "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "admin"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    return headers["X-Subject-Token"]


def find_or_create(token, kind, name, body, query=None):
    _, listed = call("GET", f"/{kind}s?{query or 'name=' + name}", token=token)
    if listed[f"{kind}s"]:
        return listed[f"{kind}s"][0]["id"]
    _, made = call("POST", f"/{kind}s", {kind: body}, token)
    return made[kind]["id"]


def catalog():
    token = admin_token()
    project = find_or_create(token, "project", "service",
                             {"name": "service", "domain_id": "default"})
    admin_role = find_or_create(token, "role", "admin", {"name": "admin"})
    for name, kind, url in SERVICES:
        user = find_or_create(token, "user", name,
                              {"name": name, "domain_id": "default", "password": "os"})
        call("PUT", f"/projects/{project}/users/{user}/roles/{admin_role}", token=token)
        service = find_or_create(token, "service", name, {"name": name, "type": kind},
                                 query=f"type={kind}")
        for interface in ("public", "internal"):
            _, listed = call("GET", f"/endpoints?service_id={service}&interface={interface}",
                             token=token)
            if not listed["endpoints"]:
                call("POST", "/endpoints", {"endpoint": {
                    "service_id": service, "interface": interface, "url": url,
                    "region_id": "RegionOne"}}, token)


NOVA = "http://127.0.0.1:18774/v2.1"
NEUTRON = "http://127.0.0.1:19696/v2.0"
GLANCE = "http://127.0.0.1:19292/v2"


def named(token, base, path, key, name):
    _, listed = call("GET", f"{path}?name={name}", token=token, base=base)
    return next((item for item in listed[key] if item["name"] == name), None)


def resources(directory):
    token = admin_token()
    _, me = call("GET", "/auth/tokens", token=token, headers={"X-Subject-Token": token})
    project = me["token"]["project"]["id"]
    user = me["token"]["user"]["id"]
    for name, ram, vcpus, disk in [("m1.tiny", 512, 1, 1), ("m1.small", 2048, 1, 20),
                                   ("m1.huge", 512, 1, 900000)]:
        if not named(token, NOVA, "/flavors", "flavors", name):
            call("POST", "/flavors", {"flavor": {"name": name, "ram": ram, "vcpus": vcpus,
                                                 "disk": disk}}, token, NOVA)
    image = named(token, GLANCE, "/images", "images", "cirros")
    if not image:
        _, image = call("POST", "/images", {"name": "cirros", "disk_format": "raw",
                                            "container_format": "bare",
                                            "visibility": "public"}, token, GLANCE)
        request = urllib.request.Request(
            f"{GLANCE}/images/{image['id']}/file", method="PUT", data=b"\0" * 1024,
            headers={"X-Auth-Token": token, "Content-Type": "application/octet-stream"})
        urllib.request.urlopen(request).read()
    _, keys = call("GET", "/os-keypairs", token=token, base=NOVA)
    if not any(k["keypair"]["name"] == "occopus-key" for k in keys["keypairs"]):
        call("POST", "/os-keypairs", {"keypair": {
            "name": "occopus-key", "type": "ssh",
            "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx1kfR0hOK3J8Qvb2hB4gVZJWdq0oT2mSzv7mVQh2Kc occopus-test"}},
            token, NOVA, headers={"OpenStack-API-Version": "compute 2.2"})
    if not named(token, NEUTRON, "/security-groups", "security_groups", "occopus-sg"):
        call("POST", "/security-groups", {"security_group": {"name": "occopus-sg"}},
             token, NEUTRON)
    public = named(token, NEUTRON, "/networks", "networks", "public")
    if not public:
        _, made = call("POST", "/networks", {"network": {
            "name": "public", "router:external": True, "provider:network_type": "flat",
            "provider:physical_network": "public", "shared": False}}, token, NEUTRON)
        public = made["network"]
        call("POST", "/subnets", {"subnet": {
            "name": "public-subnet", "network_id": public["id"], "ip_version": 4,
            "cidr": "127.213.100.0/24", "gateway_ip": "127.213.100.1",
            "enable_dhcp": False}}, token, NEUTRON)
    private = named(token, NEUTRON, "/networks", "networks", "private")
    if not private:
        _, made = call("POST", "/networks", {"network": {"name": "private"}}, token, NEUTRON)
        private = made["network"]
        _, subnet = call("POST", "/subnets", {"subnet": {
            "name": "private-subnet", "network_id": private["id"], "ip_version": 4,
            "cidr": "127.214.0.0/24", "enable_dhcp": False}}, token, NEUTRON)
        _, router = call("POST", "/routers", {"router": {
            "name": "router", "external_gateway_info": {"network_id": public["id"]}}},
            token, NEUTRON)
        call("PUT", f"/routers/{router['router']['id']}/add_router_interface",
             {"subnet_id": subnet["subnet"]["id"]}, token, NEUTRON)
    credential_file = f"{directory}/app-credential.json"
    try:
        open(credential_file).close()
    except FileNotFoundError:
        _, made = call("POST", f"/users/{user}/application_credentials",
                       {"application_credential": {"name": "occopus-test"}}, token)
        credential = made["application_credential"]
        with open(credential_file, "w") as out:
            json.dump({"id": credential["id"], "secret": credential["secret"],
                       "project_id": project, "private_network": private["id"],
                       "public_network": public["id"]}, out)


def ready():
    """Boots probes until one is ACTIVE (at most 3 minutes): the hypervisor
    reports itself up some 20 s after the services start, and the first
    build may fail until its host is mapped."""
    import time
    token = admin_token()
    deadline = time.monotonic() + 180
    flavor = named(token, NOVA, "/flavors", "flavors", "m1.tiny")["id"]
    _, images = call("GET", "/images?name=cirros", token=token, base=GLANCE)
    network = named(token, NEUTRON, "/networks", "networks", "private")["id"]
    while time.monotonic() < deadline:
        _, made = call("POST", "/servers", {"server": {
            "name": "readiness-probe", "imageRef": images["images"][0]["id"],
            "flavorRef": flavor, "networks": [{"uuid": network}]}}, token, NOVA)
        server = made["server"]["id"]
        status = "BUILD"
        while status == "BUILD" and time.monotonic() < deadline:
            time.sleep(0.5)
            _, shown = call("GET", f"/servers/{server}", token=token, base=NOVA)
            status = shown["server"]["status"]
        call("DELETE", f"/servers/{server}", token=token, base=NOVA)
        if status == "ACTIVE":
            return
        time.sleep(2)
    sys.exit("no server became ACTIVE within 3 minutes; see the nova logs")


if sys.argv[1] == "catalog":
    catalog()
elif sys.argv[1] == "ready":
    ready()
else:
    resources(sys.argv[2])
