"""The sink's compact dedup index behaves like a plain set of seqs, in any arrival order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.sink.seq_index import SeqSet


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=300), st.lists(st.integers(-5, 220), max_size=50))
def test_seqset_equals_a_set(added: list[int], probes: list[int]) -> None:
    compact, plain = SeqSet(), set()
    for seq in added:
        compact.add(seq)
        plain.add(seq)
        assert len(compact) == len(plain)
    for seq in probes + added:
        assert (seq in compact) == (seq in plain)


def test_in_order_seqs_keep_no_per_seq_memory() -> None:
    compact = SeqSet(range(100_000))
    assert compact.watermark == 100_000 and not compact.above and 99_999 in compact and 100_000 not in compact
