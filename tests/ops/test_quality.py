"""Quality while a call is up (issue 36 item 4), the sans-I/O part: a leg's sample is the loss of the
packets since the last sample (not since the call began), the web user hears of a move or a threshold
crossed and not of every sample, and an alarm is raised once after `alarm_samples` poor samples and
cleared once after as many good ones. The monitor's tick, its histograms and its alarm sinks run on a
real prometheus_client registry over calls given as figures (what `MediaBridge.quality()` returns)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import pytest
from prometheus_client import CollectorRegistry

from gateway.config.errors import ConfigError
from gateway.config.loader import config_from_mapping
from gateway.config.ops import QualitySection
from gateway.ops.quality import Alarm, AlarmState, CallQuality, LegSample, LegTracker
from gateway.ops.quality_monitor import LiveCall, QualityAlarm, QualityMetrics, QualityMonitor

SETTINGS = QualitySection(poor_mos=3.5, min_change=0.3, alarm_mos=3.0, alarm_samples=2)


def figures(received: int, lost: int, **more: object) -> dict[str, object]:
    return {"codec": "PCMU/8000", "packets_received": received, "packets_lost": lost, **more}


def test_a_sample_counts_the_interval_only() -> None:
    leg = LegTracker(SETTINGS)
    first = leg.sample(figures(250, 0, jitter=0.002, rtt=0.02))
    assert first is not None and first.loss == 0 and first.mos > 4.3 and not first.poor
    assert first.packets == 250 and first.jitter == 0.002 and first.rtt == 0.02
    lossy = leg.sample(figures(450, 50))  # 200 received and 50 lost since: 20 %
    assert lossy is not None and lossy.loss == pytest.approx(0.2) and lossy.poor and lossy.mos < 3.0
    clean = leg.sample(figures(700, 50))  # none lost since
    assert clean is not None and clean.loss == 0 and clean.mos > 4.3


def test_the_far_ends_report_counts_as_loss_too() -> None:
    sample = LegTracker(SETTINGS).sample(figures(250, 0, remote_loss=0.25))
    assert sample is not None and sample.loss == 0 and sample.remote_loss == 0.25 and sample.poor


def test_the_loss_forwarded_from_the_other_leg_is_not_this_legs() -> None:
    """The browser reports the gaps of the phone's lost packets that the gateway forwarded: its leg is fine."""
    call = CallQuality(SETTINGS)
    report = call.sample({"web": figures(250, 0, remote_loss=0.21), "sip": figures(200, 50)})
    assert report.legs["web"].remote_loss == 0.21 and not report.legs["web"].poor
    assert report.legs["sip"].poor
    report = call.sample({"web": figures(500, 0, remote_loss=0.4), "sip": figures(450, 50)})
    assert report.legs["web"].poor  # now more than the phone's leg lost: the browser's own path


def test_the_web_legs_own_loss_counted_by_sequence_numbers_is_taken_as_it_is() -> None:
    """With `own_loss` (own_loss.py: the browser's reports netted by sequence numbers) the fraction lost
    of the latest report is not netted against the SIP leg's loss over a window of another span: a report
    of a second lossier than the window's average leaves the web leg clean."""
    call = CallQuality(SETTINGS)
    call.sample({"web": figures(250, 0), "sip": figures(200, 50)})
    # the report's second lost 35 %, the SIP leg 20 % over the window: netted, 19 % would be the web leg's
    report = call.sample({"web": figures(500, 0, remote_loss=0.35, own_loss=0.0), "sip": figures(400, 100)})
    assert report.legs["web"].remote_loss == 0.35 and not report.legs["web"].poor
    assert report.legs["web"].mos > 4.3
    report = call.sample({"web": figures(750, 0, remote_loss=0.35, own_loss=0.15), "sip": figures(600, 150)})
    assert report.legs["web"].poor  # its own 15 %
    # without own_loss the old netting: 1 - 0.65 / 0.8 = 19 % of its own
    report = call.sample({"web": figures(1000, 0, remote_loss=0.35), "sip": figures(800, 200)})
    assert report.legs["web"].poor


