// Bundles the unmodified libraries for the browser: JsSIP ships CommonJS only (window.JsSIP from
// build/jssip.js); SIP.js ships ES modules (build/sipjs.js exposes window.SIP). Run by `make test`.
import { build } from "esbuild";

await build({
  entryPoints: ["node_modules/jssip/lib/JsSIP.js"],
  bundle: true,
  format: "iife",
  globalName: "JsSIP",
  outfile: "build/jssip.js",
  logLevel: "warning",
});
await build({
  stdin: { contents: 'import * as SIP from "sip.js"; window.SIP = SIP;', resolveDir: "." },
  bundle: true,
  format: "iife",
  outfile: "build/sipjs.js",
  logLevel: "warning",
});
