"""Build the hello example on the built-in local cloud from Python, print
every node's address, and destroy it. Copy and change freely.

    pip install target/python/wheels/occopus-*.whl   # scripts/build-python-package makes it
    python examples/python/hello.py [WORK_DIR]
"""

import pathlib
import sys

import occopus

here = pathlib.Path(__file__).resolve().parent
description = here.parent / "hello" / "infra.yaml"
work = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "occopus-hello").resolve()
work.mkdir(parents=True, exist_ok=True)


def show(event):
    print(f"  {event.node:<8} {event.instance_id:<20} {event.phase}", flush=True)


with occopus.Occopus(work / "state.db", local_cloud_dir=work / "local-cloud",
                     plugin_dir=work / "plugins") as o:
    try:
        report = o.build(description, on_event=show)
    except occopus.InvalidDescription as invalid:
        for problem in invalid.diagnostics:
            print(problem, file=sys.stderr)
        sys.exit(4)
    infra_id = report["infra_id"]
    print(f"{infra_id} is ready in {report['elapsed_ms'] / 1000:.1f} s:")
    [infra] = o.info(infra_id)
    for instance in infra.instances:
        print(f"  {instance.node}: {instance.address} ({instance.health})")
    o.destroy(infra_id, on_event=show)
    print(f"{infra_id} destroyed")
