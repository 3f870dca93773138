// Reads COUNT events from a Mercure hub URL with the npm `eventsource` package, as a
// Node consumer of Mercure does: the token in the hub's cookie (COOKIE, "name=value"),
// sent by the fetch the client is given. Prints each event as a JSON line
// {type, id, data}; reconnects by itself (with Last-Event-ID) when the stream drops.
// Usage: node mercure.mjs URL COUNT COOKIE
import { EventSource } from "eventsource";

const [url, count, cookie] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const source = new EventSource(url, {
  fetch: (input, init) =>
    fetch(input, { ...init, headers: { ...init.headers, Cookie: cookie } }),
});
let seen = 0;
source.onmessage = (event) => {
  console.log(JSON.stringify({ type: event.type, id: event.lastEventId, data: event.data }));
  if (++seen === count) {
    source.close();
    process.exit(0);
  }
};
source.onopen = () => console.error("open");
source.onerror = (error) => console.error("error", error?.code ?? "");
