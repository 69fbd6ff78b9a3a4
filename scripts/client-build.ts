/**
 * `npm run build:client`: builds the client SDK (client/) as the npm package
 * `@realtime-backbone/client` into client/dist/ (or the folder given):
 *
 * - `index.js`: client/index.ts and the schemas modules it imports, bundled by esbuild into one
 *   ES module with no imports at all (platform neutral, so a Node built-in import fails the
 *   build), plus its source map (sources embedded, named `src/client/...`, `src/schemas/...`).
 * - `types/`: declarations emitted by tsc (client/tsconfig.build.json, DOM library, no Node
 *   types), and `index.d.ts` re-exporting them. tsc keeps the sources' `.ts` import specifiers
 *   in declarations even with rewriteRelativeImportExtensions (microsoft/TypeScript#61037), and
 *   TypeScript before 5.0 and some editors cannot resolve those, so they are rewritten to `.js`.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const CLIENT_DIR = join(REPO_ROOT, "client");
export const CLIENT_DIST_DIR = join(CLIENT_DIR, "dist");
/** The language level of the bundle: the sources use ES2022 (`#private`, `Object.hasOwn`, error `cause`). */
export const CLIENT_TARGET = "es2022";

export interface ClientBuild {
  readonly outDir: string;
  /** Every file written, relative to outDir, sorted. */
  readonly files: readonly string[];
  readonly bundleBytes: number;
}

export class ClientBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClientBuildError";
  }
}

/** Relative `.ts` specifiers in a declaration file: `from "./x.ts"`, `import("../y.ts")`. */
const TS_SPECIFIER = /((?:\bfrom|\bimport\s*\()\s*["'])(\.{1,2}\/[^"']*?)\.ts(["'])/g;

export function rewriteDeclarationSpecifiers(text: string): string {
  return text.replace(TS_SPECIFIER, "$1$2.js$3");
}

export async function buildClient(outDir: string = CLIENT_DIST_DIR): Promise<ClientBuild> {
  const pkg = JSON.parse(readFileSync(join(CLIENT_DIR, "package.json"), "utf8")) as {
    name: string;
    version: string;
    license: string;
  };
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  const result = await build({
    absWorkingDir: REPO_ROOT, // the bundle's path comments do not depend on the caller's cwd
    entryPoints: [join(CLIENT_DIR, "index.ts")],
    outfile: join(outDir, "index.js"),
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: CLIENT_TARGET,
    sourcemap: true,
    banner: { js: `/* ${pkg.name} ${pkg.version} (${pkg.license}) */` },
    metafile: true,
    logLevel: "silent",
  });
  for (const [file, output] of Object.entries(result.metafile.outputs)) {
    if (output.imports.length > 0)
      throw new ClientBuildError(`${file} imports ${output.imports.map((i) => i.path).join(", ")}`);
  }

  // esbuild names the sources relative to outDir, which leads outside the installed package;
  // they are renamed to a `src/` folder inside it (their text is embedded in the map anyway).
  const mapPath = join(outDir, "index.js.map");
  const map = JSON.parse(readFileSync(mapPath, "utf8")) as { sources: string[] };
  map.sources = map.sources.map(
    (s) => `../src/${relative(REPO_ROOT, resolve(outDir, s)).split(sep).join("/")}`,
  );
  writeFileSync(mapPath, JSON.stringify(map));

  const typesDir = join(outDir, "types");
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const emit = spawnSync(
    process.execPath,
    [tsc, "-p", join(CLIENT_DIR, "tsconfig.build.json"), "--outDir", typesDir, "--pretty", "false"],
    { cwd: REPO_ROOT, encoding: "utf8" },
  );
  if (emit.status !== 0)
    throw new ClientBuildError(`tsc (declarations) failed:\n${emit.stdout}${emit.stderr}`);
  for (const file of listFiles(typesDir)) {
    if (!file.endsWith(".d.ts")) continue;
    const path = join(typesDir, file);
    writeFileSync(path, rewriteDeclarationSpecifiers(readFileSync(path, "utf8")));
  }
  writeFileSync(join(outDir, "index.d.ts"), `export * from "./types/client/index.js";\n`);

  return {
    outDir,
    files: listFiles(outDir),
    bundleBytes: readFileSync(join(outDir, "index.js")).byteLength,
  };
}

function listFiles(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? listFiles(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
    )
    .sort();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  buildClient(process.argv[2] === undefined ? undefined : resolve(process.argv[2])).then(
    (b) => console.log(`client: ${b.files.length} files in ${b.outDir} (index.js ${b.bundleBytes} bytes)`),
    (e: unknown) => {
      console.error(e instanceof ClientBuildError ? `error: ${e.message}` : e);
      process.exit(1);
    },
  );
}
