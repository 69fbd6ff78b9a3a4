/**
 * A Python with fastavro for the tests that read our data with an independent Avro
 * implementation. Made on first use in .cache/pyvenv (a venv with test/python/requirements.txt,
 * versions pinned), remade when the requirements change, so a fresh clone (and CI) needs only
 * python3 with its venv module and PyPI.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "../../infra/kafka/fetch.ts";

const run = promisify(execFile);

const VENV = join(REPO_ROOT, ".cache", "pyvenv");
const REQUIREMENTS = join(REPO_ROOT, "test", "python", "requirements.txt");
/** Copy of the requirements the venv was made with. */
const STAMP = "rt-requirements.txt";

export const DECODER_SCRIPT = join(REPO_ROOT, "test", "python", "decode_rt.py");

let ready: Promise<string> | null = null;

/** The venv's python, made (or remade) if needed. */
export function pythonWithFastavro(): Promise<string> {
  return (ready ??= makeVenv());
}

async function makeVenv(): Promise<string> {
  const wanted = readFileSync(REQUIREMENTS, "utf8");
  const python = join(VENV, "bin", "python");
  const stamp = join(VENV, STAMP);
  if (existsSync(python) && existsSync(stamp) && readFileSync(stamp, "utf8") === wanted) return python;
  const system = process.env["RT_TEST_PYTHON"] ?? "python3";
  try {
    await run(system, ["--version"]);
  } catch (e) {
    throw new Error(
      `${system} not found: the independent-decoder tests need Python 3 with its venv module ` +
        `(apt-get install python3 python3-venv), or RT_TEST_PYTHON naming one`,
      { cause: e },
    );
  }
  // Built beside and renamed into place, so an interrupted install never looks ready.
  const tmp = `${VENV}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    await run(system, ["-m", "venv", tmp], { timeout: 120_000 });
    await run(
      join(tmp, "bin", "python"),
      ["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", REQUIREMENTS],
      { timeout: 300_000 },
    );
    writeFileSync(join(tmp, STAMP), wanted);
    rmSync(VENV, { recursive: true, force: true });
    renameSync(tmp, VENV);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`making the Python venv for fastavro failed: ${(e as Error).message}`, { cause: e });
  }
  return python;
}

/** Runs the decoder script and parses its JSON output. */
export async function runDecoder(args: readonly string[]): Promise<unknown> {
  const python = await pythonWithFastavro();
  const { stdout } = await run(python, [DECODER_SCRIPT, ...args], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  return JSON.parse(stdout) as unknown;
}
