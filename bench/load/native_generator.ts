/**
 * Builds ws_generator.c, the WebSocket load generator in C, with the
 * system's C compiler into a temporary directory.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

const SOURCE = fileURLToPath(new URL("./ws_generator.c", import.meta.url));

/** A built generator binary and the directory to remove after the run. */
export interface NativeGenerator {
  path: string;
  dir: string;
}

/**
 * Compiles the generator with `cc -O2`. Returns null, after printing why,
 * when no compiler is installed or the build fails; the harness then uses
 * the Deno generator for WebSocket scenarios.
 */
export async function buildNativeGenerator(): Promise<NativeGenerator | null> {
  const dir = await Deno.makeTempDir({ prefix: "relay-bench-gen-" });
  const path = `${dir}/ws_generator`;
  try {
    const output = await new Deno.Command("cc", {
      args: ["-O2", "-o", path, SOURCE, "-lm"],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (output.success) return { path, dir };
    console.error(`cc failed with exit code ${output.code}`);
  } catch (error) {
    console.error(
      `cannot run cc: ${error instanceof Error ? error.message : error}`,
    );
  }
  console.error(
    "WebSocket scenarios fall back to the Deno generator, which may saturate " +
      "its core before the relay does",
  );
  await Deno.remove(dir, { recursive: true });
  return null;
}
