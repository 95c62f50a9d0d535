/* The media pump of bench/native_peers.py (bench/scale_bench.py; issue 14 goal 5): many calls' peers in one
 * thread, so that at 500 calls the benchmark measures the gateway and not its peers.
 *
 * Loaded with ctypes (the GIL is released during pump_run). Per call it gets the "browser"'s UDP socket
 * (the nominated ICE pair's, the gateway's web leg at its remote address) with two libsrtp sessions keyed
 * from the DTLS handshake (srtp_t pointers and libsrtp's protect/unprotect taken from pylibsrtp, as
 * gateway/media/native_hooks.py does: no headers, no struct layouts), or none (plain RTP: the floor); and
 * the gateway's SIP-leg address for the call's "phone". Every phone of the process shares one socket: the
 * SIP leg latches each call's port to its first packet's source (gateway/media/rtp/latch.py, RFC 4961), and
 * the payload says which call a packet belongs to.
 *
 * Every 20 ms each call sends one PCMU packet (160 bytes) each way, its phase within the frame spread
 * evenly over the calls (real calls are not in phase); a 1 ms timerfd tick sends the packets due (the
 * phones' in one sendmmsg). The payload starts with a stamp: magic, call, direction, sequence number and
 * CLOCK_REALTIME at send (in ns). The receiver takes the kernel's arrival time (SO_TIMESTAMPNS, so the
 * pump's own scheduling is not counted as latency) and counts the sequence numbers (lost = sent - unique
 * received) and the socket's own drops (SO_RXQ_OVFL: the peer's, not the gateway's).
 *
 * What the pump does not own goes back to Python: every datagram on a web socket that is not SRTP (STUN
 * consent, DTLS, SRTCP: RFC 7983's first byte and RFC 5761's payload type) is written to ``back_fd`` (a
 * SOCK_DGRAM socketpair) as [u32 call][u32 IPv4][u16 port][datagram], and Python hands it to aioice, which
 * answers consent and gives RTCP to aiortc as before.
 *
 * Transcoding (pump_media): the browser sends a canned Opus stream (pre-encoded frames, 960 ticks of
 * 48 kHz per 20 ms) and the phone a canned PCMU one, so that the gateway decodes and encodes every packet.
 * No stamp survives a codec, so each sent packet's time is kept by its frame number, and a delivered one
 * is matched through its RTP timestamp, as bench/peer_pool.py does: a box may rewrite the timestamps'
 * origin but keeps the media time, so the packet of media time m (from the first one delivered) is frame
 * m / 20 ms + o, with o the largest offset that makes no latency negative (pump_match; a box whose every
 * packet of a call waited more than 20 ms would read 20 ms short). The phone's socket tells the calls
 * apart by the source port (the gateway's SIP leg of each call).
 *
 * Build: cc -O2 -shared -fPIC -o native_peer.so native_peer.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FRAME_NS 20000000LL
#define TICK_NS 1000000LL
#define BATCH 64
#define MAX_DATAGRAM 1500
#define PAYLOAD 160
#define HEADER 12
#define MAGIC 0x4e504d50u /* "NPMP" */
#define BUCKET_NS 10000LL /* latency histogram: 10 us buckets up to 200 ms, then one overflow bucket */
#define BUCKETS 20001
#define LATE_NS 5000000LL /* pump_late: packets later than 5 ms (issue 14 goal 2), per second of sending */
#define LATE_SECONDS 64

typedef int (*srtp_fn)(void *ctx, void *data, int *len);

typedef struct {
    int32_t media;                  /* frames of media time from the first packet delivered */
    long long at;                   /* arrival (CLOCK_REALTIME) */
} Arrival;

typedef struct {
    int web_fd;
    struct sockaddr_in web_remote;  /* the gateway's web leg (ICE pair's remote) */
    struct sockaddr_in sip_remote;  /* the gateway's SIP leg for this call */
    void *tx, *rx;                  /* srtp_t, or NULL: plain RTP on the web leg */
    uint32_t web_ssrc, phone_ssrc;
    uint16_t web_seq, phone_seq;
    uint32_t web_ts, phone_ts;
    long long phase;                /* ns into the 20 ms frame */
    uint32_t start_frame;           /* the call's media starts there (a ramp: calls do not all start at once) */
    uint64_t sent[2], received[2];  /* [0] web -> phone, [1] phone -> web */
    uint32_t highest[2];
    uint8_t *seen[2];               /* a bit per sequence number: duplicates are not deliveries */
    long long *sent_at[2];          /* transcoding: CLOCK_REALTIME of each frame sent (0: not sent) */
    Arrival *arrivals[2];           /* transcoding: what arrived, matched to frames by pump_match */
    uint32_t arrived[2], first_ts[2];
} Call;

