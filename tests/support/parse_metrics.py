"""Parses an OpenMetrics text exposition (stdin) with the Prometheus
project's own Python client and prints its samples as JSON lines:
{"name", "labels", "value"}. The parser raises on anything the format does
not allow, so a test that gets lines back knows the exposition is valid."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
