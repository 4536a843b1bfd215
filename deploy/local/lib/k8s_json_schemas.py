"""Write kubeconform's schema folder from the Kubernetes API's own OpenAPI document, offline.

kubeconform downloads its JSON schemas from GitHub (yannh/kubernetes-json-schema) unless told
where else to look. The same schemas derive from the API's swagger.json, which the
`k8s.io/kubernetes` Go module carries (api/openapi-spec/swagger.json) and the Go module proxy
serves; deploy/local/kubeconform.sh fetches it and runs this script (standard library only):

    python3 k8s_json_schemas.py <swagger.json> <folder>/v<version>-standalone-strict

One file per kind, named as kubeconform looks it up (`deployment-apps-v1.json`, `service-v1.json`),
built as yannh's are (openapi2jsonschema --kubernetes --strict --stand-alone): `int-or-string`
accepts both, a quantity a string or a number, an object with known properties refuses unknown
ones (as the API server does), and `apiVersion`/`kind` must name the file's kind. One difference:
each file carries the definitions it uses under `definitions` instead of inlining them, which
validates the same and keeps recursive types (a CRD's schema) finite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REF_PREFIX = "#/definitions/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = {"oneOf": [{"type": "string"}, {"type": "integer"}]}


def main(swagger: Path, folder: Path) -> int:
    definitions: dict[str, Any] = json.loads(swagger.read_text())["definitions"]
    strict = {name: strictly(definition) for name, definition in definitions.items()}
    strict[QUANTITY] = {"oneOf": [{"type": "string"}, {"type": "number"}]}
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            schema = for_kind(name, strict, gvk["group"], gvk["version"], gvk["kind"])
            (folder / file_name(gvk["group"], gvk["version"], gvk["kind"])).write_text(
                json.dumps(schema, separators=(",", ":"))
            )
            written += 1
    print(f"{written} schemas in {folder}")
    return 0


def strictly(node: Any) -> Any:
    """The node with `int-or-string` made explicit and unknown properties refused."""
    if isinstance(node, list):
        return [strictly(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return dict(INT_OR_STRING)
    converted = {key: strictly(value) for key, value in node.items()}
    if "properties" in converted and "additionalProperties" not in converted:
        converted["additionalProperties"] = False
    return converted


def for_kind(name: str, strict: dict[str, Any], group: str, version: str, kind: str) -> Any:
    root = json.loads(json.dumps(strict[name]))  # a copy: the enums below are this kind's
    properties = root.setdefault("properties", {})
    api_version = f"{group}/{version}" if group else version
    properties["apiVersion"] = {"type": "string", "enum": [api_version]}
    properties["kind"] = {"type": "string", "enum": [kind]}
    root["definitions"] = {used: strict[used] for used in sorted(referenced(strict[name], strict))}
    return root


def referenced(node: Any, strict: dict[str, Any]) -> set[str]:
    """Every definition `node` refers to, directly or through another definition."""
    found: set[str] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, list):
            pending.extend(current)
        elif isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF_PREFIX):
                target = ref.removeprefix(REF_PREFIX)
                if target not in found:
                    found.add(target)
                    pending.append(strict[target])
            pending.extend(value for key, value in current.items() if key != "$ref")
    return found


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's name for a kind: `<kind>-<first label of the group>-<version>.json`."""
    prefix = f"{kind.lower()}-{group.split('.')[0]}" if group else kind.lower()
    return f"{prefix}-{version}.json"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: k8s_json_schemas.py <swagger.json> <output folder>")
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
