"""How the ranks of a group share the reads of one load: a partition that balances bytes.

A load is a list of byte ranges (the tensors of SafeTensors files, or the ranges of the
drop-in's FileChunks) in an order every rank computes alike. Laid end to end, the ranges
to read make one line of T bytes; rank r of G reads bytes [T*r//G, T*(r+1)//G) of it. So
every share is within one byte of T/G whatever the sizes of the tensors, and each rank's
reads are consecutive in the files (long sequential reads suit every store). A range that
straddles a boundary is split into pieces read by neighbouring ranks and reassembled on
every rank; there are at most G-1 such splits. Ranges of zero bytes are read by nobody.

Pure functions, no torch: every rank calls them with the same arguments and gets the same
answer, which is what lets the broadcast rounds agree without exchanging the plan.
"""
from __future__ import annotations

from typing import List, NamedTuple, Sequence, Tuple


class Piece(NamedTuple):
    """Bytes [start, start + length) of range ``range_index`` of the load."""

    range_index: int
    start: int
    length: int


def partition(ranges: Sequence[Tuple[int, int]], ranks: int) -> List[List[Piece]]:
    """The pieces each of ``ranks`` ranks reads, in read order.

    ``ranges``: ``(range_index, size)`` of the ranges to read, in the load's order (ranges
    of size 0 are skipped). Returns one list per rank; a rank may get none when there are
    fewer bytes than ranks."""
    if ranks < 1:
        raise ValueError(f"a partition needs at least one rank, not {ranks}")
    total = sum(size for _, size in ranges)
    shares: List[List[Piece]] = [[] for _ in range(ranks)]
    rank, position = 0, 0  # position: bytes of the line before the current range
    for range_index, size in ranges:
        start = 0
        while start < size:
            # The first rank whose share ends after this byte of the line.
            while total * (rank + 1) // ranks <= position + start:
                rank += 1
            end_of_share = total * (rank + 1) // ranks
            length = min(size - start, end_of_share - position - start)
            shares[rank].append(Piece(range_index, start, length))
            start += length
        position += size
    return shares


def share_bytes(shares: Sequence[Sequence[Piece]]) -> List[int]:
    """Bytes each rank reads."""
    return [sum(piece.length for piece in share) for share in shares]
