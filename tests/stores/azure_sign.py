"""Azure Shared Key signatures computed by azure-storage-blob's own signer, for
tests/unit/azure_test.cc, which compares them with ours. Test-only.

Reads a JSON list of requests on stdin, each {"method", "url", "headers": [[name, value],
...], "account", "key"}, and prints the JSON list of their Authorization headers."""
import json
import sys

from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy


def main() -> None:
    signed = []
    for spec in json.load(sys.stdin):
        request = HttpRequest(spec["method"], spec["url"], headers=dict(spec["headers"]))
        policy = SharedKeyCredentialPolicy(spec["account"], spec["key"])
        policy.on_request(PipelineRequest(request, PipelineContext(None)))
        signed.append(request.headers["Authorization"])
    json.dump(signed, sys.stdout)


if __name__ == "__main__":
    main()
