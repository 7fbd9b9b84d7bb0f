/**
 * Builds the web console (and the example dashboard) into public/, which Workers
 * Static Assets serves: TypeScript bundled with esbuild, HTML and CSS copied.
 */
import { cpSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { build } from "esbuild";

const root = join(dirname(new URL(import.meta.url).pathname), "..");
const out = join(root, "public");
mkdirSync(out, { recursive: true });

await build({
  entryPoints: {
    app: join(root, "console/app.ts"),
    "examples/dashboard/dashboard": join(root, "examples/dashboard/dashboard.ts"),
  },
  outdir: out,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
});
cpSync(join(root, "console/index.html"), join(out, "index.html"));
cpSync(join(root, "console/style.css"), join(out, "style.css"));
mkdirSync(join(out, "examples/dashboard"), { recursive: true });
cpSync(join(root, "examples/dashboard/index.html"), join(out, "examples/dashboard/index.html"));
console.log("console built into public/");
