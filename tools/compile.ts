/**
 * `deno task compile`: builds the single executable `relay`, with the
 * browser page embedded (`--include bridge/`). `deno compile` downloads
 * Deno's runtime without tooling (denort) for the target platform the first
 * time, unless the environment variable DENORT_BIN names a local denort.
 * When that download fails, this script prints the cause and the fix after
 * Deno's own error.
 *
 * Arguments after the task name go to `deno compile`, for example
 * `deno task compile --target aarch64-unknown-linux-gnu`.
 *
 * @module
 */

/** Flags of the executable; the same permissions as `deno task start`. */
const COMPILE_ARGS = [
  "compile",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--unstable-net",
  "--include",
  "bridge/",
  "--output",
  "relay",
];

const ENTRY_POINT = "main.ts";

/** Matches the error `deno compile` prints when the denort download fails. */
const DOWNLOAD_FAILED =
  /error sending request for url \((https:\/\/\S+denort-\S+\.zip)\)/;

async function main(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...COMPILE_ARGS, ...Deno.args, ENTRY_POINT],
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).spawn();

  // Pass stderr through as it comes and keep it to look for the cause.
  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stderr) {
    await Deno.stderr.write(chunk);
    output += decoder.decode(chunk, { stream: true });
  }
  const { code } = await child.status;
  if (code === 0) return 0;

  const download = DOWNLOAD_FAILED.exec(output);
  if (download !== null) {
    console.error(
      [
        "",
        "compile: deno compile could not download the Deno runtime that",
        `the executable is built on (${download[1]}).`,
        "This machine cannot reach Deno's download server. Either run",
        "`deno task compile` on a machine that can, or fetch that zip",
        "elsewhere, unzip it here and point DENORT_BIN at the denort file:",
        "",
        "  DENORT_BIN=/path/to/denort deno task compile",
        "",
        "DENORT_BIN must be the denort of the same Deno version and target.",
        "Without the executable, run the relay with `deno task start`.",
      ].join("\n"),
    );
  }
  return code;
}

Deno.exit(await main());
