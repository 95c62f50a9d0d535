"""Audio checks for the softphone page in headless Chromium, and for Chromium's fake microphone.

* ``page_tone(page, freq)``: in the page, an AnalyserNode on the remote stream (the ``#remote-audio``
  element's ``srcObject``) takes a block of samples every 50 ms for ``seconds``; a Goertzel filter gives
  each block's power at ``freq`` over its total power (1.0 for a pure tone). Returns the share of blocks
  where the tone is clear and loud enough, and the blocks' mean RMS.
* ``beeps(wav, freq)``: Chromium's fake microphone (``--use-fake-device-for-media-stream``) beeps at
  400 Hz (``FAKE_MIC_HZ``): about 110 ms every 500 ms, not a pure sine (a harmonic at 1200 Hz, edges).
  In a recording, every loud stretch of at least 50 ms is a beep; it counts as ``freq`` when ``freq`` is
  the strongest frequency of a 100-3000 Hz scan of that stretch.
"""

from __future__ import annotations

from pathlib import Path

from peers.audio import read_wav, rms, tone_ratio
from tests.signaling.browser import Page

FAKE_MIC_HZ = 400.0

_PAGE_TONE = """async ([freq, seconds, id, share]) => {
  const stream = document.getElementById(id).srcObject;
  if (!stream || stream.getAudioTracks().length === 0) return { heard: 0, rms: 0, blocks: 0 };
  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 4096;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const coeff = 2 * Math.cos((2 * Math.PI * freq) / context.sampleRate);
  let blocks = 0, heard = 0, level = 0;
  const end = performance.now() + seconds * 1000;
  await new Promise((resolve) => setTimeout(resolve, 100));  // fill the analyser's buffer
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    analyser.getFloatTimeDomainData(samples);
    let s1 = 0, s2 = 0, energy = 0;
    for (const x of samples) {
      const s0 = x + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
      energy += x * x;
    }
    const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    const ratio = energy > 0 ? (2 * power) / (samples.length * energy) : 0;
    const blockRms = Math.sqrt(energy / samples.length);
    blocks += 1;
    level += blockRms;
    if (ratio >= share && blockRms >= 0.005) heard += 1;
  }
  source.disconnect();
  await context.close();
  return { heard: blocks ? heard / blocks : 0, rms: blocks ? level / blocks : 0, blocks };
}"""


async def page_tone(
    page: Page, freq: float, seconds: float = 1.5, element_id: str = "remote-audio", ratio: float = 0.5
) -> tuple[float, float]:
    """(share of blocks where the page hears `freq`, mean RMS of the remote audio, full scale 1.0);
    the audio of the element `element_id` (the softphone's remote audio by default). A block hears
    `freq` when it holds at least `ratio` of the block's power (lower it for a mix of several tones)."""
    result = await page.evaluate(_PAGE_TONE, [freq, seconds, element_id, ratio])
    assert result["blocks"] > 0, f"no audio to measure in the page: {result}"
    return float(result["heard"]), float(result["rms"])


async def expect_page_hears(
    page: Page,
    freq: float,
    *,
    share: float = 0.5,
    level: float = 0.005,
    tries: int = 5,
    element_id: str = "remote-audio",
) -> None:
    """The page hears `freq` in at least `share` of a 2 s window's blocks, at a mean RMS above `level`, in
    one of `tries` windows in a row: a far end in the test's own process (an aiortc peer) is starved now
    and then by the suite's parallel workers, and its tone then has gaps for a window or two."""
    heard, rms_level = 0.0, 0.0
    for _ in range(tries):
        heard, rms_level = await page_tone(page, freq, seconds=2.0, element_id=element_id)
        if heard >= share and rms_level > level:
            return
    raise AssertionError(f"the page does not hear {freq} Hz (share {heard:.2f}, rms {rms_level:.4f})")


def beeps(
    path: Path, freq: float = FAKE_MIC_HZ, level: float = 300.0, *, last: float | None = None
) -> tuple[int, int]:
    """(loud stretches of `path` whose strongest frequency is `freq`, loud stretches in all); `last`:
    in its last `last` seconds only."""
    rate, samples = read_wav(path)
    if last is not None:
        samples = samples[-int(last * rate) :]
    window = rate // 100  # 10 ms
    loud = [rms(samples[i : i + window]) > level for i in range(0, len(samples) - window + 1, window)]
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for index, on in enumerate([*loud, False]):
        if on and start is None:
            start = index
        elif not on and start is not None:
            if index - start >= 5:
                runs.append((start, index))
            start = None
    matching = 0
    for first, end in runs:
        stretch = samples[first * window : end * window]
        strongest = max(range(100, 3001, 10), key=lambda f: tone_ratio(stretch, rate, f))
        if abs(strongest - freq) <= 10 and tone_ratio(stretch, rate, freq) >= 0.08:
            matching += 1
    return matching, len(runs)


def assert_beeps(wav: Path, what: str, *, last: float | None = None, at_least: int = 2) -> None:
    """At least `at_least` loud stretches of `wav` (in its `last` seconds) are Chromium's fake-microphone
    beep. No share of all loud stretches is asked: at load 12 a starved desk phone's clicks made 3 of 6
    stretches in a full run, and a call that carried anything but the beep has none."""
    matching, loud = beeps(wav, FAKE_MIC_HZ, last=last)
    assert matching >= at_least, f"{what}: {matching} of {loud} loud stretches are Chromium's beep"


def assert_phone_heard_the_browser(wav: Path, at_least: int = 3) -> None:
    """At least `at_least` loud stretches of the phone's recording `wav`, and at least two thirds of them,
    are Chromium's fake-microphone beep (it beeps every 500 ms: a call must record for about
    `at_least` / 2 seconds after its media starts). Two thirds, not all but one: with the suite's parallel
    workers a starved desk phone's clicks made 2 of 6 stretches in a fresh-clone CI run; a call that
    carried anything but the beep has few or none."""
    matching, loud = beeps(wav)
    assert matching >= at_least and 3 * matching >= 2 * loud, (
        f"{wav}: {matching} of {loud} loud stretches are Chromium's {FAKE_MIC_HZ} Hz beep"
    )
