"""Page-cache control shared by the benchmarks: evict a file (the next read comes from the
disk) or warm it (read it whole once)."""
import os


def evict(path):
    """Drops the file's pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path):
    """Reads the whole file once so that it sits in the page cache."""
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass
