// sounds.js: the softphone's tones, made with WebAudio (no audio files): the ringtone of an incoming
// call, the softer call-waiting beep, and the ringback heard while the far end rings (unless it sends
// early media). One AudioContext; every tone goes through an AnalyserNode (`level()`), so that the page
// (and its tests) can tell a tone is playing.

const PATTERNS = {
  // [frequencies in Hz, [on ms, off ms, on ms, off ms...]]: the cadence repeats
  ringtone: [[440, 480], [400, 200, 400, 2000]], // a double ring (UK-like)
  ringback: [[440, 480], [2000, 4000]], // North American ringback (ITU-T E.180)
  waiting: [[440], [300, 2700]], // call waiting: a short beep every 3 s
};

export class Tones {
  constructor() {
    this.context = null;
    this.playing = null; // name of the tone playing
    this._nodes = null;
    this._timer = null;
    this._analyser = null;
    this._samples = null;
    this.volume = 0.25;
  }

  // Create (or resume) the AudioContext: call it from a user gesture once (browsers' autoplay rule).
  unlock() {
    this.context ||= new AudioContext();
    this.context.resume().catch(() => {});
    return this.context;
  }

  play(name) {
    if (this.playing === name) return;
    this.stop();
    const [frequencies, cadence] = PATTERNS[name];
    const context = this.unlock();
    const gain = context.createGain();
    gain.gain.value = 0;
    this._analyser ||= context.createAnalyser();
    this._analyser.fftSize = 512;
    this._samples = new Float32Array(this._analyser.fftSize);
    gain.connect(this._analyser);
    gain.connect(context.destination);
    const oscillators = frequencies.map((frequency) => {
      const oscillator = context.createOscillator();
      oscillator.frequency.value = frequency;
      oscillator.connect(gain);
      oscillator.start();
      return oscillator;
    });
    this._nodes = { gain, oscillators };
    this.playing = name;
    const level = this.volume / frequencies.length;
    let step = 0;
    const next = () => {
      if (this._nodes?.gain !== gain) return;
      const on = step % 2 === 0;
      gain.gain.setTargetAtTime(on ? level : 0, context.currentTime, 0.01);
      this._timer = setTimeout(next, cadence[step % cadence.length]);
      step += 1;
    };
    next();
  }

  stop() {
    clearTimeout(this._timer);
    this._timer = null;
    if (this._nodes) {
      for (const oscillator of this._nodes.oscillators) oscillator.stop();
      this._nodes.gain.disconnect();
      this._nodes = null;
    }
    this.playing = null;
  }

  // The tones' output level now (RMS, 0..1): 0 when nothing plays or in a cadence's pause.
  level() {
    if (!this._analyser || !this.playing) return 0;
    this._analyser.getFloatTimeDomainData(this._samples);
    let sum = 0;
    for (const value of this._samples) sum += value * value;
    return Math.sqrt(sum / this._samples.length);
  }
}
