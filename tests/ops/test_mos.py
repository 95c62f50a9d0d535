"""The simplified E-model (ITU-T G.107): known anchor points and monotonicity."""

from __future__ import annotations

import pytest

from gateway.config.errors import InvalidValue
from gateway.ops.mos import estimate_mos, mos_from_r, r_factor


def test_a_clean_g711_call_scores_as_toll_quality() -> None:
    assert r_factor("PCMU", 0.0) == pytest.approx(93.2, abs=0.01)
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.01)
    assert estimate_mos("PCMU/8000", received=1000, lost=0) == pytest.approx(4.41, abs=0.01)


def test_annex_b_ends() -> None:
    assert mos_from_r(0) == 1.0 and mos_from_r(-5) == 1.0 and mos_from_r(100) == 4.5
    assert mos_from_r(50) == pytest.approx(1 + 1.75 + 50 * -10 * 50 * 7e-6)


def test_loss_delay_and_jitter_lower_the_score() -> None:
    clean = estimate_mos("PCMA", received=1000, lost=0)
    lossy = estimate_mos("PCMA", received=950, lost=50)
    far = estimate_mos("PCMA", received=1000, lost=0, rtt_ms=600)
    shaky = estimate_mos("PCMA", received=1000, lost=0, jitter_ms=80)
    assert clean is not None and lossy is not None and far is not None and shaky is not None
    assert lossy < clean and far < clean and shaky < clean
    # G.711 with 5 % random loss: Ie_eff = 95 * 5 / (5 + 25.1) = 15.8, R = 77.4
    assert r_factor("PCMA", 0.05) == pytest.approx(93.2 - 0.003 - 15.78, abs=0.05)
    assert estimate_mos("PCMU", received=0, lost=0) is None
    with pytest.raises(InvalidValue):
        r_factor("PCMU", 1.5)
