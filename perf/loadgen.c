/* The load generator of perf/: N SSE clients on one epoll loop, in C, so that it is
 * never the bottleneck (a Python one tops out near 100 000 deliveries/s per core).
 *
 * Each client sends one GET, then scans what arrives for "data: " followed by the
 * 20-digit CLOCK_MONOTONIC nanosecond stamp the publisher put there (Python's
 * time.monotonic_ns() reads the same clock) and records the latency on arrival in a
 * histogram. "data: end" marks the end of the run for that client. A share of clients
 * (--stall PERCENT) stop reading after the response head, as stalled readers do.
 *
 * With --gzip 1 each client asks for gzip (Accept-Encoding); a stream that comes
 * compressed (Content-Encoding: gzip) is de-chunked and inflated as it arrives, and
 * scanned the same way. "wire_bytes" counts every body byte read, compressed or not.
 *
 * Source addresses are spread over 127.0.0.2 .. 127.0.0.(1+sources) so ephemeral ports
 * do not run out. Prints "connected" on stderr once every response head has arrived,
 * and writes one JSON object to --out at the end:
 *   {"clients", "connected", "ended", "closed", "failed", "received", "cpu_s", "wall_s",
 *    "wire_bytes", "compressed", "hist": [[microseconds, count], ...]}
 *
 * Build: cc -O2 -o loadgen loadgen.c -lz   (perf/_common.py does it on first use)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define STAMP 20
#define MARK "data: "
#define MARK_LEN 6
#define TAIL_MAX 64
/* Histogram: 1 us resolution below 100 ms, then 100 us up to 120 s. */
#define FINE 100000
#define COARSE 1200000
#define BUCKETS (FINE + COARSE)

typedef struct {
    int fd;
    int head_done; /* response head seen */
    int ended;
    int closed;
    int stalled;
    int failed;
    int tail_len;
    char tail[TAIL_MAX];
    /* A compressed stream: its inflater, its chunked framing's state, and the scan's
     * unfinished tail of inflated text (tail above is the raw read's). */
    z_stream *z;
    int chunked;
    int chunk_state; /* 0: size line, 1: data, 2: CRLF after data, 3: ended */
    size_t chunk_left;
    int ztail_len;
    char ztail[TAIL_MAX];
} client_t;

static uint32_t *hist;
static uint64_t received;
static uint64_t wire_bytes;
static int compressed_streams;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void record(int64_t latency_ns) {
    int64_t us = latency_ns / 1000;
    if (us < 0) us = 0;
    size_t bucket = us < FINE ? (size_t)us : (size_t)(FINE + (us - FINE) / 100);
    if (bucket >= BUCKETS) bucket = BUCKETS - 1;
    hist[bucket]++;
    received++;
}

/* The first "data: " in [p, end): memchr for its 'd' (vectorised in glibc), then the
 * rest compared by hand. glibc's memmem took three quarters of the generator's time at
 * 10 M events/s; a 'd' is found about twice an event ("id:", "data:"). */
static const char *find_mark(const char *p, const char *end) {
    while (end - p >= MARK_LEN) {
        const char *d = memchr(p, 'd', (size_t)(end - p - (MARK_LEN - 1)));
        if (d == NULL) return NULL;
        if (d[1] == 'a' && d[2] == 't' && d[3] == 'a' && d[4] == ':' && d[5] == ' ') return d;
        p = d + 1;
    }
    return NULL;
}

/* The 20-digit stamp at p, or 0 when any of its characters is not a digit. Eight digits
 * at a time (SWAR, as simdjson parses them): the loop a digit at a time took a fifth of
 * the generator's time at 10 M events/s. */