typedef struct {
    int count, phone_fd, back_fd, epfd, timer_fd;
    Call *calls;
    int *order;                     /* calls sorted by phase */
    srtp_fn protect, unprotect;
    uint32_t capacity;              /* packets per call and direction the bitmaps hold */
    uint64_t histogram[2][BUCKETS];
    uint64_t late[LATE_SECONDS];    /* per measured second (by send frame): deliveries later than LATE_NS */
    uint64_t back, back_errors, send_errors, srtp_errors, foreign, overflows[2], cpu_ns;
    uint32_t frame_base, count_from;  /* frames sent by earlier runs; the first frame counted */
    uint32_t last_ovfl_phone;
    uint32_t *last_ovfl_web;
    int transcoding, opus_pt, opus_frames, pcmu_frames, matched;
    uint8_t (*opus)[MAX_DATAGRAM];  /* transcoding: the browser's canned frames, and their lengths */
    int *opus_len;
    uint8_t (*pcmu)[PAYLOAD];       /* the phone's */
    int32_t *by_port;               /* the phone's socket: call index by the gateway's SIP-leg port, or -1 */
} Pump;

static long long now_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void put32(uint8_t *p, uint32_t v) { v = htonl(v); memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return ntohl(v); }

void *pump_new(int count, int phone_fd, int back_fd, void *protect, void *unprotect, double seconds) {
    Pump *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->count = count;
    p->phone_fd = phone_fd;
    p->back_fd = back_fd;
    p->protect = (srtp_fn)protect;
    p->unprotect = (srtp_fn)unprotect;
    p->capacity = (uint32_t)(seconds * 1e9 / FRAME_NS) + 64;
    p->calls = calloc((size_t)count, sizeof *p->calls);
    p->order = calloc((size_t)count, sizeof *p->order);
    p->last_ovfl_web = calloc((size_t)count, sizeof *p->last_ovfl_web);
    p->epfd = epoll_create1(0);
    if (!p->calls || !p->order || !p->last_ovfl_web || p->epfd < 0) return NULL;
    int one = 1;
    setsockopt(phone_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    setsockopt(phone_fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    return p;
}

/* Transcoding mode (module comment): ``opus`` holds ``opus_frames`` frames back to back, ``lengths`` their
 * sizes; ``pcmu`` ``pcmu_frames`` of 160 bytes; ``opus_pt`` the browser's Opus payload type. Before
 * pump_call. */
int pump_media(void *handle, int opus_pt, const uint8_t *opus, const int *lengths, int opus_frames,
               const uint8_t *pcmu, int pcmu_frames) {
    Pump *p = handle;
    if (opus_frames <= 0 || pcmu_frames <= 0) return -1;
    p->opus = calloc((size_t)opus_frames, sizeof *p->opus);
    p->opus_len = calloc((size_t)opus_frames, sizeof *p->opus_len);
    p->pcmu = calloc((size_t)pcmu_frames, sizeof *p->pcmu);
    p->by_port = malloc(65536 * sizeof *p->by_port);
    if (!p->opus || !p->opus_len || !p->pcmu || !p->by_port) return -1;
    for (int i = 0; i < 65536; i++) p->by_port[i] = -1;
    for (int i = 0, at = 0; i < opus_frames; at += lengths[i++]) {
        if (lengths[i] <= 0 || lengths[i] > MAX_DATAGRAM - 64) return -1;
        memcpy(p->opus[i], opus + at, (size_t)lengths[i]);
        p->opus_len[i] = lengths[i];
    }
    memcpy(p->pcmu, pcmu, (size_t)pcmu_frames * PAYLOAD);
    p->transcoding = 1;
    p->opus_pt = opus_pt;
    p->opus_frames = opus_frames;
    p->pcmu_frames = pcmu_frames;
    return 0;
}

int pump_call(void *handle, int index, int web_fd, uint32_t web_ip, int web_port, void *tx, void *rx,
              uint32_t web_ssrc, uint32_t sip_ip, int sip_port, uint32_t phone_ssrc, double phase, double start) {
    Pump *p = handle;
    if (index < 0 || index >= p->count) return -1;
    Call *c = &p->calls[index];
    c->web_fd = web_fd;
    c->web_remote = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)web_port),
                                          .sin_addr.s_addr = web_ip };
    c->sip_remote = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)sip_port),
                                          .sin_addr.s_addr = sip_ip };
    c->tx = tx;
    c->rx = rx;
    c->web_ssrc = web_ssrc;
    c->phone_ssrc = phone_ssrc;
    c->web_seq = (uint16_t)(web_ssrc >> 7);
    c->phone_seq = (uint16_t)(phone_ssrc >> 9);
    c->web_ts = web_ssrc * 7u;
    c->phone_ts = phone_ssrc * 13u;
    c->phase = (long long)(phase * FRAME_NS);
    c->start_frame = (uint32_t)(start * 1e9 / FRAME_NS);
    for (int d = 0; d < 2; d++) {
        c->seen[d] = calloc(p->capacity / 8 + 1, 1);
        if (!c->seen[d]) return -1;
        if (p->transcoding) {
            c->sent_at[d] = calloc(p->capacity, sizeof *c->sent_at[d]);
            c->arrivals[d] = calloc(2 * (size_t)p->capacity, sizeof *c->arrivals[d]);
            if (!c->sent_at[d] || !c->arrivals[d]) return -1;
        }
    }
    if (p->transcoding) p->by_port[ntohs(c->sip_remote.sin_port)] = index;
    int one = 1;
    setsockopt(web_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    setsockopt(web_fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)index };
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, web_fd, &ev);
}

