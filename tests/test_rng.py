"""Philox4x32-10: published known-answer vectors, and the kernels' and reference's draws agree."""
import numpy as np
import pytest

from tumorca import _constants, _rng, _tissue, reference

# Random123 kat_vectors, philox4x32 with 10 rounds: counter words, key words -> output words.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_kernel_known_answers(ctr, key, expected):
    assert tuple(int(v) for v in _rng.philox4x32_10(ctr, key)) == expected


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_reference_known_answers(ctr, key, expected):
    out = reference.philox4x32_10(np.array([ctr], dtype=np.uint32), key)
    assert tuple(int(v) for v in out[0]) == expected


@pytest.mark.parametrize("seed", [0, 1, 2**32 + 5, 2**64 - 1])
def test_kernel_and_reference_draws_agree(seed):
    sites = np.array([0, 1, 2, 2**32 - 1, 2**32, 2**40 + 3, 2**64 - 1], dtype=np.uint64)
    for step, purpose in [(0, 1), (7, 1), (2**32 - 1, 9)]:
        np.testing.assert_array_equal(_rng.draw(seed, step, sites, purpose),
                                      reference.draw(seed, step, sites, purpose))


def test_draws_depend_on_every_input():
    base = _rng.draw(5, 3, np.arange(4, dtype=np.uint64), 1)
    assert len({tuple(r) for r in base}) == 4  # different sites
    assert not np.array_equal(base, _rng.draw(6, 3, np.arange(4, dtype=np.uint64), 1))
    assert not np.array_equal(base, _rng.draw(5, 4, np.arange(4, dtype=np.uint64), 1))
    assert not np.array_equal(base, _rng.draw(5, 3, np.arange(4, dtype=np.uint64), 2))


def test_uniform_words_are_uniform():
    # 200k words into 64 bins: a chi-square far beyond its 63 degrees of freedom would flag a broken generator.
    w = _rng.draw(11, 0, np.arange(50_000, dtype=np.uint64), 1).ravel()
    counts = np.bincount((reference.u01(w) * 64).astype(int), minlength=64)
    expected = w.size / 64
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 120, chi2
    assert reference.u01(np.array([0xFFFFFFFF], dtype=np.uint32))[0] < 1.0


def test_constants_agree_with_kernels():
    c = _rng.CONSTANTS
    for cell in _constants.Cell:
        assert c[cell.name] == int(cell)
    assert c["PURPOSE_TUMOR"] == _constants.PURPOSE_TUMOR
    assert c["PROP_DIR_MASK"] == _constants.PROP_DIR_MASK
    assert c["PROP_STATE_SHIFT"] == _constants.PROP_STATE_SHIFT
    assert _tissue.MOORE == _constants.MOORE
