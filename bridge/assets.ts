/**
 * Static files of the browser page, read from this folder by module URL so
 * that `deno compile --include bridge/` embeds them and the working
 * directory does not matter.
 *
 * @module
 */

/** Files that may be served, with their content types. */
const ASSETS: Record<string, string> = {
  "page.html": "text/html; charset=utf-8",
  "page.js": "text/javascript; charset=utf-8",
  "page.css": "text/css; charset=utf-8",
  "relay_client.js": "text/javascript; charset=utf-8",
  "relay_connections.js": "text/javascript; charset=utf-8",
  "audio_capture.js": "text/javascript; charset=utf-8",
  "capture_worklet.js": "text/javascript; charset=utf-8",
  "close_messages.js": "text/javascript; charset=utf-8",
  "jitter_buffer.js": "text/javascript; charset=utf-8",
  "media_packet.js": "text/javascript; charset=utf-8",
  "opus_encoder.js": "text/javascript; charset=utf-8",
  "playback_worklet.js": "text/javascript; charset=utf-8",
  "quality_monitor.js": "text/javascript; charset=utf-8",
  "relay_connect.js": "text/javascript; charset=utf-8",
  "remote_source.js": "text/javascript; charset=utf-8",
  "voice_call.js": "text/javascript; charset=utf-8",
  "voice_receiver.js": "text/javascript; charset=utf-8",
  "voice_sender.js": "text/javascript; charset=utf-8",
};

const cache = new Map<string, Uint8Array>();

/** Serves one asset by name; 404 for names that are not listed. */
export async function serveAsset(
  _request: Request,
  name: string,
): Promise<Response> {
  const contentType = ASSETS[name];
  if (contentType === undefined) {
    return Response.json(
      { error: { code: "not_found", message: `No asset named ${name}` } },
      { status: 404 },
    );
  }

  let body = cache.get(name);
  if (body === undefined) {
    try {
      body = await Deno.readFile(new URL(`./${name}`, import.meta.url));
    } catch {
      return Response.json(
        {
          error: {
            code: "not_found",
            message: `Asset ${name} is missing from this build`,
          },
        },
        { status: 404 },
      );
    }
    cache.set(name, body);
  }

  return new Response(body as Uint8Array<ArrayBuffer>, {
    headers: { "content-type": contentType, "cache-control": "no-cache" },
  });
}
