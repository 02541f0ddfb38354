"""The `occopus` Python package (host/python) against the real library: the
hello example built and destroyed on the local cloud, invalid files, scaling
within and outside the limits, and Ctrl-C during a build, resumed.

Run by scripts/test with the virtual environment scripts/setup --test makes
(target/python/venv, the wheel installed in it)."""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

import occopus

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
HELLO = REPOSITORY / "examples" / "hello" / "infra.yaml"
# Compiled plugins are cached across the tests (and with the Rust tests').
CACHE = REPOSITORY / "target" / "tmp" / "plugin-cache"


def open_occopus(directory, subnet):
    """An occopus whose local cloud uses 127.80.SUBNET.0/24 (each test its own)."""
    config = directory / "occopus.yaml"
    config.write_text(
        f"local_cloud:\n  root: {directory / 'local-cloud'}\n"
        f"  address_range: 127.80.{subnet}.0/24\n  max_nodes: 16\n"
    )
    return occopus.Occopus(
        directory / "state.db",
        config=config,
        plugin_dir=directory / "plugins",
        cache_dir=CACHE,
    )


@pytest.fixture
def opened(tmp_path):
    """`opened(subnet)` opens an occopus in the test's directory; whatever it
    still records when the test ends is destroyed (no node outlives a test)."""
    handles = []

    def open_at(subnet):
        handles.append(open_occopus(tmp_path, subnet))
        return handles[-1]

    yield open_at
    for o in handles:
        for infra in o.info():
            o.destroy(infra.id)


def test_hello_builds_and_destroys_with_events(opened):
    with opened(133) as o:
        events = []
        report = o.build(HELLO, on_event=events.append)
        infra_id = report["infra_id"]
        assert [i["phase"] for i in report["instances"]] == ["ready", "ready"]
        assert all(isinstance(e, occopus.Event) for e in events)
        ready = {e.node for e in events if e.phase == "ready"}
        assert ready == {"web", "client"}
        creating = [e for e in events if e.phase == "creating"]
        assert len(creating) == 2 and all(e.infra_id == infra_id for e in creating)

        [infra] = o.info(infra_id[:8])
        assert (infra.id, infra.name, infra.status) == (infra_id, "hello", "ready")
        assert {i.node for i in infra.instances} == {"web", "client"}
        assert all(i.address.startswith("127.80.133.") for i in infra.instances)
        assert infra.nodes["web"]["max"] == 3
        report_dict = infra.occopus_report()
        assert report_dict["web"]["scaling"]["actual"] == 1
        assert len(o.local_cloud_nodes(infra_id)) == 2

        destroyed = o.destroy(infra_id, on_event=events.append)
        assert destroyed["destroyed"] == 2 and destroyed["failed"] == []
        assert {e.phase for e in events[-4:]} <= {"destroying", "destroyed"}
        assert o.local_cloud_nodes(infra_id) == []
        with pytest.raises(occopus.NotFound) as missing:
            o.info(infra_id)
        assert missing.value.code == "unknown-infra"


def test_invalid_files_raise_with_their_places(tmp_path, opened):
    broken = tmp_path / "infra.yaml"
    broken.write_text(
        textwrap.dedent(
            """\
            infra_name: broken
            nodes:
              - name: a
                type: hello_web
                scaling: {min: 3, max: 1}
            """
        )
    )
    with opened(134) as o:
        o.import_node_definitions(HELLO.parent / "nodes" / "node_definitions.yaml")
        for call in (o.validate, o.build):
            with pytest.raises(occopus.InvalidDescription) as invalid:
                call(broken)
            assert invalid.value.code == "invalid-description"
            errors = [d for d in invalid.value.diagnostics if d.severity == "error"]
            scaling = [d for d in errors if "max (1) is below min (3)" in d.message]
            assert len(scaling) == 1, [str(d) for d in errors]
            [problem] = scaling
            line = broken.read_text().splitlines()[4]
            assert (problem.file, problem.line, problem.column) == (
                str(broken),
                5,
                line.index("max: 1") + 1,
            )
            assert str(problem).startswith(f"{broken}:5:{line.index('max: 1') + 1}: error:")
        assert o.info() == []


