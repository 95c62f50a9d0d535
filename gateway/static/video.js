// video.js: the softphone's video (issue 19): a "Video" toggle, the camera choice, the local preview and
// the far end's picture. The gateway passes video through to SIP video phones (codecs.video); with the
// toggle off a call is audio only, as before. The choice is kept in localStorage. The controls show only
// when the gateway carries video (`video` in its `registered` reply: codecs.video is not empty).

const KEY = "gateway.video-settings";

export class VideoSettings {
  constructor(elements) {
    this.el = elements; // {toggle, camera, local, remote, panel, options}
    let saved = {};
    try { saved = JSON.parse(localStorage.getItem(KEY) || "{}"); } catch { saved = {}; }
    this.camera = saved.camera || "";
    this.el.toggle.checked = Boolean(saved.enabled);
    this._preview = null;
    this.available = false; // the gateway carries video (setAvailable)
    this.el.toggle.addEventListener("change", () => this._save());
    this.el.camera.addEventListener("change", () => { this.camera = this.el.camera.value; this._save(); });
    navigator.mediaDevices?.addEventListener?.("devicechange", () => this.listCameras());
  }

  get enabled() {
    return this.available && this.el.toggle.checked;
  }

  // Whether the gateway carries video: without it the toggle and the camera choice are not shown, and a
  // toggle left on from another gateway adds no camera to calls.
  setAvailable(available) {
    this.available = Boolean(available);
    this.el.options.hidden = !this.available;
  }

  _save() {
    try {
      localStorage.setItem(KEY, JSON.stringify({ enabled: this.enabled, camera: this.camera }));
    } catch { /* private mode: settings for this page only */ }
  }

  async listCameras() {
    if (!navigator.mediaDevices?.enumerateDevices) return;
    const cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
    const select = this.el.camera;
    select.replaceChildren(new Option("Default camera", ""));
    cameras.forEach((device, index) => select.add(new Option(device.label || `Camera ${index + 1}`, device.deviceId)));
    select.value = cameras.some((d) => d.deviceId === this.camera) ? this.camera : "";
  }

  // The call's stream with the camera added when the toggle is on (the microphone's stream otherwise).
  async addTo(stream) {
    if (!this.enabled) return stream;
    const camera = await this.openCamera();
    for (const track of camera.getVideoTracks()) stream.addTrack(track);
    return stream;
  }

  // The chosen camera (the default one when it is gone), shown in the preview.
  async openCamera() {
    const video = { width: { ideal: 640 }, height: { ideal: 480 } };
    if (this.camera) video.deviceId = { exact: this.camera };
    let camera;
    try {
      camera = await navigator.mediaDevices.getUserMedia({ video });
    } catch (error) {
      if (error.name !== "OverconstrainedError" || !this.camera) throw error;
      this.camera = ""; // the chosen camera is gone: the default one
      this._save();
      camera = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
    }
    this._preview = new MediaStream(camera.getVideoTracks());
    this.el.local.srcObject = this._preview;
    this.el.panel.hidden = false;
    this.listCameras().catch(() => {});
    return camera;
  }

  // The camera went out of the call mid-call (dropped, or not taken): no preview.
  unpreview() {
    this._preview = null;
    this.el.local.srcObject = null;
    this.el.panel.hidden = this.el.remote.hidden;
  }

  // The current call's far-end picture, when it sends one.
  show(remoteStream) {
    const hasVideo = Boolean(remoteStream && remoteStream.getVideoTracks().length);
    this.el.remote.srcObject = hasVideo ? remoteStream : null;
    this.el.remote.hidden = !hasVideo;
    this.el.panel.hidden = !hasVideo && !this._preview;
  }

  // The call ended: the camera goes off.
  stop(stream) {
    for (const track of stream?.getVideoTracks() || []) track.stop();
    if (this._preview) for (const track of this._preview.getTracks()) track.stop();
    this._preview = null;
    this.el.local.srcObject = null;
    this.el.remote.srcObject = null;
    this.el.remote.hidden = true;
    this.el.panel.hidden = true;
  }
}