def test_no_packet_no_sample_and_a_restarted_stream_starts_again() -> None:
    leg = LegTracker(SETTINGS)
    assert leg.sample(figures(0, 0)) is None  # nothing yet (or on hold)
    assert leg.sample(figures(100, 0)) is not None
    assert leg.sample(figures(100, 0)) is None  # nothing since
    assert leg.sample(figures(10, 0)) is None  # the counters went back: a new stream
    after = leg.sample(figures(60, 0))
    assert after is not None and after.packets == 50


def test_the_web_user_hears_of_moves_and_crossings_only() -> None:
    leg = LegTracker(SETTINGS)
    told = []
    for total in (100, 200, 300):  # steady and clean: told once
        sample = leg.sample(figures(total, 0))
        assert sample is not None
        told.append(leg.tell(sample))
    assert told == [True, False, False]
    poor = leg.sample(figures(380, 20))
    assert poor is not None and poor.poor and leg.tell(poor)


def test_an_alarm_is_raised_once_and_cleared_once() -> None:
    call = CallQuality(SETTINGS)
    alarms: list[Alarm] = []
    web_total = sip_received = sip_lost = 0
    for lossy in (True, True, True, True, False, False, False):
        web_total += 250
        sip_received += 200 if lossy else 250
        sip_lost += 50 if lossy else 0
        report = call.sample({"web": figures(web_total, 0), "sip": figures(sip_received, sip_lost)})
        assert set(report.legs) == {"web", "sip"}
        assert report.legs["sip"].poor is lossy and not report.legs["web"].poor
        alarms.extend(report.alarms)
    assert [(a.leg, a.state) for a in alarms] == [("sip", AlarmState.RAISED), ("sip", AlarmState.CLEARED)]
    assert alarms[0].to_json()["state"] == "raised" and alarms[0].to_json()["loss"] == pytest.approx(0.2)
    assert call.alarmed == ()


def test_a_sample_refuses_impossible_figures() -> None:
    with pytest.raises(ValueError, match="mos"):
        LegSample(mos=5.0, loss=0.0, packets=1)
    with pytest.raises(ValueError, match="loss"):
        LegSample(mos=4.0, loss=1.5, packets=1)


def test_the_quality_section_names_a_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"quality\.interval"):
        config_from_mapping({"quality": {"interval": 0}}, {})
    with pytest.raises(ConfigError, match=r"quality\.alarm_samples"):
        config_from_mapping({"quality": {"alarm_samples": "many"}}, {})
    assert config_from_mapping({"quality": {"interval": 2}}, {}).quality.interval == 2.0


class Calls:
    def __init__(self) -> None:
        self.live: dict[str, dict[str, dict[str, object]]] = {}
        self.told: list[tuple[str, Mapping[str, object]]] = []

    def quality_calls(self) -> Iterable[LiveCall]:
        for call_id, quality in self.live.items():

            async def notify(legs: Mapping[str, object], call_id: str = call_id) -> None:
                self.told.append((call_id, legs))

            yield LiveCall(call_id, quality, notify)


async def test_the_monitor_observes_tells_and_alarms(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    calls = Calls()
    monitor = QualityMonitor(calls, SETTINGS, QualityMetrics(registry))
    raised: list[QualityAlarm] = []
    monitor.alarm_sinks.append(raised.append)

    def failing(alarm: QualityAlarm) -> None:
        raise RuntimeError("a sink that fails")

    monitor.alarm_sinks.insert(0, failing)  # a failing sink costs the others nothing
    caplog.set_level(logging.WARNING, "gateway.ops.quality_monitor")
    for n in range(1, 4):
        calls.live["c1"] = {"web": figures(250 * n, 0), "sip": figures(200 * n, 50 * n)}
        monitor.tick()
    await monitor.close()  # the sends under way: done or cancelled
    assert [(a.call_id, a.alarm.leg, a.alarm.state) for a in raised] == [("c1", "sip", AlarmState.RAISED)]
    assert any("call=c1 quality_alarm" in r.getMessage() for r in caplog.records)
    assert registry.get_sample_value("gateway_call_leg_mos_count", {"leg": "sip"}) == 3
    assert registry.get_sample_value("gateway_call_leg_loss_ratio_sum", {"leg": "sip"}) == pytest.approx(0.6)
    assert registry.get_sample_value("gateway_call_quality_alarms_total", {"leg": "sip"}) == 1
    assert registry.get_sample_value("gateway_call_quality_alarms_total", {"leg": "web"}) == 0
    calls.live.clear()
    assert monitor.tick() == {}  # an ended call is forgotten
