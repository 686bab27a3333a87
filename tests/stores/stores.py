"""The stores of the conformance suite, each behind one small interface, so that every test
case runs once per backend: local disk, S3 (SeaweedFS), GCS (fake-gcs-server) and Azure
Blob (Azurite), all on loopback. tests/stores/run.sh starts the servers and exports where
they are:

    S3:    AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, TENSORSTREAM_TEST_S3_BUCKET
    GCS:   STORAGE_EMULATOR_HOST, TENSORSTREAM_TEST_GCS_BUCKET
    Azure: AZURE_STORAGE_CONNECTION_STRING, TENSORSTREAM_TEST_AZURE_CONTAINER

A Store uploads objects with the store's own client (boto3, the GCS JSON upload API,
azure-storage-blob),
names the environment under which the library reaches it through a given endpoint (a fault
proxy, a closed port), and the environment under which access is denied.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, Optional

HERE = Path(__file__).resolve().parent


class Prefix:
    """A fresh folder of a store: upload, and the URIs of what was uploaded."""

    def __init__(self, store: "Store", key: str) -> None:
        self.store = store
        self.key = key  # no trailing '/'; for object stores the key prefix without bucket
        self.uri = store.uri_of(key)

    def put(self, relative: str, data: bytes) -> str:
        self.store.put(f"{self.key}/{relative}", data)
        return f"{self.uri}/{relative}"

    def upload(self, relative: str, path) -> str:
        return self.put(relative, Path(path).read_bytes())


class Store:
    name = ""
    remote = True
    flavor = ""  # the fault proxy's error-body format

    def available(self) -> bool:
        raise NotImplementedError

    def uri_of(self, key: str) -> str:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def new_prefix(self, label: str = "t") -> Prefix:
        return Prefix(self, f"{label}-{uuid.uuid4().hex[:12]}")

    def missing_container_uri(self) -> str:
        """A URI in a bucket (or directory) that does not exist."""
        raise NotImplementedError

    def upstream_port(self) -> int:
        raise NotImplementedError

    def endpoint_env(self, port: int) -> Dict[str, str]:
        """Environment overrides under which the library sends this store's requests to
        127.0.0.1:port (a fault proxy, a closed port) instead of the server."""
        raise NotImplementedError

    def denied_env(self, proxy_port: int) -> Dict[str, str]:
        """Environment overrides under which reads are refused (403/401). proxy_port is a
        fault proxy started with --require-authorization, for stores whose emulator checks
        nothing."""
        raise NotImplementedError

    def denied_secrets(self):
        """The secrets of denied_env, which no error message may show."""
        return []


class LocalStore(Store):
    """Local disk: a private temporary directory; "access denied" is a file this process
    may not read (checked through a child that is not root, see conformance tests)."""

    name = "local"
    remote = False

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tensorstream-local-store-"))

    def available(self) -> bool:
        return True

    def uri_of(self, key: str) -> str:
        return str(self.root / key)

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def missing_container_uri(self) -> str:
        return str(self.root / f"missing-{uuid.uuid4().hex[:8]}" / "model.safetensors")


class S3Store(Store):
    name = "s3"
    flavor = "s3"

    def __init__(self) -> None:
        self.bucket = os.environ.get("TENSORSTREAM_TEST_S3_BUCKET", "")
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        self._client = None

    def available(self) -> bool:
        return bool(self.bucket and self.endpoint)

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10},
                              max_pool_connections=16))
        return self._client

    def uri_of(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def missing_container_uri(self) -> str:
        return f"s3://{self.bucket}-missing-{uuid.uuid4().hex[:8]}/model.safetensors"

    def upstream_port(self) -> int:
        return urllib.parse.urlsplit(self.endpoint).port

    def endpoint_env(self, port: int) -> Dict[str, str]:
        return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}

    def denied_env(self, proxy_port: int) -> Dict[str, str]:
        # SeaweedFS checks signatures: a wrong secret is refused by the server itself.
        return {"AWS_SECRET_ACCESS_KEY": "conformance-wrong-secret-731"}

    def denied_secrets(self):
        return ["conformance-wrong-secret-731"]


class GcsStore(Store):
    name = "gcs"
    flavor = "gcs"

    def __init__(self) -> None:
        self.bucket = os.environ.get("TENSORSTREAM_TEST_GCS_BUCKET", "")
        self.host = os.environ.get("STORAGE_EMULATOR_HOST", "")

    def available(self) -> bool:
        return bool(self.bucket and self.host)

    def _request(self, method: str, path: str, data: Optional[bytes] = None,
                 content_type: str = "application/octet-stream"):
        request = urllib.request.Request(f"http://{self.host}{path}", data=data, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.read()

    def create_bucket(self) -> None:
        try:
            self._request("POST", "/storage/v1/b", json.dumps({"name": self.bucket}).encode(),
                          "application/json")
        except urllib.error.HTTPError as e:
            if e.code != 409:  # already exists
                raise

    def uri_of(self, key: str) -> str:
        return f"gs://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        name = urllib.parse.quote(key, safe="")
        self._request("POST", f"/upload/storage/v1/b/{self.bucket}/o?uploadType=media&name={name}",
                      data)

    def missing_container_uri(self) -> str:
        return f"gs://{self.bucket}-missing-{uuid.uuid4().hex[:8]}/model.safetensors"

    def upstream_port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    def endpoint_env(self, port: int) -> Dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": f"127.0.0.1:{port}"}

    def denied_env(self, proxy_port: int) -> Dict[str, str]:
        # The emulator checks nothing; the proxy in front of it wants a bearer token that the
        # anonymous emulator client never sends, and answers 401 as GCS does.
        return self.endpoint_env(proxy_port)


class AzureStore(Store):
    name = "azure"
    flavor = "azure"
    # Azurite 3.37 refuses the newest service version azure-storage-blob sends by default.
    API_VERSION = "2025-11-05"
    WRONG_KEY = "Y29uZm9ybWFuY2Utd3Jvbmcta2V5LXNlY3JldC03MzE="

    def __init__(self) -> None:
        self.container = os.environ.get("TENSORSTREAM_TEST_AZURE_CONTAINER", "")
        self.connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
        self._client = None

    def available(self) -> bool:
        return bool(self.container and self.connection_string)

    def _field(self, name: str) -> str:
        for part in self.connection_string.split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() == name.lower():
                return value.strip()
        return ""

    @property
    def client(self):
        if self._client is None:
            from azure.storage.blob import BlobServiceClient

            self._client = BlobServiceClient.from_connection_string(
                self.connection_string, api_version=self.API_VERSION)
        return self._client

    def create_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.client.create_container(self.container)
        except ResourceExistsError:
            pass

    def uri_of(self, key: str) -> str:
        return f"az://{self.container}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.client.get_blob_client(self.container, key).upload_blob(data, overwrite=True)

    def missing_container_uri(self) -> str:
        return f"az://{self.container}-missing-{uuid.uuid4().hex[:8]}/model.safetensors"

    def upstream_port(self) -> int:
        return urllib.parse.urlsplit(self._field("BlobEndpoint")).port

    def _with(self, **fields: str) -> Dict[str, str]:
        parts = {k: v for k, _, v in (p.partition("=") for p in self.connection_string.split(";"))
                 if k}
        parts.update(fields)
        return {"AZURE_STORAGE_CONNECTION_STRING": ";".join(f"{k}={v}" for k, v in parts.items())}

    def endpoint_env(self, port: int) -> Dict[str, str]:
        account_path = urllib.parse.urlsplit(self._field("BlobEndpoint")).path
        return self._with(BlobEndpoint=f"http://127.0.0.1:{port}{account_path}")

    def denied_env(self, proxy_port: int) -> Dict[str, str]:
        # Azurite checks Shared Key signatures: a wrong (well-formed) key is refused.
        return self._with(AccountKey=self.WRONG_KEY)

    def denied_secrets(self):
        return [self.WRONG_KEY, self.WRONG_KEY.rstrip("=")[:20], self._field("AccountKey")[:20]]


def all_stores():
    return [LocalStore(), S3Store(), GcsStore(), AzureStore()]


class FaultProxy:
    """fault_proxy.py in a child process, for the lifetime of a fixture."""

    def __init__(self, store: Store, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "fault_proxy.py"), "--upstream-port",
             str(store.upstream_port()), "--flavor", store.flavor, "--max-seconds", "1800",
             *extra],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError(f"fault_proxy.py did not start: {line!r}")
        self.port = int(line.split()[1])

    def stats(self) -> dict:
        """The proxy's counters (see fault_proxy.py): requests, range_requests, body_bytes."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__fault_proxy/stats",
                                    timeout=10) as reply:
            return json.loads(reply.read())

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
