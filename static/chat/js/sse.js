// Server-Sent Events read from a fetch() response body (the HTML standard, section 9.2
// "Server-sent events": https://html.spec.whatwg.org/multipage/server-sent-events.html).
// fetch() rather than EventSource: the reply stream is a POST, and the page decides when
// and how to reconnect (with the last event id it saw). The server's side is chat/sse.py.

/**
 * Parse one event block ("id: 7\nevent: delta\ndata: {...}") into {event, data, id}.
 * `data` is the JSON-decoded data (null when the block has none or it is not JSON);
 * `id` is the event's own id as a number, or null when it carries none.
 */
function parseBlock(block) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // heartbeat / comment
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && /^\d+$/.test(value)) id = Number(value);
  }
  if (!data.length) return null;
  try {
    return { event, data: JSON.parse(data.join("\n")), id };
  } catch {
    return null; // not ours: skip it
  }
}

/**
 * The events of a streaming response, each as soon as its block is complete:
 * yields {event: string, data: object, id: number | null}. Ends when the body ends;
 * throws what reading the body throws (an AbortError after abort(), a TypeError when the
 * connection breaks).
 */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const parsed = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (parsed) yield parsed;
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // a consumer that stops early hangs up
  }
}
