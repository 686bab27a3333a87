"""Streams one file in a fresh process and prints its peak RSS growth in bytes (JSON).

    python rss_probe.py FILE MEMORY_LIMIT drop|keep

The peak (VmHWM) is reset through /proc/self/clear_refs after the imports, so the figure
is what streaming added. `drop` lets each tensor die before the next; `keep` holds all.
"""
import json
import os
import re
import sys

import torch  # noqa: F401  (imported before the reset, as a real consumer would)

from runai_model_streamer import SafetensorsStreamer


def status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1))


def main() -> None:
    path, limit, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    kept = []
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    base = status_kib("VmRSS")
    with SafetensorsStreamer() as streamer:
        os.environ["RUNAI_STREAMER_MEMORY_LIMIT"] = limit
        streamer.stream_file(path)
        count = 0
        for _, tensor in streamer.get_tensors():
            tensor.sum()  # touch the bytes like a consumer copying them would
            count += 1
            if mode == "keep":
                kept.append(tensor)
    print(json.dumps({"growth": (status_kib("VmHWM") - base) * 1024, "count": count}))


if __name__ == "__main__":
    main()
