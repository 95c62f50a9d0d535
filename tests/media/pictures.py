"""What a page's <video> element shows, for the video tests (issue 19): read through a canvas."""

from __future__ import annotations


def picture_script(element: str) -> str:
    """A page function returning [width, height, frames shown, mean R, mean G, mean B] of the <video>
    that the JavaScript expression ``element`` names, or null before its first picture."""
    return (
        "() => {\n  const v = "
        + element
        + """;
  if (!v || !v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let r = 0, gr = 0, b = 0;
  for (let i = 0; i < d.length; i += 4) { r += d[i]; gr += d[i + 1]; b += d[i + 2]; }
  const n = d.length / 4;
  return [c.width, c.height, v.getVideoPlaybackQuality().totalVideoFrames, r / n, gr / n, b / n];
}"""
    )
