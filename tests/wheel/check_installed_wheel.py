"""Checks an installed tensorstream wheel on a system without libcurl and OpenSSL (run by
bare_machine.sh, with the fresh virtual environment's python, inside the namespace that
hide_system_libraries.sh prepared). Only numpy and the wheel are installed.

    check_installed_wheel.py EXPECTED.json
    check_installed_wheel.py --built-from-source EXPECTED.json

EXPECTED.json (make_fixture.py, completed by bare_machine.sh): the local file and for each
tensor the SHA-256 of its bytes as safetensors reads them; the s3:// URI, the endpoints
(plain HTTP; HTTPS through a TLS proxy), the proxy's CA bundle and an unrelated one.
--built-from-source (sdist_build.sh: an install linked to the system's libraries) checks
only the local file. Exits non-zero with a message on the first failure.
"""
import ctypes
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

# What the wheel may take from the system: glibc's libraries, the loader, and libgcc_s
# (libstdc++ is linked in).
ALLOWED_NEEDED = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                  "ld-linux-x86-64.so.2", "libgcc_s.so.1"}


def fail(message: str) -> None:
    print(f"check_installed_wheel: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check_libraries_hidden() -> None:
    for name in ("libcurl.so.4", "libssl.so.3", "libcrypto.so.3"):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        fail(f"{name} can still be loaded: the namespace does not hide it")


def system_libraries(binary: Path, package_dir: Path) -> set:
    """The libraries `ldd` resolves for an ELF file outside the package itself (the CLI
    finds libtensorstream.so beside it); fails on any it cannot find."""
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    names = set()
    for line in listing.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            fail(f"{binary.name}: {line}")
        name = os.path.basename(line.split()[0])
        resolved = line.split("=>")[1].split()[0] if "=>" in line else ""
        if name.startswith("linux-vdso") or resolved.startswith(str(package_dir)):
            continue
        names.add(name)
    return names


def check_binaries(package_dir: Path) -> None:
    for name in ("libtensorstream.so", "tensorstream"):
        binary = package_dir / "_lib" / name
        extra = system_libraries(binary, package_dir) - ALLOWED_NEEDED
        if extra:
            fail(f"{binary} needs {sorted(extra)} from the system (only glibc and libgcc_s)")


def digests(items) -> dict:
    return {name: hashlib.sha256(array.tobytes()).hexdigest() for name, array in items}


def check_stream(label: str, uri: str, expected: dict, env: dict) -> None:
    import tensorstream

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update({k: v for k, v in env.items() if v is not None})
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
    try:
        got = digests(tensorstream.stream(uri, framework="np"))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if got != expected:
        wrong = sorted(name for name in expected if got.get(name) != expected[name])
        fail(f"{label}: bytes differ from safetensors for {wrong or 'the tensor set'}")
    print(f"check_installed_wheel: {label}: {len(got)} tensors equal to safetensors")


def main() -> int:
    from_source = sys.argv[1] == "--built-from-source"
    spec = json.loads(Path(sys.argv[-1]).read_text())
    expected = spec["digests"]
    if not from_source:
        check_libraries_hidden()
    import tensorstream

    package_dir = Path(tensorstream.__file__).parent
    if "site-packages" not in str(package_dir):
        fail(f"tensorstream imported from {package_dir}, not from the installed package")
    no_ca = {"SSL_CERT_FILE": None, "AWS_CA_BUNDLE": None}
    check_stream("local file", spec["local"], expected, no_ca)
    if from_source:
        print("check_installed_wheel: OK")
        return 0
    check_binaries(package_dir)

    check_stream("s3:// over HTTP", spec["s3_uri"], expected,
                 {**no_ca, "AWS_ENDPOINT_URL": spec["http_endpoint"]})
    check_stream("s3:// over HTTPS, AWS_CA_BUNDLE", spec["s3_uri"], expected,
                 {"AWS_ENDPOINT_URL": spec["https_endpoint"], "AWS_CA_BUNDLE": spec["ca"],
                  "SSL_CERT_FILE": None})
    check_stream("s3:// over HTTPS, SSL_CERT_FILE", spec["s3_uri"], expected,
                 {"AWS_ENDPOINT_URL": spec["https_endpoint"], "SSL_CERT_FILE": spec["ca"],
                  "AWS_CA_BUNDLE": None})
    # No setting: the bundle at Debian's usual path (the namespace put the proxy's CA there).
    check_stream("s3:// over HTTPS, the system's bundle", spec["s3_uri"], expected,
                 {**no_ca, "AWS_ENDPOINT_URL": spec["https_endpoint"]})

    # Verification is on: a bundle without the proxy's CA is refused, and the error says so.
    try:
        check_stream("s3:// over HTTPS, an unrelated CA", spec["s3_uri"], expected,
                     {"AWS_ENDPOINT_URL": spec["https_endpoint"], "AWS_CA_BUNDLE": spec["other_ca"],
                      "SSL_CERT_FILE": None})
    except Exception as error:  # noqa: BLE001 - any failure to stream is the expected outcome
        if "TLS" not in str(error):
            fail(f"an untrusted certificate failed without saying TLS: {error}")
        print(f"check_installed_wheel: untrusted certificate refused: {str(error)[:160]}")
    else:
        fail("a server certificate from an unrelated CA was accepted")

    # The CLI from the wheel's console script, on the object store.
    cli = Path(sys.executable).parent / "tensorstream"
    run = subprocess.run([str(cli), "stream", spec["s3_uri"]], capture_output=True,
                         text=True, env={**os.environ, "AWS_ENDPOINT_URL": spec["http_endpoint"]})
    if run.returncode != 0:
        fail(f"tensorstream CLI: exit {run.returncode}: {run.stderr.strip()[-400:]}")
    print(f"check_installed_wheel: CLI: {run.stdout.strip().splitlines()[-1]}")
    print("check_installed_wheel: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
