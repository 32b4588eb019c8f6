#!/usr/bin/env python3
"""Validates every manifest under deploy/kubernetes/ against its schema.

* Kubernetes' own kinds (v1, apps/v1, autoscaling/v2, policy/v1,
  networking.k8s.io/v1): kubernetes-validate (PyPI), strict (unknown fields
  fail), for each Kubernetes version in K8S_VERSIONS.
* Custom resources (Gateway API, Envoy Gateway, Istio): the JSON schemas in
  deploy/kubernetes/schemas/<group>/<version>/<Kind>.json (each names the
  upstream version it describes).
* A kind with no schema is an error: nothing ships unvalidated.

Run by ./scripts/test.sh (so in CI), from the repository root:
    .venv/bin/python scripts/validate-manifests.py
Exit status 1 on any invalid manifest.
"""
import glob
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEPLOY = os.path.join(ROOT, "deploy", "kubernetes")
SCHEMAS = os.path.join(DEPLOY, "schemas")
# The oldest Kubernetes the manifests support (gRPC probes and the
# kubernetes.io/h2c appProtocol are GA there) and the newest schema set.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
CORE_GROUPS = {"v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1"}


def manifests():
    for path in sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True)):
        if os.path.commonpath([path, SCHEMAS]) == SCHEMAS:
            continue
        with open(path) as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is not None:
                    yield os.path.relpath(path, ROOT), i, doc


def check(doc):
    """Returns a list of problems (empty when valid)."""
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if not api or not kind:
        return ["no apiVersion/kind"]
    if api in CORE_GROUPS:
        problems = []
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"Kubernetes {version}: {e.message} at {'.'.join(map(str, e.path))}")
            except kubernetes_validate.SchemaNotFoundError as e:
                problems.append(f"Kubernetes {version}: no schema: {e}")
        return problems
    schema_path = os.path.join(SCHEMAS, api, f"{kind}.json")
    if not os.path.exists(schema_path):
        return [f"no schema for {api} {kind} (add {os.path.relpath(schema_path, ROOT)})"]
    with open(schema_path) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{e.message} at {'.'.join(map(str, e.absolute_path)) or '(top)'}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def main(argv):
    # `--doc FILE`: validate one extra file (the test suite feeds broken ones).
    docs = list(manifests())
    if len(argv) == 3 and argv[1] == "--doc":
        with open(argv[2]) as f:
            docs = [(argv[2], i, d) for i, d in enumerate(yaml.safe_load_all(f)) if d is not None]
    failed = 0
    for path, index, doc in docs:
        problems = check(doc)
        name = f"{path}[{index}] {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if problems:
            failed += 1
            for p in problems:
                print(f"INVALID {name}: {p}")
        else:
            print(f"ok      {name}")
    print(f"{len(docs) - failed} valid, {failed} invalid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
