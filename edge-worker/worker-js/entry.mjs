// Module-worker entry of the edge bundle: hands every request to the Rust `#[event(fetch)]`
// handler exported by wasm-bindgen's glue (`index.js`, which imports `index_bg.wasm`).
// `cargo xtask edge-bundle` bundles this with esbuild into edge-worker/dist/index.js.
import * as wasm from "./index.js";

export default {
  fetch(request, env, ctx) {
    return wasm.fetch(request, env, ctx);
  },
};