static Call *by_phase_calls;
static int by_phase(const void *a, const void *b) {
    long long x = by_phase_calls[*(const int *)a].phase, y = by_phase_calls[*(const int *)b].phase;
    return (x > y) - (x < y);
}

/* The packet of call c, direction d (0: from the browser, 1: from the phone) into buf: RTP header + stamp. */
static int packet(Pump *p, Call *c, int index, int d, uint32_t sequence, uint8_t *buf) {
    uint16_t seq = d ? c->phone_seq++ : c->web_seq++;
    int opus = p->transcoding && !d;
    uint32_t ts = d ? (c->phone_ts += 160) : (c->web_ts += opus ? 960 : 160);
    buf[0] = 0x80;
    buf[1] = opus ? (uint8_t)p->opus_pt : 0; /* PCMU */
    buf[2] = (uint8_t)(seq >> 8);
    buf[3] = (uint8_t)seq;
    put32(buf + 4, ts);
    put32(buf + 8, d ? c->phone_ssrc : c->web_ssrc);
    if (p->transcoding) { /* canned media; the send time is kept by frame (no stamp survives a codec) */
        if (sequence < p->capacity) c->sent_at[d][sequence] = now_ns(CLOCK_REALTIME);
        if (opus) {
            int k = (int)(sequence % (uint32_t)p->opus_frames);
            memcpy(buf + HEADER, p->opus[k], (size_t)p->opus_len[k]);
            return HEADER + p->opus_len[k];
        }
        memcpy(buf + HEADER, p->pcmu[sequence % (uint32_t)p->pcmu_frames], PAYLOAD);
        return HEADER + PAYLOAD;
    }
    uint8_t *s = buf + HEADER;
    memset(s, 0xff, PAYLOAD); /* PCMU silence */
    put32(s, MAGIC);
    put32(s + 4, (uint32_t)index);
    put32(s + 8, (uint32_t)d);
    put32(s + 12, sequence);
    long long t = now_ns(CLOCK_REALTIME);
    memcpy(s + 16, &t, 8);
    return HEADER + PAYLOAD;
}

/* A delivery of frame ``sequence`` (counted: past the warm-up) ``latency`` ns after its send. */
static void record(Pump *p, int d, uint32_t sequence, long long latency) {
    long long bucket = latency / BUCKET_NS;
    if (bucket < 0) bucket = 0;
    if (bucket >= BUCKETS) bucket = BUCKETS - 1;
    p->histogram[d][bucket]++;
    uint32_t second = (sequence - p->count_from) / (uint32_t)(1000000000LL / FRAME_NS);
    if (latency > LATE_NS && second < LATE_SECONDS) p->late[second]++;
}

