import { createParser, type EventSourceMessage } from 'eventsource-parser';

export type { EventSourceMessage } from 'eventsource-parser';

/** An event bigger than this is not a log line: the stream is broken (or hostile). */
const MAX_EVENT_CHARS = 16 * 1024 * 1024;

/**
 * The events of a `text/event-stream` body, in order, as they complete. Comments (heartbeats)
 * are dropped; a partial event at the end of the body (a dropped connection) is never yielded.
 * The parsing is eventsource-parser's; this adapts it to an async iterable with backpressure:
 * the body is read only as fast as the consumer takes events.
 */
export async function* sseEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<EventSourceMessage> {
  const ready: EventSourceMessage[] = [];
  let failure: Error | undefined;
  const parser = createParser({
    onEvent: (event) => ready.push(event),
    onError: (err) => {
      // Unknown fields are ignored by the spec; only a runaway buffer stops the stream.
      if (err.type === 'max-buffer-size-exceeded') failure = err;
    },
    maxBufferSize: MAX_EVENT_CHARS,
  });
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of body) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    if (failure) throw failure;
    for (const event of ready.splice(0)) yield event;
  }
}
