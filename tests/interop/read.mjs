// Reads COUNT events from URL with the npm `eventsource` package, printing each as a
// JSON line {type, id, data}; it reconnects by itself (with Last-Event-ID) when the
// stream drops. Usage: node read.mjs URL COUNT
import { EventSource } from "eventsource";

const [url, count] = [process.argv[2], Number(process.argv[3])];
const source = new EventSource(url);
let seen = 0;
const print = (event) => {
  console.log(JSON.stringify({ type: event.type, id: event.lastEventId, data: event.data }));
  if (++seen === count) {
    source.close();
    process.exit(0);
  }
};
for (const type of ["message", "note"]) source.addEventListener(type, print);
source.onopen = () => console.error("open");
source.onerror = () => console.error("error");