static void deliver(Pump *p, const uint8_t *data, int len, long long arrival) {
    int offset = HEADER + 4 * (data[0] & 0x0f); /* RFC 3550 §5.1: CSRCs, then the extension (§5.3.1) */
    if ((data[0] & 0x10) && len >= offset + 4) offset += 4 + 4 * ((data[offset + 2] << 8) | data[offset + 3]);
    if (len < offset + 24 || get32(data + offset) != MAGIC) { p->foreign++; return; }
    const uint8_t *s = data + offset;
    uint32_t index = get32(s + 4), d = get32(s + 8), sequence = get32(s + 12);
    long long sent;
    memcpy(&sent, s + 16, 8);
    if (index >= (uint32_t)p->count || d > 1 || sequence >= p->capacity) { p->foreign++; return; }
    if (sequence < p->count_from) return; /* sent during the warm-up */
    Call *c = &p->calls[index];
    uint8_t *bit = &c->seen[d][sequence / 8];
    if (*bit & (1u << (sequence % 8))) return; /* a duplicate */
    *bit |= (uint8_t)(1u << (sequence % 8));
    c->received[d]++;
    record(p, (int)d, sequence, arrival - sent);
}

/* Transcoding: an RTP packet of call ``index`` arrived in direction d (0: at the phone): kept with its media
 * time in frames from the call's first delivered packet, for pump_match. */
static void arrive(Pump *p, int index, int d, const uint8_t *data, int len, long long arrival) {
    if (index < 0 || index >= p->count || len < HEADER) { p->foreign++; return; }
    Call *c = &p->calls[index];
    uint32_t ts = get32(data + 4);
    if (c->arrived[d] == 0) c->first_ts[d] = ts;
    else if (c->arrived[d] >= 2 * p->capacity) return;
    int32_t ticks = d ? 960 : 160; /* the browser hears Opus (48 kHz), the phone PCMU (8 kHz) */
    int32_t delta = (int32_t)(ts - c->first_ts[d]);
    int32_t media = delta >= 0 ? (delta + ticks / 2) / ticks : -((-delta + ticks / 2) / ticks);
    c->arrivals[d][c->arrived[d]++] = (Arrival){ media, arrival };
}

/* Transcoding: match each call's arrivals to the frames sent (module comment) into the counts and the
 * histograms, once. */
static void pump_match(Pump *p) {
    if (!p->transcoding || p->matched) return;
    p->matched = 1;
    for (int i = 0; i < p->count; i++) {
        Call *c = &p->calls[i];
        for (int d = 0; d < 2; d++) {
            if (c->arrived[d] == 0) continue;
            long long first = -1; /* the first frame sent */
            for (uint32_t k = 0; k < p->capacity && first < 0; k++)
                if (c->sent_at[d][k]) first = k;
            if (first < 0) continue;
            long long best = -1;
            for (long long o = first; o < first + 16; o++) { /* the largest offset with no negative latency */
                int ok = 1;
                for (uint32_t a = 0; a < c->arrived[d] && ok; a++) {
                    long long k = c->arrivals[d][a].media + o;
                    if (k < 0 || k >= p->capacity || !c->sent_at[d][k]) continue;
                    if (c->arrivals[d][a].at - c->sent_at[d][k] < -1000000LL) ok = 0;
                }
                if (!ok) break;
                best = o;
            }
            if (best < 0) { p->foreign += c->arrived[d]; continue; }
            for (uint32_t a = 0; a < c->arrived[d]; a++) {
                long long k = c->arrivals[d][a].media + best;
                if (k < 0 || k >= p->capacity || !c->sent_at[d][k]) { p->foreign++; continue; }
                if (k < p->count_from) continue; /* sent during the warm-up */
                uint8_t *bit = &c->seen[d][k / 8];
                if (*bit & (1u << (k % 8))) continue; /* a duplicate */
                *bit |= (uint8_t)(1u << (k % 8));
                c->received[d]++;
                record(p, d, (uint32_t)k, c->arrivals[d][a].at - c->sent_at[d][k]);
            }
        }
    }
}

static long long arrival_of(struct msghdr *h, long long fallback, uint32_t *ovfl) {
    long long t = fallback;
    for (struct cmsghdr *m = CMSG_FIRSTHDR(h); m; m = CMSG_NXTHDR(h, m)) {
        if (m->cmsg_level == SOL_SOCKET && m->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(m), sizeof ts);
            t = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        } else if (m->cmsg_level == SOL_SOCKET && m->cmsg_type == SO_RXQ_OVFL) {
            memcpy(ovfl, CMSG_DATA(m), 4);
        }
    }
    return t;
}

static uint8_t in_buf[BATCH][MAX_DATAGRAM + 64];
static uint8_t in_ctl[BATCH][128];
static struct sockaddr_in in_from[BATCH];

