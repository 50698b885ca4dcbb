// Bundles src/extension.ts and its dependencies into dist/extension.js
// (CommonJS for node; `vscode` is provided by the editor at run time).
// `--production` minifies and drops the source map.
import * as esbuild from "esbuild";

const production = process.argv.includes("--production");

await esbuild.build({
  entryPoints: ["src/extension.ts"],
  outfile: "dist/extension.js",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  external: ["vscode"],
  minify: production,
  sourcemap: !production,
  sourcesContent: false,
  logLevel: "warning",
});
console.log(`bundled dist/extension.js${production ? " (production)" : ""}`);
