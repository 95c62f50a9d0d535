// devices.js: microphone and speaker choice, volume, echo cancellation / noise suppression, a microphone
// test with its level meter. Settings are kept in localStorage; `constraints()` is what a call's
// getUserMedia asks for.

import { levelMeter } from "/static/webrtc-client.js";

const KEY = "gateway.audio-settings";

export class AudioSettings {
  constructor(elements) {
    this.el = elements; // {mic, speaker, speakerRow, volume, echo, noise, testButton, testLevel, audio}
    let saved = {};
    try { saved = JSON.parse(localStorage.getItem(KEY) || "{}"); } catch { saved = {}; }
    this.mic = saved.mic || "";
    this.speaker = saved.speaker || "";
    this.volume = typeof saved.volume === "number" ? saved.volume : 1;
    this.echoCancellation = saved.echoCancellation ?? true;
    this.noiseSuppression = saved.noiseSuppression ?? true;
    this._stopTest = null;
    this._bind();
  }

  constraints() {
    const audio = { echoCancellation: this.echoCancellation, noiseSuppression: this.noiseSuppression };
    if (this.mic) audio.deviceId = { exact: this.mic };
    return { audio, video: false };
  }

  async stream() {
    try {
      return await navigator.mediaDevices.getUserMedia(this.constraints());
    } catch (error) {
      if (error.name !== "OverconstrainedError" || !this.mic) throw error;
      this.mic = ""; // the chosen microphone is gone: the default one
      this._save();
      return navigator.mediaDevices.getUserMedia(this.constraints());
    }
  }

  _save() {
    const { mic, speaker, volume, echoCancellation, noiseSuppression } = this;
    try {
      localStorage.setItem(KEY, JSON.stringify({ mic, speaker, volume, echoCancellation, noiseSuppression }));
    } catch { /* private mode: settings for this page only */ }
  }

  _bind() {
    const el = this.el;
    el.volume.value = String(this.volume);
    el.echo.checked = this.echoCancellation;
    el.noise.checked = this.noiseSuppression;
    el.audio.volume = this.volume;
    el.mic.addEventListener("change", () => { this.mic = el.mic.value; this._save(); });
    el.speaker.addEventListener("change", () => { this.speaker = el.speaker.value; this._save(); this.applySpeaker(); });
    el.volume.addEventListener("input", () => {
      this.volume = Number(el.volume.value);
      el.audio.volume = this.volume;
      this._save();
    });
    el.echo.addEventListener("change", () => { this.echoCancellation = el.echo.checked; this._save(); });
    el.noise.addEventListener("change", () => { this.noiseSuppression = el.noise.checked; this._save(); });
    el.testButton.addEventListener("click", () => (this._stopTest ? this.stopTest() : this.test()));
    el.speakerRow.hidden = !("setSinkId" in HTMLMediaElement.prototype);
    navigator.mediaDevices?.addEventListener?.("devicechange", () => this.list());
  }

  async applySpeaker() {
    if (!this.speaker || !("setSinkId" in this.el.audio)) return;
    try { await this.el.audio.setSinkId(this.speaker); } catch { /* the device went away */ }
  }

  // Fill the device lists (labels need a microphone permission granted once).
  async list() {
    if (!navigator.mediaDevices?.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (select, kind, chosen, fallback) => {
      select.replaceChildren();
      const first = document.createElement("option");
      first.value = "";
      first.textContent = fallback;
      select.append(first);
      let index = 1;
      for (const device of devices.filter((d) => d.kind === kind && d.deviceId && d.deviceId !== "default")) {
        const option = document.createElement("option");
        option.value = device.deviceId;
        option.textContent = device.label || `${kind === "audioinput" ? "Microphone" : "Speaker"} ${index}`;
        select.append(option);
        index += 1;
      }
      select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
    };
    fill(this.el.mic, "audioinput", this.mic, "Default microphone");
    fill(this.el.speaker, "audiooutput", this.speaker, "Default speaker");
  }

  // The microphone test: the chosen microphone's level in the meter for 10 s (or until stopped).
  async test(audioContext) {
    const stream = await this.stream();
    await this.list();
    const stopMeter = levelMeter(stream, (v) => { this.el.testLevel.value = v; }, { audioContext });
    const timer = setTimeout(() => this.stopTest(), 10000);
    this.el.testButton.textContent = "Stop test";
    this.el.testButton.setAttribute("aria-pressed", "true");
    this._stopTest = () => {
      clearTimeout(timer);
      stopMeter();
      for (const track of stream.getTracks()) track.stop();
      this.el.testLevel.value = 0;
    };
  }

  stopTest() {
    this._stopTest?.();
    this._stopTest = null;
    this.el.testButton.textContent = "Test microphone";
    this.el.testButton.setAttribute("aria-pressed", "false");
  }
}