static void drain(Pump *p, int fd, int web_index) {
    struct mmsghdr in[BATCH];
    struct iovec iov[BATCH];
    for (;;) {
        for (int k = 0; k < BATCH; k++) {
            iov[k] = (struct iovec){ in_buf[k], MAX_DATAGRAM };
            in[k].msg_hdr = (struct msghdr){ .msg_name = &in_from[k], .msg_namelen = sizeof in_from[k],
                                             .msg_iov = &iov[k], .msg_iovlen = 1,
                                             .msg_control = in_ctl[k], .msg_controllen = sizeof in_ctl[k] };
        }
        int n = recvmmsg(fd, in, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        long long fallback = now_ns(CLOCK_REALTIME);
        for (int k = 0; k < n; k++) {
            uint8_t *data = in_buf[k];
            int len = (int)in[k].msg_len;
            uint32_t ovfl = web_index < 0 ? p->last_ovfl_phone : p->last_ovfl_web[web_index];
            long long arrival = arrival_of(&in[k].msg_hdr, fallback, &ovfl);
            if (web_index < 0) {
                p->overflows[0] += ovfl - p->last_ovfl_phone;
                p->last_ovfl_phone = ovfl;
                if (len >= HEADER && (data[0] & 0xc0) == 0x80 && !(data[1] >= 192 && data[1] <= 223)) {
                    if (p->transcoding) arrive(p, p->by_port[ntohs(in_from[k].sin_port)], 0, data, len, arrival);
                    else deliver(p, data, len, arrival);
                }
                continue;
            }
            p->overflows[1] += ovfl - p->last_ovfl_web[web_index];
            p->last_ovfl_web[web_index] = ovfl;
            Call *c = &p->calls[web_index];
            int rtp = len >= HEADER && data[0] >= 128 && data[0] <= 191 && !(data[1] >= 192 && data[1] <= 223);
            if (!rtp) { /* STUN, DTLS, SRTCP: Python's */
                uint8_t back[MAX_DATAGRAM + 10];
                put32(back, (uint32_t)web_index);
                memcpy(back + 4, &in_from[k].sin_addr.s_addr, 4);
                memcpy(back + 8, &in_from[k].sin_port, 2);
                memcpy(back + 10, data, (size_t)len);
                if (send(p->back_fd, back, (size_t)len + 10, MSG_DONTWAIT) < 0) p->back_errors++;
                else p->back++;
                continue;
            }
            if (c->rx && p->unprotect(c->rx, data, &len) != 0) { p->srtp_errors++; continue; }
            if (p->transcoding) arrive(p, web_index, 1, data, len, arrival);
            else deliver(p, data, len, arrival);
        }
        if (n < BATCH) return;
    }
}

/* Send for ``seconds``, keep receiving for ``linger`` more; the first ``warmup`` seconds' packets are not
 * counted (sent, delivered, latency). Frames go on from an earlier run's. Returns 0, or -1 if the timer
 * failed. */
int pump_run(void *handle, double seconds, double linger, double warmup) {
    Pump *p = handle;
    long long cpu_start = now_ns(CLOCK_THREAD_CPUTIME_ID);
    if (seconds > 0) p->count_from = p->frame_base + (uint32_t)(warmup * 1e9 / FRAME_NS);
    by_phase_calls = p->calls;
    for (int i = 0; i < p->count; i++) p->order[i] = i;
    qsort(p->order, (size_t)p->count, sizeof *p->order, by_phase);
    p->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec every = { .it_interval = { 0, TICK_NS }, .it_value = { 0, TICK_NS } };
    if (p->timer_fd < 0 || timerfd_settime(p->timer_fd, 0, &every, NULL) < 0) return -1;
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0xfffffffeu };
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->timer_fd, &ev);
    ev.data.u32 = 0xffffffffu;
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->phone_fd, &ev);

    long long start = now_ns(CLOCK_MONOTONIC);
    long long end = start + (long long)((seconds + linger) * 1e9);
    uint32_t frames = (uint32_t)(seconds * 1e9 / FRAME_NS);
    uint32_t frame = 0;
    int next = 0; /* in p->order: the next call to send in this frame */
    static uint8_t out_buf[BATCH][HEADER + PAYLOAD + 64];
    struct mmsghdr out[BATCH];
    struct iovec out_iov[BATCH];
    struct epoll_event events[256];
    for (;;) {
        long long now = now_ns(CLOCK_MONOTONIC);
        if (now >= end && (frame >= frames || p->count == 0)) break; /* a late pump still sends every frame */
        int batch = 0;
        while (frame < frames && p->count > 0) { /* what is due: this frame's calls up to now */
            if (next == p->count) { next = 0; frame++; continue; }
            Call *c = &p->calls[p->order[next]];
            if (start + (long long)frame * FRAME_NS + c->phase > now) break;
            int index = p->order[next++];
            uint8_t web[MAX_DATAGRAM + 64];
            uint32_t sequence = p->frame_base + frame;
            if (sequence < c->start_frame) continue;
            int counted = sequence >= p->count_from;
            int len = packet(p, c, index, 0, sequence, web);
            if (c->tx && p->protect(c->tx, web, &len) != 0) p->srtp_errors++;
            else if (sendto(c->web_fd, web, (size_t)len, 0, (struct sockaddr *)&c->web_remote, sizeof c->web_remote) < 0)
                p->send_errors++;
            else c->sent[0] += (uint64_t)counted;
            len = packet(p, c, index, 1, sequence, out_buf[batch]);
            out_iov[batch] = (struct iovec){ out_buf[batch], (size_t)len };
            out[batch].msg_hdr = (struct msghdr){ .msg_name = &c->sip_remote, .msg_namelen = sizeof c->sip_remote,
                                                  .msg_iov = &out_iov[batch], .msg_iovlen = 1 };
            c->sent[1] += (uint64_t)counted;
            if (++batch == BATCH) {
                int done = sendmmsg(p->phone_fd, out, BATCH, 0);
                if (done < BATCH) p->send_errors += (uint64_t)(BATCH - (done < 0 ? 0 : done));
                batch = 0;
            }
        }
        if (batch) {
            int done = sendmmsg(p->phone_fd, out, (unsigned)batch, 0);
            if (done < batch) p->send_errors += (uint64_t)(batch - (done < 0 ? 0 : done));
        }
        int ready = epoll_wait(p->epfd, events, 256, 5);
        for (int e = 0; e < ready; e++) {
            uint32_t id = events[e].data.u32;
            if (id == 0xfffffffeu) {
                uint64_t expirations;
                if (read(p->timer_fd, &expirations, sizeof expirations) < 0) { /* nothing */ }
            } else if (id == 0xffffffffu) {
                drain(p, p->phone_fd, -1);
            } else {
                drain(p, p->calls[id].web_fd, (int)id);
            }
        }
    }
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->phone_fd, NULL); /* the web sockets stay: run again to linger */
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->timer_fd, NULL);
    close(p->timer_fd);
    p->frame_base += frames;
    p->cpu_ns += (uint64_t)(now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start);
    return 0;
}

