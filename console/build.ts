/**
 * Builds the web console (and the example dashboard) into public/, which Workers
 * Static Assets serves: TypeScript bundled with esbuild, HTML and CSS copied.
 * Source maps go to dist/sourcemaps/, outside public/: everything in public/ is
 * served to anyone, and a map is the whole source (800 KB of it). The bundles name
 * no map, so browsers do not ask for one; load it into the devtools by hand.
 */
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";

const root = join(dirname(new URL(import.meta.url).pathname), "..");
const out = join(root, "public");
const maps = join(root, "dist/sourcemaps");
mkdirSync(out, { recursive: true });
// A map an earlier build left in public/ would still be served.
for (const stale of ["app.js.map", "examples/dashboard/dashboard.js.map"])
  rmSync(join(out, stale), { force: true });

const result = await build({
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
  sourcemap: "external",
  write: false,
  logLevel: "warning",
});
for (const file of result.outputFiles) {
  const path = file.path.endsWith(".map") ? join(maps, relative(out, file.path)) : file.path;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, file.contents);
}
cpSync(join(root, "console/index.html"), join(out, "index.html"));
cpSync(join(root, "console/style.css"), join(out, "style.css"));
mkdirSync(join(out, "examples/dashboard"), { recursive: true });
cpSync(join(root, "examples/dashboard/index.html"), join(out, "examples/dashboard/index.html"));
console.log("console built into public/");