static int eight_digits(const char *p, uint64_t *out) {
    uint64_t v;
    memcpy(&v, p, 8);
    v -= 0x3030303030303030ULL;
    /* each byte 0-9: adding 0x76 sets no high bit; anything else sets one */
    if ((v | (v + 0x7676767676767676ULL)) & 0x8080808080808080ULL) return 0;
    v = v * 10 + (v >> 8);
    v = (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
         (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32;
    *out = v;
    return 1;
}

static int parse_stamp(const char *p, int64_t *stamp) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && STAMP == 20
    uint64_t high, middle;
    if (!eight_digits(p, &high) || !eight_digits(p + 8, &middle)) return 0;
    int64_t low = 0;
    for (int i = 16; i < 20; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        low = low * 10 + (p[i] - '0');
    }
    *stamp = (int64_t)(high * 1000000000000ULL + middle * 10000ULL) + low;
    return 1;
#else
    int64_t value = 0;
    for (int i = 0; i < STAMP; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        value = value * 10 + (p[i] - '0');
    }
    *stamp = value;
    return 1;
#endif
}

/* Scan buf[0..len) for events; keep an unfinished tail (in tail, tail_len) for the next. */
static void scan_into(client_t *c, const char *buf, size_t len, int64_t now, char *tail,
                      int *tail_len) {
    size_t start = 0;
    for (;;) {
        const char *at = find_mark(buf + start, buf + len);
        if (at == NULL) {
            size_t keep = len - start < MARK_LEN - 1 ? len - start : MARK_LEN - 1;
            memcpy(tail, buf + len - keep, keep);
            *tail_len = (int)keep;
            return;
        }
        size_t field = (size_t)(at - buf) + MARK_LEN;
        size_t avail = len - field;
        if (avail >= 3 && memcmp(buf + field, "end", 3) == 0) {
            c->ended = 1;
            start = field + 3;
            continue;
        }
        if (avail < STAMP) {
            size_t keep = len - (size_t)(at - buf);
            memcpy(tail, at, keep);
            *tail_len = (int)keep;
            return;
        }
        int64_t stamp;
        if (parse_stamp(buf + field, &stamp)) record(now - stamp);
        start = field + STAMP;
    }
}

static void scan(client_t *c, const char *buf, size_t len, int64_t now) {
    scan_into(c, buf, len, now, c->tail, &c->tail_len);
}

/* Inflate len bytes of gzip data and scan what comes out. */
static void inflate_scan(client_t *c, const char *data, size_t len, int64_t now) {
    static char out[(1 << 16) + TAIL_MAX];
    z_stream *z = c->z;
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len;
    while (z->avail_in > 0) {
        memcpy(out, c->ztail, (size_t)c->ztail_len);
        z->next_out = (Bytef *)out + c->ztail_len;
        z->avail_out = 1 << 16;
        int rc = inflate(z, Z_SYNC_FLUSH);
        size_t produced = (size_t)((char *)z->next_out - out);
        c->ztail_len = 0;
        scan_into(c, out, produced, now, c->ztail, &c->ztail_len);
        if (rc == Z_STREAM_END) { c->ended = 1; return; }
        if (rc != Z_OK && rc != Z_BUF_ERROR) { c->failed = 1; return; }
        if (rc == Z_BUF_ERROR && z->avail_out != 0) return;
    }
}

/* A compressed stream's body bytes: undo the chunked framing, then inflate. */
static void feed_compressed(client_t *c, const char *data, size_t len, int64_t now) {
    if (!c->chunked) { inflate_scan(c, data, len, now); return; }
    size_t i = 0;
    while (i < len && c->chunk_state != 3) {
        if (c->chunk_state == 0) { /* hex size, then CRLF */
            char ch = data[i++];
            if (ch == '\n') {
                c->chunk_state = c->chunk_left ? 1 : 3;
            } else if (ch != '\r') {
                int digit = ch >= '0' && ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10;
                c->chunk_left = c->chunk_left * 16 + (size_t)digit;
            }
        } else if (c->chunk_state == 1) {
            size_t take = len - i < c->chunk_left ? len - i : c->chunk_left;
            inflate_scan(c, data + i, take, now);
            i += take;
            c->chunk_left -= take;
            if (c->chunk_left == 0) c->chunk_state = 2;
        } else { /* the CRLF after a chunk's data */
            if (data[i++] == '\n') c->chunk_state = 0;
        }
    }
}

static const char *arg(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return fallback;
}

int main(int argc, char **argv) {
    int port = atoi(arg(argc, argv, "--port", "0"));
    int n = atoi(arg(argc, argv, "--clients", "1"));
    double timeout = atof(arg(argc, argv, "--timeout", "60"));
    int sources = atoi(arg(argc, argv, "--sources", "50"));
    int stall_pct = atoi(arg(argc, argv, "--stall", "0"));
    const char *path = arg(argc, argv, "--path", "/events?topic=bench");
    /* --paths FILE: one request path per line, client i taking line i % lines (to
       spread subscribers over selectors or credentials); else --path for all. */
    const char *paths_file = arg(argc, argv, "--paths", NULL);
    char **paths = NULL;
    int path_count = 0;
    if (paths_file != NULL) {
        FILE *f = fopen(paths_file, "r");
        if (f == NULL) { perror("--paths"); return 2; }
        char line[4096];
        while (fgets(line, sizeof line, f) != NULL) {
            size_t len = strcspn(line, "\r\n");
            if (len == 0) continue;
            line[len] = 0;
            paths = realloc(paths, sizeof(char *) * (size_t)(path_count + 1));
            paths[path_count++] = strdup(line);
        }
        fclose(f);
        if (path_count == 0) { fprintf(stderr, "--paths: no path\n"); return 2; }
    }
    const char *out = arg(argc, argv, "--out", "-");
    int hold = atoi(arg(argc, argv, "--hold", "0")); /* 1: stay until SIGTERM */
    int gzip = atoi(arg(argc, argv, "--gzip", "0")); /* 1: ask for gzip */
    if (port <= 0 || n <= 0) {
        fprintf(stderr, "usage: loadgen --port P --clients N [--timeout S] [--stall PCT] "
                        "[--path P | --paths FILE] [--out FILE] [--hold 1] [--gzip 1]\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    hist = calloc(BUCKETS, sizeof(uint32_t));
    client_t *clients = calloc((size_t)n, sizeof(client_t));
    int ep = epoll_create1(0);
    static char request[8192];
    int request_len = 0;
    int stalled_every = stall_pct > 0 ? 100 / stall_pct : 0;
    for (int i = 0; i < n; i++) {
        client_t *c = &clients[i];
        c->stalled = stalled_every && i % stalled_every == 0;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) { perror("socket"); return 1; }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in local = {.sin_family = AF_INET};
        local.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % sources));
        if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) { perror("bind"); return 1; }
        struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        remote.sin_addr.s_addr = htonl(0x7f000001u);
        if (connect(fd, (struct sockaddr *)&remote, sizeof remote) < 0) {
            perror("connect");
            return 1;
        }
        request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n%s\r\n",
                               paths != NULL ? paths[i % path_count] : path,
                               gzip ? "Accept-Encoding: gzip\r\n" : "");
        if (request_len <= 0 || request_len >= (int)sizeof request) {
            fprintf(stderr, "request path too long\n");
            return 2;
        }
        if (write(fd, request, (size_t)request_len) != request_len) { perror("write"); return 1; }
        fcntl(fd, F_SETFL, O_NONBLOCK);
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }

    static char buf[(1 << 16) + TAIL_MAX];
    struct epoll_event events[256];
    int heads = 0, ended = 0, closed = 0, failed = 0, reading = 0;
    for (int i = 0; i < n; i++) reading += !clients[i].stalled;
    int announced = 0;
    double cpu_start = 0, wall_start = 0;
    int64_t start_ns = now_ns();
    int64_t deadline = 0;
    for (;;) {
        if (!announced && heads + failed >= n) {
            announced = 1;
            fprintf(stderr, "connected\n");
            cpu_start = cpu_seconds();
            wall_start = (double)now_ns() / 1e9;
            deadline = now_ns() + (int64_t)(timeout * 1e9);
        }
        if (announced && !hold && (ended + closed >= reading || now_ns() > deadline)) break;
        if (!announced && now_ns() - start_ns > 120000000000LL) {
            fprintf(stderr, "not every client connected within 120 s\n");
            break;
        }
        int ready = epoll_wait(ep, events, 256, 50);
        int64_t now = now_ns();
        for (int e = 0; e < ready; e++) {
            client_t *c = events[e].data.ptr;
            for (;;) {
                memcpy(buf, c->tail, (size_t)c->tail_len);
                ssize_t got = read(c->fd, buf + c->tail_len, 1 << 16);
                if (got <= 0) {
                    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                    if (!c->closed) {
                        c->closed = 1;
                        if (!c->ended && !c->stalled) closed++;
                        if (!c->head_done) failed++;
                    }
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    break;
                }
                wire_bytes += (uint64_t)got;
                if (c->z != NULL) {
                    int was_ended = c->ended;
                    feed_compressed(c, buf + c->tail_len, (size_t)got, now);
                    if (c->ended && !was_ended) ended++;
                    continue;
                }
                size_t len = (size_t)c->tail_len + (size_t)got;
                c->tail_len = 0;
                size_t body = 0;
                if (!c->head_done) {
                    char *end = memmem(buf, len, "\r\n\r\n", 4);
                    if (end == NULL) {
                        /* heads are short: keep what fits and read on */
                        size_t keep = len < TAIL_MAX ? len : TAIL_MAX;
                        memcpy(c->tail, buf + len - keep, keep);
                        c->tail_len = (int)keep;
                        continue;
                    }
                    c->head_done = 1;
                    if (memcmp(buf, "HTTP/1.1 200", 12) != 0 && memcmp(buf, "HTTP/1.0 200", 12) != 0) {
                        c->failed = 1;
                        failed++;
                    } else {
                        heads++;
                    }
                    body = (size_t)(end + 4 - buf);
                    *end = '\0';
                    if (gzip && strcasestr(buf, "\r\ncontent-encoding: gzip") != NULL) {
                        c->z = calloc(1, sizeof(z_stream));
                        inflateInit2(c->z, 31);
                        c->chunked = strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL;
                        compressed_streams++;
                    }
                    *end = '\r';
                    if (c->stalled) {
                        /* stop reading: the kernel buffers fill, then the server's */
                        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                        break;
                    }
                }
                int was_ended = c->ended;
                if (c->z != NULL) {
                    feed_compressed(c, buf + body, len - body, now);
                } else {
                    scan(c, buf + body, len - body, now);
                }
                if (c->ended && !was_ended) ended++;
            }
        }
    }
    double cpu = cpu_seconds() - cpu_start;
    double wall = (double)now_ns() / 1e9 - wall_start;
    FILE *f = strcmp(out, "-") == 0 ? stdout : fopen(out, "w");
    fprintf(f,
            "{\"clients\": %d, \"connected\": %d, \"ended\": %d, \"closed\": %d, "
            "\"failed\": %d, \"received\": %llu, \"cpu_s\": %.4f, \"wall_s\": %.4f, "
            "\"wire_bytes\": %llu, \"compressed\": %d, \"hist\": [",
            n, heads, ended, closed, failed, (unsigned long long)received, cpu, wall,
            (unsigned long long)wire_bytes, compressed_streams);
    int first = 1;
    for (size_t b = 0; b < BUCKETS; b++) {
        if (!hist[b]) continue;
        long long us = b < FINE ? (long long)b : FINE + (long long)(b - FINE) * 100;
        fprintf(f, "%s[%lld, %u]", first ? "" : ", ", us, hist[b]);
        first = 0;
    }
    fprintf(f, "]}\n");
    if (f != stdout) fclose(f);
    for (int i = 0; i < n; i++) close(clients[i].fd);
    return 0;
}