def test_scaling_within_and_outside_the_limits(opened):
    with opened(135) as o:
        infra_id = o.build(HELLO)["infra_id"]
        queued = o.scale(infra_id, "web", by=1)
        assert (queued["node"], queued["target"]) == ("web", 2)
        o.maintain_once(infra_id)
        [infra] = o.info(infra_id)
        web = infra.instances_of("web")
        assert len(web) == 2 and all(i.state == "ready" for i in web)

        with pytest.raises(occopus.ScaleRefused) as refused:
            o.scale(infra_id, "web", to=5)
        assert refused.value.code == "scaling-refused"
        assert "3" in str(refused.value)
        with pytest.raises(occopus.NotFound):
            o.scale(infra_id, "nope", by=1)
        with pytest.raises(ValueError):
            o.scale(infra_id, "web", by=1, to=2)
        o.destroy(infra_id)


SLOW_INFRA = """\
infra_name: slow
nodes:
  - &A {name: a, type: slow}
  - &B {name: b, type: slow}
  - &C {name: c, type: slow}
dependencies:
  - [*B, *A]
  - [*C, *B]
"""
SLOW_NODES = """\
'node_def:slow':
  - resource: {type: dummy, create_latency: 0.2, boot_time: 0.8}
    health_check: {ping: false}
"""

BUILD_UNTIL_INTERRUPTED = """\
import sys, occopus
o = occopus.Occopus(sys.argv[1], plugin_dir=sys.argv[2], cache_dir=sys.argv[3])
def on_event(event):
    print(event.phase, event.node, event.instance_id, flush=True)
try:
    o.build(sys.argv[4], sys.argv[5], on_event=on_event)
    print("finished", flush=True)
except KeyboardInterrupt:
    [infra] = o.info()
    print("interrupted", infra.id, flush=True)
"""


def test_ctrl_c_stops_a_build_gracefully_and_it_resumes(tmp_path):
    infra = tmp_path / "infra.yaml"
    infra.write_text(SLOW_INFRA)
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(SLOW_NODES)
    state = tmp_path / "state.db"
    child = subprocess.Popen(
        [sys.executable, "-c", BUILD_UNTIL_INTERRUPTED, str(state), str(tmp_path / "plugins"),
         str(CACHE), str(infra), str(nodes)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in child.stdout:
        lines.append(line.split())
        if line.startswith("ready a "):
            # a is up, b is being made: Ctrl-C now.
            child.send_signal(signal.SIGINT)
            break
    rest = child.stdout.read().split("\n")
    assert child.wait(timeout=60) == 0
    last = rest[-2].split()
    assert last[0] == "interrupted", rest
    infra_id = last[1]

    o = occopus.Occopus(state, plugin_dir=tmp_path / "plugins", cache_dir=CACHE)
    [recorded] = o.info(infra_id)
    assert recorded.status == "interrupted", recorded
    assert "c" not in {i.node for i in recorded.instances}, "nothing new started after Ctrl-C"
    before = {i.id for i in recorded.instances}

    report = o.build(infra, nodes, infra_id=infra_id)
    assert [i["phase"] for i in report["instances"]] == ["ready"] * 3
    [resumed] = o.info(infra_id)
    assert sorted(i.node for i in resumed.instances) == ["a", "b", "c"]
    assert before <= {i.id for i in resumed.instances}, "the instances made before were kept"
    o.destroy(infra_id)


def test_the_docstrings_help():
    assert "Ctrl-C" in occopus.Occopus.build.__doc__
    assert "InvalidDescription" in occopus.Occopus.validate.__doc__
    assert issubclass(occopus.ScaleRefused, occopus.OccopusError)


def test_the_example_program_runs(tmp_path):
    """examples/python/hello.py, as a user runs it (its own local cloud
    directory, the default address range of the local cloud)."""
    run = subprocess.run(
        [sys.executable, str(REPOSITORY / "examples" / "python" / "hello.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "is ready" in run.stdout and "destroyed" in run.stdout, run.stdout
    assert "web: 127." in run.stdout and "client: 127." in run.stdout, run.stdout


def test_the_asyncio_variants_run_beside_the_event_loop(opened):
    """`occopus.aio` runs the blocking calls in a worker thread: the event
    loop keeps running while a build waits."""
    import asyncio

    with opened(136) as o:

        async def main():
            ticks = 0

            async def tick():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            assert await occopus.aio.validate(o, HELLO) == []
            report = await occopus.aio.build(o, HELLO)
            ticker.cancel()
            await occopus.aio.destroy(o, report["infra_id"])
            return report, ticks

        report, ticks = asyncio.run(main())
        assert [i["phase"] for i in report["instances"]] == ["ready", "ready"]
        assert ticks > 10, "the event loop stood still during the build"