/* Per call: web sent, web received (by the phone), phone sent, phone received (by the browser). */
void pump_counts(void *handle, int index, uint64_t *out) {
    pump_match(handle);
    Call *c = &((Pump *)handle)->calls[index];
    out[0] = c->sent[0];
    out[1] = c->received[0];
    out[2] = c->sent[1];
    out[3] = c->received[1];
}

/* The latency histogram of direction d (BUCKETS counts of 10 us). */
void pump_histogram(void *handle, int d, uint64_t *out) {
    pump_match(handle);
    memcpy(out, ((Pump *)handle)->histogram[d], sizeof ((Pump *)handle)->histogram[d]);
}

/* Deliveries later than 5 ms, per second of sending after the warm-up (LATE_SECONDS counts). */
void pump_late(void *handle, uint64_t *out) {
    pump_match(handle);
    memcpy(out, ((Pump *)handle)->late, sizeof ((Pump *)handle)->late);
}

/* back, back_errors, send_errors, srtp_errors, foreign, phone socket drops, web sockets' drops, the pump
 * thread's CPU in ns */
void pump_errors(void *handle, uint64_t *out) {
    Pump *p = handle;
    uint64_t v[8] = { p->back, p->back_errors, p->send_errors, p->srtp_errors, p->foreign, p->overflows[0],
                      p->overflows[1], p->cpu_ns };
    memcpy(out, v, sizeof v);
}

void pump_free(void *handle) {
    Pump *p = handle;
    for (int i = 0; i < p->count; i++) {
        free(p->calls[i].seen[0]);
        free(p->calls[i].seen[1]);
        for (int d = 0; d < 2; d++) {
            free(p->calls[i].sent_at[d]);
            free(p->calls[i].arrivals[d]);
        }
    }
    free(p->opus);
    free(p->opus_len);
    free(p->pcmu);
    free(p->by_port);
    close(p->epfd);
    free(p->calls);
    free(p->order);
    free(p->last_ovfl_web);
    free(p);
}
