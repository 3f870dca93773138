"""The hub's own ids in both forms: written and read back in O(1), the URN a valid
version 8 UUID, each form read whichever one a hub writes, and neither open to a
publisher."""

from __future__ import annotations

import uuid

import pytest

from rawsse.backends.base import reserved_id
from rawsse.ids import MAX_SEQ, PLAIN, URN, parse_own

SEQS = [1, 9, 10, 4095, 4096, 2**32 + 7, 2**63, MAX_SEQ]


@pytest.mark.parametrize("seq", SEQS)
def test_both_forms_read_back_their_epoch_and_number(seq: int) -> None:
    for form in (PLAIN, URN):
        assert parse_own(form.make("0123abcd", seq)) == ("0123abcd", seq)


@pytest.mark.parametrize("seq", SEQS)
def test_the_urn_is_a_version_8_uuid_in_canonical_form(seq: int) -> None:
    made = URN.make("0123abcd", seq)
    assert made.startswith("urn:uuid:0123abcd-")
    parsed = uuid.UUID(made.removeprefix("urn:uuid:"))
    assert parsed.version == 8 and parsed.variant == uuid.RFC_4122
    assert str(parsed) == made.removeprefix("urn:uuid:")
    assert parsed.urn == made


def test_urns_sort_as_their_numbers_within_an_epoch() -> None:
    made = [URN.make("0123abcd", seq) for seq in SEQS]
    assert made == sorted(made)


@pytest.mark.parametrize(
    "other",
    [
        "0123ABCD-1",  # upper case
        "0123abcd-",
        "0123abc-1",
        "urn:uuid:0123abcd-0000-4000-8000-000000000001",  # version 4: not ours
        "urn:uuid:0123abcd-0000-8000-c000-000000000001",  # another variant digit
        "URN:UUID:0123abcd-0000-8000-8000-000000000001",
        "urn:uuid:0123abcd-ffff-8fff-8fff-ffffffffffff",  # past MAX_SEQ
        "earliest",
        "order-17",
    ],
)
def test_anything_else_is_a_publishers_id(other: str) -> None:
    assert parse_own(other) is None


def test_neither_form_nor_earliest_may_be_a_publishers_id() -> None:
    assert reserved_id(PLAIN.make("0123abcd", 5))
    assert reserved_id(URN.make("0123abcd", 5))
    assert reserved_id("earliest")
    assert not reserved_id("urn:example:book-1")
