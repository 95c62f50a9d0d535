/*
 * The media fast lane: one native thread that forwards steady pass-through RTP between the two legs of
 * many calls, so a packet costs a few system calls instead of an event-loop wake-up and ~100 lines of
 * Python (see gateway/media/fastlane/, which owns every decision; this file only executes them).
 *
 * Per call a Link owns duplicates of two UDP sockets: the web leg's (the ICE pair's, SRTP) and the SIP
 * leg's (plain RTP, or SRTP when the link was given SIP-leg sessions). The thread reads both. A packet
 * that matches its direction's armed lane (source address, SSRC, payload type, timestamps in step with
 * the clock) is SRTP-unprotected where its leg has SRTP, rewritten (SSRC, sequence number, timestamp
 * offset, payload type), SRTP-protected where the other leg has SRTP and sent on the other socket; the
 * thread accounts for it in its lane's Tally (below) - nothing is queued per forwarded packet. Anything else (STUN, DTLS, RTCP, DTMF, a new
 * source, a jump) is queued for Python as is - RTP already decrypted, from either leg, with a kind that
 * says so (libsrtp's replay check would refuse a second unprotect) - and disarms the lane when it was
 * armed: Python handles it on its usual path and re-arms. SRTCP from the browser is unprotected here: its
 * report compounds (SR/RR/SDES, statistics only) are kept, the latest of each kind, for Python's next sync
 * (web_rtcp, Link.reports); the rest is queued decrypted. The SIP leg's RTCP is left to Python. A lane armed
 * while RTP of its direction still waits in the queue takes those packets back and forwards them first
 * (take_back), so that a backlog in Python never keeps lanes from arming.
 *
 * SRTP: the Link uses aiortc's own libsrtp sessions on the web leg and the SIP leg's SRTP sessions (SDES
 * or DTLS-SRTP, gateway/media/srtp.py) on the SIP leg, pointers taken from pylibsrtp; every use of them -
 * the thread's and Python's (Link.srtp, which the fast lane installs in the legs' place) - happens under
 * the engine mutex: libsrtp sessions are not thread-safe. An SRTP packet from the SIP side that does not
 * authenticate is dropped and counted (sip_dropped), as one from the browser is (dropped).
 *
 * Accounting (the Tally of each lane): what the Python path does per packet it forwards - RTCP receive
 * statistics of the input source (RFC 3550 A.1, A.3, A.8, as gateway/media/rtp_stats.py for the SIP leg
 * and aiortc's StreamStatistics for the web leg), MediaPath's counters and loss count, the timestamp
 * mapper's last packet, the output's sender counters and last timestamp, the last arrival (watchdogs),
 * latency samples - is done here. Python reads a snapshot (Link.snapshot) when it builds RTCP or a report,
 * before it handles a datagram of the link, and every 5 s (DRAIN_INTERVAL). Ownership of the receive statistics:
 * arm() imports Python's state into a lane that does not hold it; the engine then holds it (Python only
 * gets copies) until a snapshot of the lane taken while it is disarmed hands it back - Python handles a
 * packet of that direction only after such a snapshot, since only a disarmed lane leaves packets to it.
 *
 * Locking: one engine mutex guards the queue and every Link; the thread holds it while it processes the
 * events of one epoll_wait. Python-facing calls hold the GIL and then take the mutex; the thread never
 * takes the GIL, so there is no lock-order cycle. A closed Link's state is freed by the thread after the
 * round that may still see its events (the graveyard), never by Python.
 */

#define _GNU_SOURCE /* recvmmsg */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "_stun.h"

#define MAX_PACKET 1500
#define BUFFER_SIZE (MAX_PACKET + 256) /* room for the SRTP trailer (tag + MKI) */
#define MAX_EXTENSION 255
#define BATCH 32                 /* datagrams read from one socket per round (fairness) */
#define QUEUE_LIMIT 262144       /* items; beyond it new items are dropped and counted */
#define JUMP_SECONDS 1.0         /* as gateway/media/retime.py */
#define NOTIFY_DELAY 0.01        /* seconds RTCP and STUN may wait in the queue for Python (wake_python) */
#define MAX_COALESCE 0.005       /* Engine.coalesce's ceiling, seconds */
#define GATHER_MIN 4.0           /* packets a gathering wait must expect (at the thread's rate) to be worth it */
#define RATE_WINDOW 0.1          /* seconds over which the thread measures its packet rate */

enum { LANE_WEB_TO_SIP = 0, LANE_SIP_TO_WEB = 1 };
/* what drain() returns: datagrams left to Python - raw, or RTP the engine already unprotected
   (KIND_WEB_RTP always; KIND_SIP_RTP when the SIP leg has SRTP). Kinds 0 and 1 were records of forwarded
   packets, which the lanes' tallies replaced. */
enum {
    KIND_WEB_RAW = 2,
    KIND_WEB_RTP = 3,
    KIND_SIP_RAW = 4,
    KIND_SIP_RTP = 5,
};
#define KIND_TAKEN 0 /* a queued item arm() forwarded after all (take_back): drain() leaves it out */
enum { OP_PROTECT = 0, OP_UNPROTECT = 1, OP_PROTECT_RTCP = 2, OP_UNPROTECT_RTCP = 3 };

typedef int (*srtp_fn)(void *ctx, void *data, int *len);

typedef struct {
    struct sockaddr_storage addr;
    socklen_t len;
} Address;

typedef struct {
    uint32_t ssrc;
    uint16_t seq;
    uint8_t first;                 /* V=2 and the X bit when an extension follows */
    uint8_t extension[MAX_EXTENSION + 1];
    int extension_len;
} Output;

enum { CODEC_PASS = 0, CODEC_OPUS = 1, CODEC_PCMU = 2, CODEC_PCMA = 3 };

/* Receive statistics of one source. STATS_RFC3550: gateway/media/rtp_stats.ReceiveStatistics (A.1 with
   the bad-sequence restart, A.8 jitter as a double on the monotonic clock); STATS_AIORTC: aiortc's
   StreamStatistics.add (in-order packets only, A.8 in Q4 integers on the wall clock in clock units). */
enum { STATS_RFC3550 = 0, STATS_AIORTC = 1 };
#define SEQ_MOD 65536
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
#define LATENCY_SAMPLES 128

typedef struct {
    int flavour;
    int64_t clock_rate;
    int64_t received, cycles;
    int32_t base_seq, max_seq, bad_seq; /* -1: none yet */
    int has_last;
    double transit;                /* RFC 3550: the last transit time */
    int64_t last_arrival;          /* aiortc: the last in-order arrival, int(wall clock * rate) */
    uint32_t last_ts;              /* aiortc: its timestamp */
    double jitter;                 /* RFC 3550: the estimate; aiortc: _jitter_q4 (an integer) */
    int restarted;                 /* RFC 3550: the source restarted (A.1) since the last snapshot */
} Reception;

/* What a lane forwarded since the last snapshot, and the state that outlives snapshots. */
typedef struct {
    int owned;                     /* the engine holds the live receive statistics (see the note on top) */
    Reception rx;
    uint32_t rx_ssrc;              /* the source ``rx`` and ``last_seq`` are of */
    int32_t last_seq;              /* forward.MediaPath._count_loss of the lane's source, -1: none */
    uint64_t packets, forwarded, transcoded, lost, sent, octets;
    uint32_t last_ts, last_mapped, last_out_ts;
    uint8_t last_pt;
    double last_arrival, last_departure;
    float latency[LATENCY_SAMPLES]; /* seconds from arrival to departure, the newest kept */
    int latency_count;
} Tally;

#define PCM_FRAME 160              /* 20 ms at 8 kHz: what transcoding lanes decode to and encode from */
#define PCM_CAPACITY 1280          /* 120 ms (Opus's longest packet) + a partial frame */

typedef struct {
    int armed;
    Address source;                /* only packets from here */
    Address destination;           /* where they go on the other leg */
    uint32_t ssrc;
    uint8_t pt_in, pt_out;
    /* timestamps as gateway/media/retime.py: out = anchor_out + floor(signed(in - anchor_in) * out/in) */
    uint32_t anchor_in, anchor_out;
    int64_t in_rate, out_rate;
    uint32_t last_ts;
    double last_time;
    /* transcoding (codec_in != CODEC_PASS): Opus <-> G.711 through 8 kHz PCM, 20 ms frames out,
       stamped as retime.FrameClock (consecutive, re-synced to the mapped input beyond ``tolerance``) */
    int codec_in, codec_out;
    int has_next;
    uint32_t next_ts;
    int64_t tolerance, frame_ticks;
    void *decoder, *encoder;       /* libopus states, owned by the lane */
    int decoder_codec, encoder_codec;
    int16_t *pcm;                  /* PCM_CAPACITY samples, malloc'd with the codecs (prepare_codecs): NULL
                                      until the lane first transcodes (a pass-through call has none) */
    int pcm_len;
    uint64_t punted_at;            /* Engine.drains when it last queued an RTP packet of this direction */
    uint64_t forwarded, send_errors, codec_errors;
    Tally tally;
} Lane;

/* libopus (the one PyAV bundles, or the system's) and G.711 tables, given once by fastpath.py */
typedef struct {
    void *(*decoder_create)(int32_t fs, int channels, int *error);
    int (*decode)(void *st, const unsigned char *data, int32_t len, int16_t *pcm, int frame_size, int fec);
    void (*decoder_destroy)(void *st);
    void *(*encoder_create)(int32_t fs, int channels, int application, int *error);
    int32_t (*encode)(void *st, const int16_t *pcm, int frame_size, unsigned char *data, int32_t max_bytes);
    int (*encoder_ctl)(void *st, int request, ...);
    void (*encoder_destroy)(void *st);
} OpusApi;

static OpusApi opus;
static int opus_ready;
static int g711_ready;
static int16_t g711_decode[2][256];       /* [0]: mu-law, [1]: A-law */
static uint8_t g711_encode[2][65536];     /* indexed by the sample as uint16 */

#define OPUS_APPLICATION_VOIP 2048
#define OPUS_SET_BITRATE_REQUEST 4002
#define OPUS_BITRATE 32000
/* The encoder's settings for a G.711 source (gateway/media/opus_settings.py says why; set_opus_encoder):
   libopus's request numbers (opus_defines.h). */
#define OPUS_SET_MAX_BANDWIDTH_REQUEST 4004
#define OPUS_SET_COMPLEXITY_REQUEST 4010
#define OPUS_SET_INBAND_FEC_REQUEST 4012
#define OPUS_SET_DTX_REQUEST 4016
#define OPUS_SET_SIGNAL_REQUEST 4024
#define OPUS_BANDWIDTH_NARROWBAND 1101
#define OPUS_SIGNAL_VOICE 3001
static int opus_complexity = 5, opus_inband_fec = 0;


/* A video lane (issue 19): gateway/media/video.py's VideoPath.feed for one direction - payload types
   mapped (several codecs), repair formats (rtx, red, fec) dropped, sequence numbers shifted by an offset
   (the input's gaps kept, padding-only packets closing up), timestamps on the output timeline - and the
   accounting the Python path does per packet (receive statistics of the input, sender counters). */
enum { VCODEC_OTHER = 0, VCODEC_VP8 = 1, VCODEC_VP9 = 2, VCODEC_H264 = 3 };
enum { KIND_VIDEO_SIP_RAW = 6, KIND_VIDEO_SIP_RTP = 7 };
/* SRTCP from the browser the engine unprotected and did not keep (web_rtcp): feedback, BYE, ... */
enum { KIND_WEB_RTCP = 8 };

/* The browser's latest report compound of one kind (web_rtcp), decrypted, or len 0: none since taken. */
#define KEPT_MAX 512               /* larger compounds (many report blocks) go to Python as KIND_WEB_RTCP */
enum { KEPT_SR = 0, KEPT_RR = 1 };
typedef struct {
    double arrival;
    int len;
    uint8_t data[KEPT_MAX];
} Kept;

typedef struct {
    int armed;
    int claimed;                   /* ``ssrc`` is the video's: its packets never disarm the audio lane */
    Address source, destination;
    uint32_t ssrc;
    int16_t pt_map[128];           /* input -> output payload type, -1: not forwarded */
    uint8_t repair[128], codec[128];
    uint16_t offset, last_out;
    int32_t highest;               /* -1: none yet */
    uint32_t anchor_in, anchor_out, last_ts;
    double last_time;
    Output out;                    /* SSRC, first byte and header extension (seq: the offset's) */
    Reception rx;
    uint64_t punted_at;
    /* since the last snapshot */
    uint64_t received, forwarded, repair_dropped, dropped, lost, keyframes, padding, sent, octets;
    uint32_t last_mapped, last_out_ts;
    double last_arrival, last_departure;
    /* totals */
    uint64_t total_forwarded, send_errors;
} VideoLane;

struct Core;

typedef struct {
    struct Core *core;             /* NULL: the engine's stop event */
    int which;                     /* 0: the web socket, 1: the SIP socket */
} Tag;

typedef struct Core {
    uint32_t id;
    int dead;
    int fds[3];                    /* fds[2]: the SIP side's video socket, while has_video */
    void *rx, *tx;                 /* libsrtp sessions (srtp_t) of the web leg */
    void *sip_rx, *sip_tx;         /* the SIP leg's, or NULL: plain RTP */
    Output out[2];                 /* out[0]: to the SIP side, out[1]: to the browser */
    Lane lanes[2];
    uint64_t dropped;              /* SRTP failures and malformed web RTP */
    uint64_t sip_dropped;          /* SRTP from the SIP side that did not authenticate (or malformed after) */
    Tag tags[2];
    struct Core *next_dead;
    /* video (issue 19): the SIP side's video socket and a lane per direction (the "video lanes" below) */
    int has_video;
    Tag video_tag;
    void *vsip_rx, *vsip_tx;       /* the SIP side's video SRTP sessions, or NULL: plain RTP */
    VideoLane *video;              /* [0]: browser -> SIP side, [1]: SIP side -> browser; NULL until link_video
                                      (calloc'd then: an audio-only call has none), freed with the Core */
    uint64_t video_sip_dropped;    /* SRTP from the SIP side's video that did not authenticate */
    /* the browser's report compounds (web_rtcp): the latest SR-led and RR-led ones, and how many arrived
       (with their SRTCP octets) since Python took them */
    Kept kept[2];
    uint64_t kept_packets, kept_octets;
    /* the browser's consent checks from ice_remote that this thread answers (_stun.c; link_ice) */
    StunIce ice;
    Address ice_remote;
    uint64_t stun_answered;
} Core;

typedef struct {
    uint32_t link_id;
    uint8_t kind;
    double arrival;
    uint8_t *data;                 /* a malloc'd copy of the datagram */
    int len;
    Address source;
} Item;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_t thread;
    int running;
    int epfd, stopfd, notifyfd;
    int notified;
    Tag stop_tag;
    Item *items;
    size_t count, capacity;
    uint64_t queue_drops;
    double wall_offset;            /* CLOCK_REALTIME - CLOCK_MONOTONIC (aiortc's clock), measured ... */
    double wall_at;                /* ... at this monotonic time, again a second later (run) */
    uint64_t drains;               /* drain() calls: a lane punted at the current count has a packet queued */
    int failed;                    /* the thread stopped on an error: links no longer forward or read */
    double notify_due;             /* when queued RTCP/STUN wakes Python (0: nothing waits); the thread's */
    Core *graveyard;
    srtp_fn fn[4];
    /* the thread's rounds (Engine.timing, bench/scale_bench.py): waits for the lock longer than 1 ms (Python
       held it), rounds that held it longer than 2 ms (packets waiting for other calls' codecs), the longest */
    uint64_t lock_waits, long_rounds;
    double lock_wait_max, round_max;
    /* seconds a round's packets wait at most for the next ones (run: fewer wake-ups under load); Python sets
       it, the thread reads it under the lock */
    double coalesce;
    uint64_t coalesced; /* rounds after which the thread waited */
} Engine;

typedef struct {
    PyObject_HEAD
    Engine *engine;
    Core *core;                    /* NULL once closed */
    PyObject *sessions;            /* keeps the pylibsrtp sessions alive while the thread may use them */
} Link;

static PyTypeObject EngineType;
static PyTypeObject LinkType;

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double realtime_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int same_address(const Address *a, const struct sockaddr_storage *b) {
    if (a->addr.ss_family != b->ss_family)
        return 0;
    if (b->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->addr, *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->addr, *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ queue */

static Item *push_item(Engine *e) {
    if (e->count >= QUEUE_LIMIT) {
        e->queue_drops++;
        return NULL;
    }
    if (e->count == e->capacity) {
        size_t capacity = e->capacity ? e->capacity * 2 : 256;
        Item *items = realloc(e->items, capacity * sizeof(Item));
        if (items == NULL) {
            e->queue_drops++;
            return NULL;
        }
        e->items = items;
        e->capacity = capacity;
    }
    Item *item = &e->items[e->count++];
    memset(item, 0, offsetof(Item, source));
    return item;
}

static int punt(Engine *e, Core *c, uint8_t kind, const uint8_t *data, int len, const struct sockaddr_storage *src,
                socklen_t srclen, double now) {
    uint8_t *copy = malloc(len > 0 ? (size_t)len : 1);
    if (copy == NULL) {
        e->queue_drops++;
        return 0;
    }
    Item *item = push_item(e);
    if (item == NULL) {
        free(copy);
        return 0;
    }
    memcpy(copy, data, (size_t)len);
    item->link_id = c->id;
    item->kind = kind;
    item->data = copy;
    item->len = len;
    item->arrival = now;
    memcpy(&item->source.addr, src, srclen);
    item->source.len = srclen;
    return 1;
}

static void free_items(Item *items, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(items[i].data);
}

/* -------------------------------------------------------------------------------------- accounting */

typedef struct {
    uint32_t ssrc, ts;
    uint16_t seq;
    uint8_t pt, marker;
    int payload, end;              /* payload = data[payload:end] */
} Rtp;


/* Python's float % (the result takes the divisor's sign), for the A.8 wrap of rtp_stats.py. */
static double py_mod(double x, double m) {
    double r = fmod(x, m);
    if (r != 0 && ((r < 0) != (m < 0)))
        r += m;
    return r;
}

static void reception_init_seq(Reception *s, int32_t seq) {
    s->base_seq = s->max_seq = seq;
    s->bad_seq = SEQ_MOD + 1;
    s->cycles = s->received = 0;
}

/* RFC 3550 A.1 and A.8 exactly as rtp_stats.ReceiveStatistics.update (timing=True); ``arrival`` in seconds
   on the monotonic clock. 0 when A.1 sets the packet aside (a jump: not counted). */
static int reception_rfc3550(Reception *s, uint16_t seq, uint32_t ts, double arrival) {
    if (s->max_seq < 0) {
        reception_init_seq(s, seq);
        s->restarted = 1;
    } else {
        int32_t delta = ((int32_t)seq - s->max_seq + SEQ_MOD) % SEQ_MOD;
        if (delta < MAX_DROPOUT) { /* in order, with a permissible gap */
            if (seq < s->max_seq)
                s->cycles += SEQ_MOD;
            s->max_seq = seq;
        } else if (delta <= SEQ_MOD - MAX_MISORDER) { /* a very large jump */
            if (seq != s->bad_seq) {
                s->bad_seq = (seq + 1) % SEQ_MOD;
                return 0;
            }
            reception_init_seq(s, seq); /* two sequential packets: the source restarted */
            s->restarted = 1;
            s->has_last = 0;
        } /* else a duplicate or reordered packet: counted, max_seq stays */
    }
    s->received++;
    double transit = arrival * (double)s->clock_rate - (double)ts;
    if (s->has_last) {
        double d = py_mod(transit - s->transit + 2147483648.0, 4294967296.0) - 2147483648.0;
        s->jitter += (fabs(d) - s->jitter) / 16;
    }
    s->transit = transit;
    s->has_last = 1;
    return 1;
}

/* aiortc's StreamStatistics.add; ``wall`` in seconds on the wall clock (time.time()). */
static void reception_aiortc(Reception *s, uint16_t seq, uint32_t ts, double wall) {
    int in_order = s->max_seq < 0 || (seq != s->max_seq && (uint16_t)(seq - s->max_seq) < 0x8000);
    s->received++;
    if (s->base_seq < 0)
        s->base_seq = seq;
    if (!in_order)
        return;
    int64_t arrival = (int64_t)(wall * (double)s->clock_rate);
    if (s->max_seq >= 0 && seq < s->max_seq)
        s->cycles += SEQ_MOD;
    s->max_seq = seq;
    if (s->has_last && ts != s->last_ts && s->received > 1) {
        int64_t diff = llabs((arrival - s->last_arrival) - ((int64_t)ts - (int64_t)s->last_ts));
        int64_t q4 = (int64_t)s->jitter;
        s->jitter = (double)(q4 + diff - ((q4 + 8) >> 4));
    }
    s->last_arrival = arrival;
    s->last_ts = ts;
    s->has_last = 1;
}

static void reception_update(Reception *s, uint16_t seq, uint32_t ts, double arrival, double wall_offset) {
    if (s->flavour == STATS_AIORTC)
        reception_aiortc(s, seq, ts, arrival + wall_offset);
    else
        reception_rfc3550(s, seq, ts, arrival);
}

/* One forwarded packet, accounted as MediaPath.forward_audio/feed, the input leg's receive statistics and
   the output leg's sender counters would account for it on the Python path. */
static void tally_packet(Engine *e, Lane *lane, const Rtp *r, double now, int sent, int octets, uint32_t mapped,
                         uint32_t last_out) {
    Tally *t = &lane->tally;
    reception_update(&t->rx, r->seq, r->ts, now, e->wall_offset);
    if (t->last_seq >= 0) { /* forward.MediaPath._count_loss */
        int32_t gap = ((int32_t)r->seq - t->last_seq) & 0xFFFF;
        if (gap != 0 && gap <= 0x8000) {
            if (gap < MAX_DROPOUT)
                t->lost += (uint64_t)(gap - 1);
            t->last_seq = r->seq;
        }
    } else {
        t->last_seq = r->seq;
    }
    t->packets++;
    t->last_ts = r->ts;
    t->last_mapped = mapped;
    t->last_pt = r->pt;
    t->last_arrival = now;
    if (lane->codec_in != CODEC_PASS)
        t->transcoded++;
    if (sent) {
        double departure = monotonic_now();
        t->forwarded++;
        t->sent += (uint64_t)sent;
        t->octets += (uint64_t)octets;
        t->last_out_ts = last_out;
        t->last_departure = departure;
        t->latency[t->latency_count++ % LATENCY_SAMPLES] = (float)(departure - now);
    }
}

/* -------------------------------------------------------------------------------------- forwarding */

/* RFC 3550 §5.1: header, CSRCs, extension and padding; 0 when malformed. */
static int parse_rtp(const uint8_t *d, int len, Rtp *r) {
    if (len < 12 || (d[0] >> 6) != 2)
        return 0;
    int pos = 12 + 4 * (d[0] & 0x0F);
    if (d[0] & 0x10) {
        if (len < pos + 4)
            return 0;
        pos += 4 + 4 * ((d[pos + 2] << 8) | d[pos + 3]);
    }
    int end = len;
    if (d[0] & 0x20) {
        if (d[len - 1] == 0)
            return 0;
        end = len - d[len - 1];
    }
    if (pos > end)
        return 0;
    r->marker = d[1] >> 7;
    r->pt = d[1] & 0x7F;
    r->seq = (uint16_t)((d[2] << 8) | d[3]);
    r->ts = ((uint32_t)d[4] << 24) | ((uint32_t)d[5] << 16) | ((uint32_t)d[6] << 8) | d[7];
    r->ssrc = ((uint32_t)d[8] << 24) | ((uint32_t)d[9] << 16) | ((uint32_t)d[10] << 8) | d[11];
    r->payload = pos;
    r->end = end;
    return 1;
}

/* RFC 5761 §4 (as DirectReceiver): RTCP packet types 192-208 in the second octet. */
static int is_rtcp(const uint8_t *d, int len) { return len > 1 && d[1] >= 192 && d[1] <= 208; }

static int write_header(uint8_t *out, const Output *o, int marker, uint8_t pt, uint16_t seq, uint32_t ts) {
    out[0] = o->first;
    out[1] = (uint8_t)((marker ? 0x80 : 0) | (pt & 0x7F));
    out[2] = (uint8_t)(seq >> 8);
    out[3] = (uint8_t)seq;
    out[4] = (uint8_t)(ts >> 24);
    out[5] = (uint8_t)(ts >> 16);
    out[6] = (uint8_t)(ts >> 8);
    out[7] = (uint8_t)ts;
    out[8] = (uint8_t)(o->ssrc >> 24);
    out[9] = (uint8_t)(o->ssrc >> 16);
    out[10] = (uint8_t)(o->ssrc >> 8);
    out[11] = (uint8_t)o->ssrc;
    memcpy(out + 12, o->extension, (size_t)o->extension_len);
    return 12 + o->extension_len;
}

/* Build, protect (to the browser; to the SIP side when it has SRTP) and send one packet on output ``which``;
   the sequence number used or -1. */
static int emit(Engine *e, Core *c, int which, const Address *to, int marker, uint8_t pt, uint32_t ts,
                const uint8_t *payload, int payload_len) {
    uint8_t buffer[BUFFER_SIZE];
    Output *o = &c->out[which];
    if (payload_len < 0 || 12 + o->extension_len + payload_len > MAX_PACKET)
        return -1;
    uint16_t seq = o->seq;
    int len = write_header(buffer, o, marker, pt, seq, ts);
    memcpy(buffer + len, payload, (size_t)payload_len);
    len += payload_len;
    if (which == LANE_SIP_TO_WEB) {
        if (c->tx == NULL || e->fn[OP_PROTECT](c->tx, buffer, &len) != 0)
            return -1;
    } else if (c->sip_tx != NULL && e->fn[OP_PROTECT](c->sip_tx, buffer, &len) != 0) {
        return -1;
    }
    o->seq = (uint16_t)(seq + 1);
    if (sendto(c->fds[which == LANE_SIP_TO_WEB ? 0 : 1], buffer, (size_t)len, MSG_DONTWAIT,
               (const struct sockaddr *)&to->addr, to->len) < 0)
        c->lanes[which].send_errors++;
    return seq;
}

/* Whether ``r`` may take lane ``lane`` (which it disarms when not). */
static int lane_takes(Lane *lane, const Rtp *r, const struct sockaddr_storage *src, double now) {
    if (!lane->armed)
        return 0;
    if (r->ssrc == lane->ssrc && r->pt == lane->pt_in && same_address(&lane->source, src)) {
        double media = (double)(int32_t)(r->ts - lane->last_ts) / (double)lane->in_rate;
        if (fabs(media - (now - lane->last_time)) <= JUMP_SECONDS)
            return 1;
    }
    lane->armed = 0; /* Python decides about this packet and re-arms */
    return 0;
}

static uint32_t map_timestamp(const Lane *lane, uint32_t ts) {
    int64_t scaled = (int64_t)(int32_t)(ts - lane->anchor_in) * lane->out_rate;
    int64_t q = scaled / lane->in_rate;
    if (scaled % lane->in_rate != 0 && scaled < 0)
        q--; /* Python's floor division */
    return (uint32_t)((int64_t)lane->anchor_out + q);
}

static uint32_t frame_stamp(Lane *lane, uint32_t mapped) {
    if (!lane->has_next || llabs((int64_t)(int32_t)(mapped - lane->next_ts)) > lane->tolerance) {
        lane->next_ts = mapped;
        lane->has_next = 1;
    }
    uint32_t ts = lane->next_ts;
    lane->next_ts = (uint32_t)(ts + lane->frame_ticks);
    return ts;
}

/* Decode to 8 kHz PCM, encode each whole 20 ms frame and send it; the number of packets sent. */
static int transcode(Engine *e, Core *c, int which, Lane *lane, const uint8_t *payload, int len,
                     uint32_t mapped, int *octets, uint32_t *last_out) {
    if (lane->codec_in == CODEC_OPUS) {
        int got = len > 0 ? opus.decode(lane->decoder, payload, len, lane->pcm + lane->pcm_len,
                                        PCM_CAPACITY - lane->pcm_len, 0)
                          : -1;
        if (got < 0) {
            lane->codec_errors++;
            return 0;
        }
        lane->pcm_len += got;
    } else {
        const int16_t *table = g711_decode[lane->codec_in == CODEC_PCMA];
        if (len > PCM_CAPACITY - lane->pcm_len) {
            lane->codec_errors++;
            return 0;
        }
        for (int i = 0; i < len; i++)
            lane->pcm[lane->pcm_len++] = table[payload[i]];
    }
    int sent = 0, done = 0;
    while (lane->pcm_len - done >= PCM_FRAME) {
        uint8_t out[MAX_PACKET];
        int out_len;
        const int16_t *frame = lane->pcm + done;
        done += PCM_FRAME;
        if (lane->codec_out == CODEC_OPUS) {
            out_len = opus.encode(lane->encoder, frame, PCM_FRAME, out, 1200);
            if (out_len < 0) {
                lane->codec_errors++;
                continue;
            }
        } else {
            const uint8_t *table = g711_encode[lane->codec_out == CODEC_PCMA];
            for (int i = 0; i < PCM_FRAME; i++)
                out[i] = table[(uint16_t)frame[i]];
            out_len = PCM_FRAME;
        }
        uint32_t ts = frame_stamp(lane, mapped);
        if (emit(e, c, which, &lane->destination, 0, lane->pt_out, ts, out, out_len) >= 0) {
            sent++;
            *octets += out_len;
            *last_out = ts;
        }
    }
    lane->pcm_len -= done;
    memmove(lane->pcm, lane->pcm + done, (size_t)lane->pcm_len * sizeof(int16_t));
    return sent;
}

static void forward(Engine *e, Core *c, int which, const uint8_t *d, const Rtp *r, double now) {
    Lane *lane = &c->lanes[which];
    uint32_t mapped = map_timestamp(lane, r->ts);
    const uint8_t *payload = d + r->payload;
    int len = r->end - r->payload, octets = 0, sent = 0;
    uint32_t last_out = mapped;
    lane->last_ts = r->ts;
    lane->last_time = now;
    if (lane->codec_in == CODEC_PASS) {
        if (emit(e, c, which, &lane->destination, r->marker, lane->pt_out, mapped, payload, len) >= 0) {
            sent = 1;
            octets = len;
        } else {
            lane->codec_errors++; /* too long, or SRTP refused it */
        }
    } else {
        sent = transcode(e, c, which, lane, payload, len, mapped, &octets, &last_out);
    }
    if (sent)
        lane->forwarded++;
    tally_packet(e, lane, r, now, sent, octets, mapped, last_out);
}

/* ---------------------------------------------------------------------------------- video lanes */

/* video.is_keyframe: the start of a VP8 (RFC 7741 §4.2, RFC 6386 §9.1), VP9 (RFC 9628 §4.2) or H.264
   (RFC 6184 §5.6-5.8: IDR or SPS, alone, in a STAP-A or at the start of an FU-A) keyframe. */
static int video_keyframe(int codec, const uint8_t *p, int len) {
    if (len < 1)
        return 0;
    if (codec == VCODEC_VP8) {
        int start = p[0] & 0x10, pid = p[0] & 0x07, pos = 1;
        if (p[0] & 0x80) {
            if (len < 2)
                return 0;
            uint8_t ext = p[1];
            pos = 2;
            if (ext & 0x80) {
                if (len <= pos)
                    return 0;
                pos += (p[pos] & 0x80) ? 2 : 1;
            }
            pos += (ext & 0x40) ? 1 : 0;
            pos += (ext & 0x30) ? 1 : 0;
        }
        return start && pid == 0 && len > pos && !(p[pos] & 0x01);
    }
    if (codec == VCODEC_VP9)
        return !(p[0] & 0x40) && (p[0] & 0x08);
    if (codec == VCODEC_H264) {
        int kind = p[0] & 0x1F;
        if (kind == 5 || kind == 7)
            return 1;
        if (kind == 28)
            return len > 1 && (p[1] & 0x80) && ((p[1] & 0x1F) == 5 || (p[1] & 0x1F) == 7);
        if (kind == 24) {
            for (int pos = 1; pos + 2 < len;) {
                int size = (p[pos] << 8) | p[pos + 1];
                if (size && ((p[pos + 2] & 0x1F) == 5 || (p[pos + 2] & 0x1F) == 7))
                    return 1;
                pos += 2 + size;
            }
        }
    }
    return 0;
}

/* Build, protect and send one video packet on lane ``which``'s output: to the SIP side's video socket
   (SRTP when it has its sessions) or to the browser (the web leg's SRTP). 0 when sent. */
static int emit_video(Engine *e, Core *c, int which, int marker, uint8_t pt, uint16_t seq, uint32_t ts,
                      const uint8_t *payload, int payload_len) {
    uint8_t buffer[BUFFER_SIZE];
    VideoLane *v = &c->video[which];
    if (payload_len < 0 || 12 + v->out.extension_len + payload_len > MAX_PACKET)
        return -1;
    int len = write_header(buffer, &v->out, marker, pt, seq, ts);
    memcpy(buffer + len, payload, (size_t)payload_len);
    len += payload_len;
    void *session = which == 1 ? c->tx : c->vsip_tx;
    if (which == 1 && session == NULL)
        return -1;
    if (session != NULL && e->fn[OP_PROTECT](session, buffer, &len) != 0)
        return -1;
    if (sendto(c->fds[which == 1 ? 0 : 2], buffer, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)&v->destination.addr,
               v->destination.len) < 0)
        v->send_errors++;
    return 0;
}

/* VideoPath.feed natively: 1 when the lane took the packet (forwarded, or dropped as the Python path
   drops it), 0 when Python decides (the lane disarmed: a new source or address, a timestamp jump, a
   payload type it does not know). */
static int video_feed(Engine *e, Core *c, int which, const uint8_t *d, const Rtp *r,
                      const struct sockaddr_storage *src, double now) {
    VideoLane *v = &c->video[which];
    if (!v->armed)
        return 0;
    int16_t out_pt = v->pt_map[r->pt];
    int len = r->end - r->payload;
    int media = out_pt >= 0 && len > 0;
    double jump = (double)(int32_t)(r->ts - v->last_ts) / 90000.0 - (now - v->last_time);
    if (r->ssrc != v->ssrc || !same_address(&v->source, src) || (out_pt < 0 && !v->repair[r->pt]) ||
        (media && fabs(jump) > JUMP_SECONDS)) {
        v->armed = 0;
        return 0;
    }
    v->received++;
    reception_update(&v->rx, r->seq, r->ts, now, e->wall_offset);
    v->last_arrival = now;
    if (out_pt < 0) { /* RFC 4588: repair the other side did not negotiate */
        v->repair_dropped++;
        return 1;
    }
    if (len == 0) { /* RFC 3550 §5.1 padding only (a bandwidth probe): not forwarded, no gap left */
        if (v->highest >= 0 && r->seq == (uint16_t)(v->highest + 1)) {
            v->highest = r->seq;
            v->offset = (uint16_t)(v->offset - 1);
        }
        v->padding++;
        return 1;
    }
    if (v->highest < 0 || (r->seq != v->highest && (uint16_t)(r->seq - v->highest) < 0x8000)) {
        if (v->highest >= 0) {
            int gap = (uint16_t)(r->seq - v->highest - 1);
            v->lost += gap < MAX_DROPOUT ? (uint64_t)gap : 0;
        }
        v->highest = r->seq;
    }
    uint16_t seq = (uint16_t)(r->seq + v->offset);
    if (seq != v->last_out && (uint16_t)(seq - v->last_out) < 0x8000)
        v->last_out = seq;
    const uint8_t *payload = d + r->payload;
    if (video_keyframe(v->codec[r->pt], payload, len))
        v->keyframes++;
    uint32_t mapped = (uint32_t)(v->anchor_out + (uint32_t)(r->ts - v->anchor_in)); /* 90 kHz both sides */
    v->last_ts = r->ts;
    v->last_time = now;
    v->last_mapped = mapped;
    v->forwarded++;
    if (emit_video(e, c, which, r->marker, (uint8_t)out_pt, seq, mapped, payload, len) == 0) {
        v->total_forwarded++;
        v->sent++;
        v->octets += (uint64_t)len;
        v->last_out_ts = mapped;
        v->last_departure = monotonic_now();
    } else {
        v->send_errors++;
    }
    return 1;
}

/* Decrypted RTP from the browser: -1 when it is not the video's, else as handle() (1: queued). */
static int video_web(Engine *e, Core *c, uint8_t *d, int len, const Rtp *r, const struct sockaddr_storage *src,
                     socklen_t srclen, double now) {
    if (c->video == NULL)
        return -1;
    VideoLane *v = &c->video[0];
    if (!v->claimed || r->ssrc != v->ssrc)
        return -1;
    if (video_feed(e, c, 0, d, r, src, now))
        return 0;
    v->punted_at = e->drains;
    return punt(e, c, KIND_WEB_RTP, d, len, src, (socklen_t)srclen, now);
}

/* A datagram of the SIP side's video socket (RTP, RTCP when muxed, STUN/DTLS): as the audio's. */
static int video_sip(Engine *e, Core *c, uint8_t *d, int len, const struct sockaddr_storage *src, socklen_t srclen,
                     double now) {
    Rtp r;
    int rtcp = len > 1 && d[1] >= 192 && d[1] <= 223;
    uint8_t kind = KIND_VIDEO_SIP_RAW;
    if (rtcp || len < 2 || d[0] < 128 || d[0] > 191)
        return punt(e, c, KIND_VIDEO_SIP_RAW, d, len, src, srclen, now);
    if (c->vsip_rx != NULL) {
        if (e->fn[OP_UNPROTECT](c->vsip_rx, d, &len) != 0 || !parse_rtp(d, len, &r)) {
            c->video_sip_dropped++;
            return 0;
        }
        kind = KIND_VIDEO_SIP_RTP;
    } else if (!parse_rtp(d, len, &r)) {
        return punt(e, c, KIND_VIDEO_SIP_RAW, d, len, src, srclen, now);
    }
    if (video_feed(e, c, 1, d, &r, src, now))
        return 0;
    c->video[1].punted_at = e->drains;
    return punt(e, c, kind, d, len, src, srclen, now);
}

/* Which report compound an RTCP packet is (RFC 3550 §6.1): KEPT_SR or KEPT_RR when it is led by an SR (200)
   or an RR (201) and holds nothing but SR, RR and SDES (202) packets of version 2 whose lengths (32-bit
   words minus one) add up to the datagram; -1 for anything else (BYE, feedback: RFC 4585 205/206, RFC 5104,
   REMB; XR; malformed): Python's at once. */
static int report_kind(const uint8_t *d, int len) {
    if (len < 8 || (d[1] != 200 && d[1] != 201))
        return -1;
    int position = 0;
    while (position + 4 <= len) {
        if ((d[position] >> 6) != 2 || d[position + 1] < 200 || d[position + 1] > 202)
            return -1;
        position += 4 * (((d[position + 2] << 8) | d[position + 3]) + 1);
    }
    return position == len ? (d[1] == 200 ? KEPT_SR : KEPT_RR) : -1;
}

/* SRTCP from the browser (rtcp-mux, RFC 5761): unprotected here with the web leg's session (Python could
   not unprotect it again: libsrtp's replay check). A report compound is only statistics (RTT, the
   browser's view of our stream, its SR for our LSR/DLSR) and only its latest one matters: kept per kind,
   with its arrival (RFC 3550 §6.4.1's A), for Python to take at its next sync (Link.reports) - no queue,
   no wake-up. Anything else (feedback wants a keyframe now) is queued decrypted and wakes Python at once.
   One that does not authenticate is dropped, as aiortc drops it. */
static int web_rtcp(Engine *e, Core *c, uint8_t *d, int len, const struct sockaddr_storage *src, socklen_t srclen,
                    double now) {
    int size = len;
    if (e->fn[OP_UNPROTECT_RTCP](c->rx, d, &len) != 0)
        return 0;
    int kind = report_kind(d, len);
    if (kind < 0 || len > KEPT_MAX)
        return punt(e, c, KIND_WEB_RTCP, d, len, src, srclen, now);
    Kept *kept = &c->kept[kind];
    memcpy(kept->data, d, (size_t)len);
    kept->len = len;
    kept->arrival = now;
    c->kept_packets++;
    c->kept_octets += (uint64_t)size;
    return 0;
}

/* One datagram; 1 when it was queued for Python (woken at once, or within NOTIFY_DELAY: wake_python). */
static int handle(Engine *e, Core *c, int which, uint8_t *d, int len, const struct sockaddr_storage *src,
                  socklen_t srclen, double now) {
    Rtp r;
    if (which == 2)
        return video_sip(e, c, d, len, src, srclen, now);
    if (which == 0) {
        if (len > 1 && d[0] > 127 && d[0] < 192 && !is_rtcp(d, len) && c->rx != NULL) {
            if (e->fn[OP_UNPROTECT](c->rx, d, &len) != 0 || !parse_rtp(d, len, &r)) {
                c->dropped++;
                return 0;
            }
            int video = video_web(e, c, d, len, &r, src, srclen, now);
            if (video >= 0)
                return video;
            if (lane_takes(&c->lanes[LANE_WEB_TO_SIP], &r, src, now)) {
                forward(e, c, LANE_WEB_TO_SIP, d, &r, now);
                return 0;
            }
            c->lanes[LANE_WEB_TO_SIP].punted_at = e->drains;
            return punt(e, c, KIND_WEB_RTP, d, len, src, srclen, now);
        }
        if (len >= 8 && d[0] > 127 && d[0] < 192 && is_rtcp(d, len) && c->rx != NULL)
            return web_rtcp(e, c, d, len, src, srclen, now);
        if (len >= 20 && d[0] < 2 && c->ice.set && same_address(&c->ice_remote, src)) {
            uint8_t response[STUN_RESPONSE_MAX]; /* a consent check on the pair: answered here (_stun.c) */
            int n = stun_consent_answer(d, len, &c->ice, src, response);
            if (n > 0 && sendto(c->fds[0], response, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)src,
                                srclen) == n) {
                c->stun_answered++;
                return 0;
            }
        }
        /* other STUN (consent checks time out in 0.5 s), DTLS, SRTCP (its arrival time makes the RTT): now */
        return punt(e, c, KIND_WEB_RAW, d, len, src, srclen, now);
    }
    /* RFC 5761 §4 on the SIP leg as rtp.is_rtcp: 192-223 (RTCP, or RTP Python rejects anyway) */
    int rtcp = len > 1 && d[1] >= 192 && d[1] <= 223;
    uint8_t kind = KIND_SIP_RAW;
    if (!rtcp && c->sip_rx != NULL) {
        if (len < 2 || d[0] < 128 || d[0] > 191) /* not RTP version 2 (e.g. DTLS, STUN): Python's */
            return punt(e, c, KIND_SIP_RAW, d, len, src, srclen, now);
        if (e->fn[OP_UNPROTECT](c->sip_rx, d, &len) != 0 || !parse_rtp(d, len, &r)) {
            c->sip_dropped++; /* as RtpEndpoint drops it: not authentic (or a replay) */
            return 0;
        }
        kind = KIND_SIP_RTP; /* decrypted: Python must not unprotect it again */
    } else if (rtcp || !parse_rtp(d, len, &r)) {
        return punt(e, c, KIND_SIP_RAW, d, len, src, srclen, now); /* RTCP (muxed: its arrival makes the RTT) */
    }
    if (lane_takes(&c->lanes[LANE_SIP_TO_WEB], &r, src, now)) {
        forward(e, c, LANE_SIP_TO_WEB, d, &r, now);
        return 0;
    }
    c->lanes[LANE_SIP_TO_WEB].punted_at = e->drains;
    return punt(e, c, kind, d, len, src, srclen, now);
}

static void notify(Engine *e) {
    if (!e->notified) {
        uint64_t one = 1;
        if (write(e->notifyfd, &one, sizeof one) == sizeof one)
            e->notified = 1;
    }
}

/* Whether a queued item may wait up to NOTIFY_DELAY for Python: RTCP (RFC 5761 §4: 192-223 in the second
   octet of a version 2 packet) and STUN (RFC 7983: first octet 0-3) left raw - reports and consent checks,
   a few per call and second; a wake-up of the event loop then carries many calls'. RTP, DTLS and anything
   else wakes it at once. (Python handles a report up to NOTIFY_DELAY late: the round-trip times it derives
   take the item's arrival instead, gateway/media/arrival.py.) */
static int deferrable(const Item *item) {
    const uint8_t *d = item->data;
    if (item->kind != KIND_WEB_RAW && item->kind != KIND_SIP_RAW)
        return 0;
    if (item->len >= 20 && d[0] < 4)
        return 1;
    return item->len >= 8 && d[0] >= 128 && d[0] <= 191 && d[1] >= 192 && d[1] <= 223;
}

/* After a round (under the lock): wake Python now when an item queued since ``first`` cannot wait, or when
   the oldest deferrable one has waited NOTIFY_DELAY; else remember when. */
static void wake_python(Engine *e, size_t first) {
    if (e->count == 0) { /* drained meanwhile (a sync, a report): nothing waits */
        e->notify_due = 0;
        return;
    }
    double now = monotonic_now();
    for (size_t i = first; i < e->count; i++) {
        if (!deferrable(&e->items[i])) {
            e->notify_due = now;
            break;
        }
    }
    if (e->notify_due == 0)
        e->notify_due = now + NOTIFY_DELAY;
    if (now >= e->notify_due) {
        notify(e);
        e->notify_due = 0;
    }
}

/* epoll_wait's timeout: until queued RTCP/STUN is due (wake_python), else a second. */
static int wait_ms(const Engine *e) {
    if (e->notify_due == 0)
        return 1000;
    double left = e->notify_due - monotonic_now();
    return left <= 0 ? 0 : (int)(left * 1000.0) + 1;
}

static void free_codecs(Core *c) {
    for (int i = 0; i < 2; i++) {
        Lane *lane = &c->lanes[i];
        if (lane->decoder != NULL)
            opus.decoder_destroy(lane->decoder);
        if (lane->encoder != NULL)
            opus.encoder_destroy(lane->encoder);
        lane->decoder = lane->encoder = NULL;
        free(lane->pcm);
        lane->pcm = NULL;
    }
}

static void bury(Engine *e) {
    while (e->graveyard != NULL) {
        Core *c = e->graveyard;
        e->graveyard = c->next_dead;
        free_codecs(c);
        for (int i = 0; i < 2; i++)
            if (c->fds[i] >= 0)
                close(c->fds[i]);
        if (c->has_video)
            close(c->fds[2]);
        free(c->video);
        free(c);
    }
}

/* Sleep until ``until`` (monotonic seconds) after a round, so that what arrives meanwhile is handled in the
   next round, together. Each packet otherwise wakes the thread by itself once the calls' packets are spread
   over the 20 ms frame (0.8-0.9 wake-ups per packet at 50-100 calls per thread, each a context switch that
   preempts another process when the CPUs are busy); with a 1 ms wait a busy thread wakes at most 1 000
   times a second whatever the number of calls, and a packet waits at most that long. Only worth it when
   the wait gathers several packets (run: GATHER_MIN at the thread's rate): a timer's wake-up costs as
   much as a packet's, so at low rates the wait adds wake-ups. An idle thread sleeps in epoll_wait and
   wakes at once for a lone packet. */
static void gather(double until) {
    struct timespec ts;
    ts.tv_sec = (time_t)until;
    ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

typedef struct {
    struct mmsghdr headers[BATCH];
    struct iovec vectors[BATCH];
    struct sockaddr_storage sources[BATCH];
    uint8_t buffers[BATCH][BUFFER_SIZE];
} Batch;

static void *run(void *arg) {
    Engine *e = arg;
    struct epoll_event events[64];
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's (CPython's handlers) */
    /* Media before the event loop's bookkeeping when the CPU is short (needs CAP_SYS_NICE, else a no-op) */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), -10) != 0)
        errno = 0;
    Batch *batch = malloc(sizeof *batch);
    uint64_t window_packets = 0; /* the packet rate (datagrams read per second, over RATE_WINDOW): gather */
    double window_start = monotonic_now(), rate = 0;
    if (batch != NULL) { /* recvmmsg changes only each header's msg_len, msg_namelen and msg_flags */
        memset(batch->headers, 0, sizeof batch->headers);
        for (int k = 0; k < BATCH; k++) {
            batch->vectors[k].iov_base = batch->buffers[k];
            batch->vectors[k].iov_len = MAX_PACKET + 1;
            batch->headers[k].msg_hdr.msg_iov = &batch->vectors[k];
            batch->headers[k].msg_hdr.msg_iovlen = 1;
            batch->headers[k].msg_hdr.msg_name = &batch->sources[k];
            batch->headers[k].msg_hdr.msg_namelen = sizeof batch->sources[k];
        }
    }
    for (;;) {
        int n = batch == NULL ? -1 : epoll_wait(e->epfd, events, 64, wait_ms(e));
        if (n < 0 && (batch == NULL || errno != EINTR)) {
            pthread_mutex_lock(&e->lock); /* Python sees ``failed`` and gives the sockets back to asyncio */
            e->failed = 1;
            e->notified = 0;
            notify(e);
            pthread_mutex_unlock(&e->lock);
            break;
        }
        /* Two clock reads a round, not four: at a few calls a round is one datagram, and each read counts */
        double asked = monotonic_now(), now = asked;
        if (pthread_mutex_trylock(&e->lock) != 0) { /* Python holds it: measure the wait */
            pthread_mutex_lock(&e->lock);
            now = monotonic_now();
        }
        if (!e->running) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        size_t first = e->count;
        if (now - asked > 0.001)
            e->lock_waits++;
        if (now - asked > e->lock_wait_max)
            e->lock_wait_max = now - asked;
        double round_start = now;
        if (now - e->wall_at >= 1.0 || now < e->wall_at) { /* a step of the wall clock shows within 1 s */
            e->wall_offset = realtime_now() - now;
            e->wall_at = now;
        }
        for (int i = 0; i < n; i++) {
            Tag *tag = events[i].data.ptr;
            Core *c = tag->core;
            if (c == NULL || c->dead)
                continue;
            /* one system call for all that waits (up to BATCH): no extra read that ends in EAGAIN */
            int got = recvmmsg(c->fds[tag->which], batch->headers, BATCH, MSG_DONTWAIT, NULL);
            if (got > 0)
                window_packets += (uint64_t)got;
            for (int k = 0; k < got; k++) {
                struct msghdr *h = &batch->headers[k].msg_hdr;
                unsigned int len = batch->headers[k].msg_len;
                socklen_t namelen = h->msg_namelen;
                h->msg_namelen = sizeof batch->sources[k]; /* for the next recvmmsg */
                if (len > MAX_PACKET || (h->msg_flags & MSG_TRUNC)) {
                    c->dropped++;
                    continue;
                }
                handle(e, c, tag->which, batch->buffers[k], (int)len, &batch->sources[k], namelen, now);
                if (k % 8 == 7)
                    now = monotonic_now();
            }
        }
        bury(e);
        if (e->count > first || e->notify_due != 0)
            wake_python(e, first);
        double round = monotonic_now() - round_start;
        if (round > 0.002)
            e->long_rounds++;
        if (round > e->round_max)
            e->round_max = round;
        double ended = round_start + round;
        if (ended - window_start >= RATE_WINDOW) {
            rate = (double)window_packets / (ended - window_start);
            window_packets = 0;
            window_start = ended;
        }
        double coalesce = e->coalesce;
        int gathering = n > 0 && coalesce > round && rate * coalesce >= GATHER_MIN;
        if (gathering)
            e->coalesced++;
        pthread_mutex_unlock(&e->lock);
        if (gathering)
            gather(round_start + coalesce);
    }
    free(batch);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- Python */

static int parse_address(PyObject *tuple, Address *out) {
    const char *host;
    int port;
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) < 2) {
        PyErr_SetString(PyExc_TypeError, "an address is a (host, port) tuple");
        return 0;
    }
    PyObject *pair = PyTuple_GetSlice(tuple, 0, 2);
    if (pair == NULL)
        return 0;
    int ok = PyArg_ParseTuple(pair, "si", &host, &port);
    if (!ok) {
        Py_DECREF(pair);
        return 0;
    }
    memset(out, 0, sizeof *out);
    if (port < 0 || port > 65535) {
        Py_DECREF(pair);
        PyErr_Format(PyExc_ValueError, "port out of range: %d", port);
        return 0;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        if (PyTuple_GET_SIZE(tuple) >= 4) {
            unsigned long scope = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(tuple, 3));
            if (PyErr_Occurred()) {
                Py_DECREF(pair);
                return 0;
            }
            v6->sin6_scope_id = (uint32_t)scope;
        }
        out->len = sizeof *v6;
    } else {
        PyErr_Format(PyExc_ValueError, "not a numeric IP address: %s", host);
        Py_DECREF(pair);
        return 0;
    }
    Py_DECREF(pair);
    return 1;
}

static PyObject *address_tuple(const Address *a) {
    char host[INET6_ADDRSTRLEN];
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->addr;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        return Py_BuildValue("(si)", host, ntohs(v4->sin_port));
    }
    if (a->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->addr;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        return Py_BuildValue("(siIk)", host, ntohs(v6->sin6_port), ntohl(v6->sin6_flowinfo),
                             (unsigned long)v6->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

static int engine_init(Engine *self, PyObject *args, PyObject *kwds) {
    static char *names[] = {"protect", "unprotect", "protect_rtcp", "unprotect_rtcp", NULL};
    unsigned long long fn[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKKK", names, &fn[0], &fn[1], &fn[2], &fn[3]))
        return -1;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "Engine already started");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (fn[i] == 0) {
            PyErr_SetString(PyExc_ValueError, "null libsrtp function");
            return -1;
        }
        self->fn[i] = (srtp_fn)(uintptr_t)fn[i];
    }
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    self->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    self->notifyfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->epfd < 0 || self->stopfd < 0 || self->notifyfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->stop_tag.core = NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &self->stop_tag};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, self->stopfd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->running = 1;
    int rc = pthread_create(&self->thread, NULL, run, self);
    if (rc != 0) {
        self->running = 0;
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Engine *self = (Engine *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->epfd = self->stopfd = self->notifyfd = -1;
    return (PyObject *)self;
}

static void engine_stop(Engine *self) {
    if (!self->running)
        return;
    pthread_mutex_lock(&self->lock);
    self->running = 0;
    pthread_mutex_unlock(&self->lock);
    uint64_t one = 1;
    if (write(self->stopfd, &one, sizeof one) < 0) { /* the 1 s epoll timeout ends the thread anyway */
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_join(self->thread, NULL);
    Py_END_ALLOW_THREADS
    bury(self);
}

static PyObject *engine_close(Engine *self, PyObject *unused) {
    engine_stop(self);
    Py_RETURN_NONE;
}

static void engine_dealloc(Engine *self) {
    engine_stop(self);
    free_items(self->items, self->count);
    free(self->items);
    for (int *fd = &self->epfd; fd <= &self->notifyfd; fd++)
        if (*fd >= 0)
            close(*fd);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *item_tuple(const Item *item) {
    PyObject *source = address_tuple(&item->source);
    if (source == NULL)
        return NULL;
    return Py_BuildValue("(IBy#Nd)", item->link_id, item->kind, (const char *)item->data, (Py_ssize_t)item->len,
                         source, item->arrival);
}

static PyObject *engine_drain(Engine *self, PyObject *unused) {
    uint64_t value;
    if (self->notifyfd >= 0 && read(self->notifyfd, &value, sizeof value) < 0 && errno != EAGAIN) {
        /* nothing to do: the flag below is what matters */
    }
    pthread_mutex_lock(&self->lock);
    Item *items = self->items;
    size_t count = self->count;
    self->items = NULL;
    self->count = self->capacity = 0;
    self->notified = 0;
    self->drains++;
    pthread_mutex_unlock(&self->lock);
    size_t live = 0;
    for (size_t i = 0; i < count; i++)
        live += items[i].kind != KIND_TAKEN;
    PyObject *list = PyList_New((Py_ssize_t)live);
    for (size_t i = 0, j = 0; list != NULL && i < count; i++) {
        if (items[i].kind == KIND_TAKEN)
            continue;
        PyObject *tuple = item_tuple(&items[i]);
        if (tuple == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)j++, tuple);
    }
    free_items(items, count);
    free(items);
    return list;
}

static PyObject *engine_link(Engine *self, PyObject *args) {
    unsigned int id;
    int web_fd, sip_fd;
    unsigned long long rx, tx, sip_rx = 0, sip_tx = 0;
    PyObject *sessions;
    if (!PyArg_ParseTuple(args, "IiiKKO|KK", &id, &web_fd, &sip_fd, &rx, &tx, &sessions, &sip_rx, &sip_tx))
        return NULL;
    if ((sip_rx == 0) != (sip_tx == 0)) {
        PyErr_SetString(PyExc_ValueError, "the SIP leg's SRTP sessions: both (rx and tx) or neither");
        return NULL;
    }
    pthread_mutex_lock(&self->lock);
    int usable = self->running && !self->failed;
    pthread_mutex_unlock(&self->lock);
    if (!usable) {
        PyErr_SetString(PyExc_RuntimeError, "the engine is closed or its thread failed");
        return NULL;
    }
    Core *c = calloc(1, sizeof *c);
    if (c == NULL)
        return PyErr_NoMemory();
    c->id = id;
    c->rx = (void *)(uintptr_t)rx;
    c->tx = (void *)(uintptr_t)tx;
    c->sip_rx = (void *)(uintptr_t)sip_rx;
    c->sip_tx = (void *)(uintptr_t)sip_tx;
    c->fds[0] = fcntl(web_fd, F_DUPFD_CLOEXEC, 0);
    c->fds[1] = -1;
    if (c->fds[0] >= 0)
        c->fds[1] = fcntl(sip_fd, F_DUPFD_CLOEXEC, 0);
    if (c->fds[0] < 0 || c->fds[1] < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        if (c->fds[0] >= 0)
            close(c->fds[0]);
        free(c);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        c->out[i].first = 0x80;
        c->tags[i].core = c;
        c->tags[i].which = i;
        c->lanes[i].punted_at = UINT64_MAX;
    }
    Link *link = PyObject_New(Link, &LinkType);
    if (link == NULL) {
        close(c->fds[0]);
        close(c->fds[1]);
        free(c);
        return NULL;
    }
    Py_INCREF(self);
    Py_INCREF(sessions);
    link->engine = self;
    link->core = c;
    link->sessions = sessions;
    pthread_mutex_lock(&self->lock);
    int failed = 0;
    for (int i = 0; i < 2 && !failed; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->tags[i]};
        failed = epoll_ctl(self->epfd, EPOLL_CTL_ADD, c->fds[i], &ev) < 0;
    }
    if (failed) {
        int saved = errno;
        epoll_ctl(self->epfd, EPOLL_CTL_DEL, c->fds[0], NULL);
        c->dead = 1;
        c->next_dead = self->graveyard;
        self->graveyard = c;
        link->core = NULL;
        pthread_mutex_unlock(&self->lock);
        Py_DECREF(link);
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_mutex_unlock(&self->lock);
    return (PyObject *)link;
}

static PyObject *engine_get_notify_fd(Engine *self, void *closure) { return PyLong_FromLong(self->notifyfd); }

static PyObject *engine_get_queue_drops(Engine *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    unsigned long long drops = self->queue_drops;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLongLong(drops);
}

static PyMethodDef engine_methods[] = {
    {"drain", (PyCFunction)engine_drain, METH_NOARGS,
     "Take what the thread queued: datagrams (link_id, kind, data, source, arrival), in arrival order; "
     "kinds: 2 web raw (STUN, DTLS, SRTCP), 3 web RTP (decrypted), 4 SIP raw (RTCP, SRTCP, plain RTP), 5 SIP RTP (decrypted by the SIP leg's sessions)."},
    {"link", (PyCFunction)engine_link, METH_VARARGS,
     "link(id, web_fd, sip_fd, rx_session, tx_session, keepalive[, sip_rx_session, sip_tx_session]) -> Link: "
     "read both sockets from now on. Sessions are srtp_t addresses; the SIP leg's (both or neither, 0: plain "
     "RTP) make it SRTP. keepalive (the pylibsrtp objects) is held until close()."},
    {"close", (PyCFunction)engine_close, METH_NOARGS, "Stop the thread (links stop forwarding)."},
    {NULL},
};

static PyObject *engine_get_failed(Engine *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    int failed = self->failed;
    pthread_mutex_unlock(&self->lock);
    return PyBool_FromLong(failed);
}

static PyObject *engine_get_timing(Engine *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    PyObject *timing = Py_BuildValue("(KdKd)", (unsigned long long)self->lock_waits, self->lock_wait_max,
                                     (unsigned long long)self->long_rounds, self->round_max);
    pthread_mutex_unlock(&self->lock);
    return timing;
}

static PyObject *engine_get_coalesce(Engine *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    double coalesce = self->coalesce;
    pthread_mutex_unlock(&self->lock);
    return PyFloat_FromDouble(coalesce);
}

static int engine_set_coalesce(Engine *self, PyObject *value, void *closure) {
    double coalesce = value == NULL ? -1.0 : PyFloat_AsDouble(value);
    if (coalesce == -1.0 && PyErr_Occurred())
        return -1;
    if (!(coalesce >= 0.0 && coalesce <= MAX_COALESCE)) { /* also NaN */
        PyErr_SetString(PyExc_ValueError, "coalesce must be 0 to 0.005 seconds");
        return -1;
    }
    pthread_mutex_lock(&self->lock);
    self->coalesce = coalesce;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

static PyObject *engine_get_coalesced(Engine *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    unsigned long long coalesced = (unsigned long long)self->coalesced;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLongLong(coalesced);
}

static PyGetSetDef engine_getset[] = {
    {"coalesce", (getter)engine_get_coalesce, (setter)engine_set_coalesce,
     "seconds the thread waits after a round that found packets, for the next ones (0 to 0.005; 0: none)", NULL},
    {"coalesced", (getter)engine_get_coalesced, NULL, "rounds after which the thread waited (coalesce)", NULL},
    {"failed", (getter)engine_get_failed, NULL, "whether the thread stopped on an error", NULL},
    {"notify_fd", (getter)engine_get_notify_fd, NULL, "readable when drain() has datagrams or many records", NULL},
    {"queue_drops", (getter)engine_get_queue_drops, NULL, "items lost to a full queue", NULL},
    {"timing", (getter)engine_get_timing, NULL,
     "(lock waits > 1 ms, the longest wait s, rounds holding the lock > 2 ms, the longest round s) of the thread",
     NULL},
    {NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gateway.media._fastlane.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Engine(protect, unprotect, protect_rtcp, unprotect_rtcp): the forwarding thread; arguments are "
              "the addresses of libsrtp's srtp_protect, srtp_unprotect, srtp_protect_rtcp, srtp_unprotect_rtcp.",
    .tp_new = engine_new,
    .tp_init = (initproc)engine_init,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_methods = engine_methods,
    .tp_getset = engine_getset,
};


/* ----------------------------------------------------------------------------- receive statistics */

/* (received, base_seq, max_seq, bad_seq, cycles, transit or None, last arrival or None, last timestamp,
   jitter): rtp_stats.ReceptionState; -1 for a sequence number not seen yet. */
static PyObject *reception_tuple(const Reception *r) {
    PyObject *transit = r->flavour == STATS_RFC3550 && r->has_last ? PyFloat_FromDouble(r->transit) : Py_NewRef(Py_None);
    PyObject *arrival = r->flavour == STATS_AIORTC && r->has_last ? PyLong_FromLongLong(r->last_arrival)
                                                                 : Py_NewRef(Py_None);
    if (transit == NULL || arrival == NULL) {
        Py_XDECREF(transit);
        Py_XDECREF(arrival);
        return NULL;
    }
    return Py_BuildValue("(LiiiLNNkd)", (long long)r->received, r->base_seq, r->max_seq, r->bad_seq,
                         (long long)r->cycles, transit, arrival, (unsigned long)r->last_ts, r->jitter);
}

/* The inverse of reception_tuple, for a source whose statistics use ``flavour`` at ``clock_rate``. */
static int parse_reception(PyObject *state, int flavour, long long clock_rate, Reception *out) {
    long long received, cycles;
    int base_seq, max_seq, bad_seq;
    PyObject *transit, *arrival;
    unsigned long last_ts;
    double jitter;
    if (!PyTuple_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "receive statistics are a ReceptionState tuple");
        return 0;
    }
    if (!PyArg_ParseTuple(state, "LiiiLOOkd", &received, &base_seq, &max_seq, &bad_seq, &cycles, &transit,
                          &arrival, &last_ts, &jitter))
        return 0;
    if (flavour < STATS_RFC3550 || flavour > STATS_AIORTC || clock_rate <= 0 || received < 0 || cycles < 0 ||
        base_seq < -1 || base_seq > 0xFFFF || max_seq < -1 || max_seq > 0xFFFF || bad_seq < -1 ||
        bad_seq > SEQ_MOD + 1 || !isfinite(jitter) || jitter < 0) {
        PyErr_SetString(PyExc_ValueError, "bad receive statistics: flavour 0/1, clock rate > 0, counts >= 0, "
                                          "sequence numbers -1 or 16 bits, a finite jitter >= 0");
        return 0;
    }
    memset(out, 0, sizeof *out);
    out->flavour = flavour;
    out->clock_rate = clock_rate;
    out->received = received;
    out->cycles = cycles;
    out->base_seq = base_seq;
    out->max_seq = max_seq;
    out->bad_seq = bad_seq;
    out->last_ts = (uint32_t)last_ts;
    out->jitter = jitter;
    PyObject *last = flavour == STATS_RFC3550 ? transit : arrival;
    if (last != Py_None) {
        if (flavour == STATS_RFC3550)
            out->transit = PyFloat_AsDouble(last);
        else
            out->last_arrival = PyLong_AsLongLong(last);
        if (PyErr_Occurred())
            return 0;
        out->has_last = 1;
    }
    return 1;
}

static PyObject *replay(PyObject *module, PyObject *args) {
    int flavour;
    long long clock_rate;
    PyObject *state, *packets;
    if (!PyArg_ParseTuple(args, "iLOO", &flavour, &clock_rate, &state, &packets))
        return NULL;
    Reception r;
    if (!parse_reception(state, flavour, clock_rate, &r))
        return NULL;
    PyObject *iterator = PyObject_GetIter(packets);
    if (iterator == NULL)
        return NULL;
    PyObject *packet;
    while ((packet = PyIter_Next(iterator)) != NULL) {
        int seq;
        unsigned long ts;
        double arrival;
        int ok = PyArg_ParseTuple(packet, "ikd", &seq, &ts, &arrival);
        Py_DECREF(packet);
        if (!ok || seq < 0 || seq > 0xFFFF) {
            if (ok)
                PyErr_SetString(PyExc_ValueError, "a sequence number is 16 bits");
            Py_DECREF(iterator);
            return NULL;
        }
        reception_update(&r, (uint16_t)seq, (uint32_t)ts, arrival, 0.0);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred())
        return NULL;
    PyObject *tuple = reception_tuple(&r);
    if (tuple == NULL)
        return NULL;
    return Py_BuildValue("(NO)", tuple, r.restarted ? Py_True : Py_False);
}

/* ------------------------------------------------------------------------------------------ Link */

#define LINK_CORE(self, ret)                                                                             \
    Core *c = (self)->core;                                                                              \
    if (c == NULL) {                                                                                     \
        PyErr_SetString(PyExc_ValueError, "the link is closed");                                         \
        return ret;                                                                                      \
    }

static PyObject *link_close(Link *self, PyObject *unused) {
    Core *c = self->core;
    if (c == NULL)
        Py_RETURN_NONE;
    Engine *e = self->engine;
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < 2; i++)
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fds[i], NULL);
    if (c->has_video)
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fds[2], NULL);
    c->dead = 1;
    if (c->video != NULL)
        c->video[0].armed = c->video[1].armed = 0;
    c->lanes[0].armed = c->lanes[1].armed = 0;
    if (e->running) {
        c->next_dead = e->graveyard;
        e->graveyard = c;
    } else {
        free_codecs(c);
        for (int i = 0; i < 2; i++)
            close(c->fds[i]);
        if (c->has_video)
            close(c->fds[2]);
        free(c->video);
        free(c);
    }
    self->core = NULL;
    pthread_mutex_unlock(&e->lock);
    Py_CLEAR(self->sessions);
    Py_RETURN_NONE;
}

static void link_dealloc(Link *self) {
    if (self->engine != NULL)
        link_close(self, NULL);
    Py_CLEAR(self->sessions);
    Py_XDECREF(self->engine);
    PyObject_Free(self);
}

static PyObject *link_set_output(Link *self, PyObject *args) {
    int which, first;
    unsigned long ssrc;
    int seq;
    const char *extension = "";
    Py_ssize_t extension_len = 0;
    if (!PyArg_ParseTuple(args, "iiki|y#", &which, &first, &ssrc, &seq, &extension, &extension_len))
        return NULL;
    if (which < 0 || which > 1 || extension_len > MAX_EXTENSION || extension_len % 4 || seq < 0 || seq > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "bad output: which 0/1, extension of up to 252 bytes in words, seq 16 bits");
        return NULL;
    }
    LINK_CORE(self, NULL)
    pthread_mutex_lock(&self->engine->lock);
    Output *o = &c->out[which];
    o->first = (uint8_t)first;
    o->ssrc = (uint32_t)ssrc;
    o->seq = (uint16_t)seq;
    memcpy(o->extension, extension, (size_t)extension_len);
    o->extension_len = (int)extension_len;
    pthread_mutex_unlock(&self->engine->lock);
    Py_RETURN_NONE;
}

/* The codec states a lane needs (created outside the lock: the thread does not use them until armed). */
static int prepare_codecs(Lane *lane, int codec_in, int codec_out) {
    int error = 0;
    if (lane->pcm == NULL && (lane->pcm = malloc(PCM_CAPACITY * sizeof(int16_t))) == NULL)
        return 0;
    if (codec_in == CODEC_OPUS && (lane->decoder == NULL || lane->decoder_codec != codec_in)) {
        if (lane->decoder == NULL)
            lane->decoder = opus.decoder_create(8000, 1, &error);
        if (lane->decoder == NULL || error != 0)
            return 0;
        lane->decoder_codec = codec_in;
    }
    if (codec_out == CODEC_OPUS && lane->encoder == NULL) {
        lane->encoder = opus.encoder_create(8000, 1, OPUS_APPLICATION_VOIP, &error);
        if (lane->encoder == NULL || error != 0)
            return 0;
        opus.encoder_ctl(lane->encoder, OPUS_SET_BITRATE_REQUEST, (int32_t)OPUS_BITRATE);
        opus.encoder_ctl(lane->encoder, OPUS_SET_COMPLEXITY_REQUEST, (int32_t)opus_complexity);
        opus.encoder_ctl(lane->encoder, OPUS_SET_MAX_BANDWIDTH_REQUEST, (int32_t)OPUS_BANDWIDTH_NARROWBAND);
        opus.encoder_ctl(lane->encoder, OPUS_SET_SIGNAL_REQUEST, (int32_t)OPUS_SIGNAL_VOICE);
        opus.encoder_ctl(lane->encoder, OPUS_SET_DTX_REQUEST, (int32_t)0);
        opus.encoder_ctl(lane->encoder, OPUS_SET_INBAND_FEC_REQUEST, (int32_t)opus_inband_fec);
        lane->encoder_codec = codec_out;
    }
    return 1;
}

/* The RTP of lane ``which``'s direction in a queued item, as handle() tells it (0: not the lane's - another
   direction or link, RTCP, STUN, DTLS, the video's RTP, already taken). */
static int queued_rtp(const Core *c, int which, const Item *item, Rtp *r) {
    if (item->link_id != c->id)
        return 0;
    if (which == LANE_WEB_TO_SIP) {
        if (item->kind != KIND_WEB_RTP || !parse_rtp(item->data, item->len, r))
            return 0;
        return !(c->video != NULL && c->video[0].claimed && r->ssrc == c->video[0].ssrc); /* else the video's */
    }
    if (item->kind == KIND_SIP_RTP)
        return parse_rtp(item->data, item->len, r);
    /* plain RTP from the SIP side is queued raw: RFC 5761 §4 RTCP (192-223) and non-RTP stay raw */
    if (item->kind != KIND_SIP_RAW || c->sip_rx != NULL || (item->len > 1 && item->data[1] >= 192 &&
                                                            item->data[1] <= 223))
        return 0;
    return parse_rtp(item->data, item->len, r);
}

/* A queued item arm() forwarded: no longer Python's. */
static void taken(Item *item) {
    free(item->data);
    item->data = NULL;
    item->len = 0;
    item->kind = KIND_TAKEN;
}

/* arm() while RTP of the lane's direction waits in the queue (issue 14: a backlog, e.g. 500 calls' media
   starting in the same 20 ms, a GC pause, a burst of call setups, queues the next packet of every unarmed
   call before Python re-arms it): the engine takes those packets back and forwards them through the lane
   now armed, in queue order, as the thread would have had the lane been armed when they came - rewritten,
   accounted once in the lane's Tally (arrival and latency: the packet's own), protected, sent - and takes
   them out of the queue. Python never handled them: they are newer than all it did (it re-arms after
   handling what it drained), so the state it armed with is the one to continue from. The first one the
   lane does not take (another SSRC or payload type - DTMF -, another source, a jump) disarms it, as in the
   thread: that one and every later one of the direction stay for Python, in order, and Python takes the
   lane's accounts (a snapshot of the disarmed lane) before it handles them. RTCP, STUN, DTLS and the
   video's packets are not the lane's and stay. Under the engine lock; whether the lane is still armed. */
static int take_back(Engine *e, Core *c, int which) {
    Lane *lane = &c->lanes[which];
    for (size_t i = 0; i < e->count && lane->armed; i++) {
        Item *item = &e->items[i];
        Rtp r;
        if (!queued_rtp(c, which, item, &r))
            continue;
        if (!lane_takes(lane, &r, &item->source.addr, item->arrival))
            break;
        forward(e, c, which, item->data, &r, item->arrival);
        taken(item);
    }
    if (lane->armed)
        lane->punted_at = UINT64_MAX; /* nothing of this direction waits any more */
    return lane->armed;
}

static PyObject *link_arm(Link *self, PyObject *args) {
    int which, pt_in, pt_out, codec_in, codec_out;
    PyObject *source, *destination;
    unsigned long ssrc, anchor_in, anchor_out, last_ts;
    long long in_rate, out_rate, tolerance, frame_ticks, next_ts;
    double last_time;
    int flavour = STATS_RFC3550, last_seq = -1;
    long long stats_rate = 8000;
    PyObject *stats = Py_None;
    if (!PyArg_ParseTuple(args, "iOOkiikkLLkdiiLLL|iLOi", &which, &source, &destination, &ssrc, &pt_in, &pt_out,
                          &anchor_in, &anchor_out, &in_rate, &out_rate, &last_ts, &last_time, &codec_in,
                          &codec_out, &next_ts, &tolerance, &frame_ticks, &flavour, &stats_rate, &stats, &last_seq))
        return NULL;
    Reception imported;
    memset(&imported, 0, sizeof imported);
    if (stats == Py_None) {
        imported.flavour = flavour;
        imported.clock_rate = stats_rate;
        imported.base_seq = imported.max_seq = -1;
        imported.bad_seq = SEQ_MOD + 1;
        if (flavour < STATS_RFC3550 || flavour > STATS_AIORTC || stats_rate <= 0) {
            PyErr_SetString(PyExc_ValueError, "bad receive statistics: flavour 0/1, clock rate > 0");
            return NULL;
        }
    } else if (!parse_reception(stats, flavour, stats_rate, &imported)) {
        return NULL;
    }
    if (last_seq < -1 || last_seq > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "last_seq is -1 or 16 bits");
        return NULL;
    }
    int transcoding = codec_in != CODEC_PASS || codec_out != CODEC_PASS;
    if (which < 0 || which > 1 || pt_in < 0 || pt_in > 127 || pt_out < 0 || pt_out > 127 || in_rate <= 0 ||
        out_rate <= 0 || codec_in < 0 || codec_in > 3 || codec_out < 0 || codec_out > 3 ||
        (transcoding && (codec_in == CODEC_PASS || codec_out == CODEC_PASS || codec_in == codec_out ||
                         (codec_in != CODEC_OPUS && codec_out != CODEC_OPUS) || frame_ticks <= 0 || tolerance < 0)) ||
        (!transcoding && in_rate != out_rate)) {
        PyErr_SetString(PyExc_ValueError, "bad lane: which 0/1, payload types 0-127, rates > 0, and either "
                                          "pass-through (equal rates) or Opus <-> G.711 with frame ticks");
        return NULL;
    }
    if (transcoding && (!g711_ready || !opus_ready)) {
        PyErr_SetString(PyExc_RuntimeError, "transcoding lanes need set_codecs() first");
        return NULL;
    }
    Address src, dst;
    if (!parse_address(source, &src) || !parse_address(destination, &dst))
        return NULL;
    LINK_CORE(self, NULL)
    Lane *lane = &c->lanes[which];
    pthread_mutex_lock(&self->engine->lock);
    /* re-armed for the same source and codecs: the thread's timeline (last packet, next frame) is newer
       than what Python last read, and stays */
    int continuing = lane->armed && lane->ssrc == (uint32_t)ssrc && lane->pt_in == pt_in &&
                     lane->codec_in == codec_in && lane->codec_out == codec_out && lane->in_rate == in_rate &&
                     lane->out_rate == out_rate && lane->anchor_in == (uint32_t)anchor_in &&
                     lane->anchor_out == (uint32_t)anchor_out;
    lane->armed = 0;
    pthread_mutex_unlock(&self->engine->lock);
    if (transcoding && !prepare_codecs(lane, codec_in, codec_out)) {
        PyErr_SetString(PyExc_RuntimeError, "libopus could not create a codec state");
        return NULL;
    }
    pthread_mutex_lock(&self->engine->lock);
    lane->source = src;
    lane->destination = dst;
    lane->ssrc = (uint32_t)ssrc;
    lane->pt_in = (uint8_t)pt_in;
    lane->pt_out = (uint8_t)pt_out;
    lane->anchor_in = (uint32_t)anchor_in;
    lane->anchor_out = (uint32_t)anchor_out;
    lane->in_rate = in_rate;
    lane->out_rate = out_rate;
    if (!continuing) {
        lane->last_ts = (uint32_t)last_ts;
        lane->last_time = last_time;
        lane->has_next = next_ts >= 0;
        lane->next_ts = (uint32_t)(next_ts >= 0 ? next_ts : 0);
    }
    if (lane->codec_in != codec_in || lane->codec_out != codec_out)
        lane->pcm_len = 0;
    lane->codec_in = codec_in;
    lane->codec_out = codec_out;
    lane->tolerance = tolerance;
    lane->frame_ticks = frame_ticks;
    Tally *t = &lane->tally;
    if (!t->owned || t->rx.flavour != flavour || t->rx.clock_rate != stats_rate || lane->ssrc != t->rx_ssrc) {
        /* Python's state is the live one (see the note on top): the engine continues from it */
        t->rx = imported;
        t->last_seq = last_seq;
        t->rx_ssrc = lane->ssrc;
        t->owned = 1;
    }
    lane->armed = 1;
    /* packets of this direction queued since the last drain: forwarded now, ahead of any newer one */
    int armed = lane->punted_at != self->engine->drains || take_back(self->engine, c, which);
    pthread_mutex_unlock(&self->engine->lock);
    return PyBool_FromLong(armed);
}

/* The lane or output number argument: 0 (web -> SIP) or 1 (SIP -> web). */
static int parse_which(PyObject *args, int *which) {
    if (!PyArg_ParseTuple(args, "i", which))
        return 0;
    if (*which < 0 || *which > 1) {
        PyErr_SetString(PyExc_ValueError, "which is 0 or 1");
        return 0;
    }
    return 1;
}

static PyObject *link_disarm(Link *self, PyObject *args) {
    int which;
    if (!parse_which(args, &which))
        return NULL;
    Core *c = self->core;
    if (c != NULL) {
        pthread_mutex_lock(&self->engine->lock);
        c->lanes[which].armed = 0;
        pthread_mutex_unlock(&self->engine->lock);
    }
    Py_RETURN_NONE;
}

static PyObject *link_armed(Link *self, PyObject *args) {
    int which;
    if (!parse_which(args, &which))
        return NULL;
    Core *c = self->core;
    int armed = 0;
    if (c != NULL) {
        pthread_mutex_lock(&self->engine->lock);
        armed = c->lanes[which].armed;
        pthread_mutex_unlock(&self->engine->lock);
    }
    return PyBool_FromLong(armed);
}

static PyObject *link_send(Link *self, PyObject *args) {
    int which, marker, pt;
    PyObject *destination;
    unsigned long ts;
    Py_buffer payload;
    if (!PyArg_ParseTuple(args, "iOpiky*", &which, &destination, &marker, &pt, &ts, &payload))
        return NULL;
    PyObject *result = NULL;
    Address dst;
    if (which < 0 || which > 1 || pt < 0 || pt > 127) {
        PyErr_SetString(PyExc_ValueError, "which is 0 or 1, payload type 0-127");
    } else if (parse_address(destination, &dst)) {
        Core *c = self->core;
        if (c == NULL) {
            PyErr_SetString(PyExc_ValueError, "the link is closed");
        } else {
            pthread_mutex_lock(&self->engine->lock);
            int seq = emit(self->engine, c, which, &dst, marker, (uint8_t)pt, (uint32_t)ts, payload.buf,
                           (int)payload.len);
            pthread_mutex_unlock(&self->engine->lock);
            result = PyLong_FromLong(seq);
        }
    }
    PyBuffer_Release(&payload);
    return result;
}

static PyObject *link_srtp(Link *self, PyObject *args) {
    int op, sip = 0;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iy*|i", &op, &data, &sip))
        return NULL;
    if (op < 0 || op > 3 || sip < 0 || sip > 2 || data.len > MAX_PACKET) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "op 0-3, sessions 0-2 and a packet of at most 1500 bytes");
        return NULL;
    }
    Core *c = self->core;
    if (c == NULL) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "the link is closed");
        return NULL;
    }
    uint8_t buffer[BUFFER_SIZE];
    int len = (int)data.len;
    memcpy(buffer, data.buf, (size_t)len);
    PyBuffer_Release(&data);
    int protect = op == OP_PROTECT || op == OP_PROTECT_RTCP;
    void *session = sip == 2 ? (protect ? c->vsip_tx : c->vsip_rx) /* the SIP side's video (NULL: none) */
                    : sip  ? (protect ? c->sip_tx : c->sip_rx)
                           : (protect ? c->tx : c->rx);
    pthread_mutex_lock(&self->engine->lock);
    int rc = session == NULL ? -1 : self->engine->fn[op](session, buffer, &len);
    pthread_mutex_unlock(&self->engine->lock);
    if (rc != 0)
        return PyLong_FromLong(rc == -1 ? 1 : rc); /* libsrtp's error code; bytes on success */
    return PyBytes_FromStringAndSize((const char *)buffer, len);
}

static PyObject *link_reports(Link *self, PyObject *unused) {
    Core *c = self->core;
    if (c == NULL)
        Py_RETURN_NONE;
    Kept kept[2];
    unsigned long long packets, octets;
    pthread_mutex_lock(&self->engine->lock); /* copied out: no Python object is made under the lock */
    packets = c->kept_packets;
    octets = c->kept_octets;
    for (int i = 0; i < 2; i++) {
        kept[i].len = c->kept[i].len;
        kept[i].arrival = c->kept[i].arrival;
        if (kept[i].len > 0)
            memcpy(kept[i].data, c->kept[i].data, (size_t)kept[i].len);
        c->kept[i].len = 0;
    }
    c->kept_packets = c->kept_octets = 0;
    pthread_mutex_unlock(&self->engine->lock);
    if (packets == 0)
        Py_RETURN_NONE;
    int first = kept[KEPT_RR].len > 0 /* the one that arrived first: KEPT_RR (1) or KEPT_SR (0) */
                && (kept[KEPT_SR].len == 0 || kept[KEPT_RR].arrival < kept[KEPT_SR].arrival);
    PyObject *list = PyList_New(0);
    for (int n = 0; list != NULL && n < 2; n++) {
        const Kept *k = &kept[n == 0 ? first : !first];
        if (k->len == 0)
            continue;
        PyObject *item = Py_BuildValue("(dy#)", k->arrival, (const char *)k->data, (Py_ssize_t)k->len);
        if (item == NULL || PyList_Append(list, item) < 0)
            Py_CLEAR(list);
        Py_XDECREF(item);
    }
    if (list == NULL)
        return NULL;
    return Py_BuildValue("(KKN)", packets, octets, list);
}

static PyObject *link_counters(Link *self, PyObject *unused) {
    Core *c = self->core;
    if (c == NULL)
        return Py_BuildValue("(KKKKKK)", 0ULL, 0ULL, 0ULL, 0ULL, 0ULL, 0ULL);
    pthread_mutex_lock(&self->engine->lock); /* no Python object is made under the lock (GC -> link_close) */
    unsigned long long v[6] = {c->dropped, c->lanes[0].forwarded, c->lanes[1].forwarded,
                               c->lanes[0].send_errors + c->lanes[0].codec_errors,
                               c->lanes[1].send_errors + c->lanes[1].codec_errors, c->sip_dropped};
    pthread_mutex_unlock(&self->engine->lock);
    return Py_BuildValue("(KKKKKK)", v[0], v[1], v[2], v[3], v[4], v[5]);
}

/* ice(username, password, controlling, remote) or ice(None): answer (or stop answering) the browser's
   consent checks from remote here (_stun.c). */
static PyObject *link_ice(Link *self, PyObject *args) {
    PyObject *first = PyTuple_GET_SIZE(args) == 1 ? PyTuple_GET_ITEM(args, 0) : NULL;
    StunIce ice;
    Address remote;
    memset(&ice, 0, sizeof ice);
    memset(&remote, 0, sizeof remote);
    if (first != Py_None) {
        const char *username, *password;
        Py_ssize_t username_len, password_len;
        int controlling;
        PyObject *address;
        if (!PyArg_ParseTuple(args, "y#y#pO", &username, &username_len, &password, &password_len, &controlling,
                              &address))
            return NULL;
        if (username_len < 1 || username_len >= STUN_MAX_USERNAME || password_len < 1 ||
            password_len > STUN_MAX_KEY) {
            PyErr_SetString(PyExc_ValueError, "the ICE username or password is empty or too long");
            return NULL;
        }
        if (!parse_address(address, &remote))
            return NULL;
        memcpy(ice.username, username, (size_t)username_len);
        memcpy(ice.key, password, (size_t)password_len);
        ice.username_len = (int)username_len;
        ice.key_len = (int)password_len;
        ice.controlling = controlling;
        ice.set = 1;
    }
    Core *c = self->core;
    if (c != NULL) {
        pthread_mutex_lock(&self->engine->lock);
        c->ice = ice;
        c->ice_remote = remote;
        pthread_mutex_unlock(&self->engine->lock);
    }
    Py_RETURN_NONE;
}

static PyObject *link_stun_answered(Link *self, PyObject *unused) {
    Core *c = self->core;
    unsigned long long answered = 0;
    if (c != NULL) {
        pthread_mutex_lock(&self->engine->lock);
        answered = c->stun_answered;
        pthread_mutex_unlock(&self->engine->lock);
    }
    return PyLong_FromUnsignedLongLong(answered);
}

static PyObject *link_sequence(Link *self, PyObject *args) {
    int which;
    if (!parse_which(args, &which))
        return NULL;
    LINK_CORE(self, NULL)
    pthread_mutex_lock(&self->engine->lock);
    long seq = c->out[which].seq;
    pthread_mutex_unlock(&self->engine->lock);
    return PyLong_FromLong(seq);
}


/* What lane ``which`` accounted since the last snapshot (None: nothing), and the ownership rule. */
static PyObject *link_snapshot(Link *self, PyObject *args) {
    int which, latency = 0;
    if (!PyArg_ParseTuple(args, "i|p", &which, &latency))
        return NULL;
    if (which < 0 || which > 1) {
        PyErr_SetString(PyExc_ValueError, "which is 0 or 1");
        return NULL;
    }
    Core *c = self->core;
    if (c == NULL)
        Py_RETURN_NONE;
    Tally t;
    pthread_mutex_lock(&self->engine->lock); /* copied under the lock; Python objects made after it */
    Lane *lane = &c->lanes[which];
    Tally *live = &lane->tally;
    if (!lane->armed)
        live->owned = 0; /* Python may handle this direction's packets now: its state becomes the live one */
    if (live->packets == 0) {
        pthread_mutex_unlock(&self->engine->lock);
        Py_RETURN_NONE;
    }
    memcpy(&t, live, sizeof t);
    live->packets = live->forwarded = live->transcoded = live->lost = live->sent = live->octets = 0;
    live->latency_count = 0;
    live->rx.restarted = 0;
    long long next_ts = lane->codec_in != CODEC_PASS && lane->has_next ? (long long)lane->next_ts : -1;
    pthread_mutex_unlock(&self->engine->lock);
    PyObject *reception = reception_tuple(&t.rx);
    if (reception == NULL)
        return NULL;
    PyObject *samples = Py_NewRef(Py_None);
    if (latency) {
        int n = t.latency_count < LATENCY_SAMPLES ? t.latency_count : LATENCY_SAMPLES;
        double values[LATENCY_SAMPLES];
        for (int i = 0; i < n; i++)
            values[i] = t.latency[i];
        Py_DECREF(samples);
        samples = PyBytes_FromStringAndSize((const char *)values, (Py_ssize_t)n * (Py_ssize_t)sizeof(double));
        if (samples == NULL) {
            Py_DECREF(reception);
            return NULL;
        }
    }
    return Py_BuildValue("(KKKKKKkBkdkLkdiNON)", (unsigned long long)t.packets, (unsigned long long)t.forwarded,
                         (unsigned long long)t.transcoded, (unsigned long long)t.lost, (unsigned long long)t.sent,
                         (unsigned long long)t.octets, (unsigned long)t.rx_ssrc, t.last_pt, (unsigned long)t.last_ts,
                         t.last_arrival, (unsigned long)t.last_mapped, next_ts, (unsigned long)t.last_out_ts,
                         t.last_departure, t.last_seq, reception, t.rx.restarted ? Py_True : Py_False, samples);
}

/* ------------------------------------------------------------------------------ Link: video lanes */

static PyObject *link_video(Link *self, PyObject *args) {
    int fd;
    unsigned long long sip_rx = 0, sip_tx = 0;
    if (!PyArg_ParseTuple(args, "i|KK", &fd, &sip_rx, &sip_tx))
        return NULL;
    if ((sip_rx == 0) != (sip_tx == 0)) {
        PyErr_SetString(PyExc_ValueError, "the SIP side's video SRTP sessions: both (rx and tx) or neither");
        return NULL;
    }
    LINK_CORE(self, NULL)
    if (c->has_video) {
        PyErr_SetString(PyExc_ValueError, "the link has its video socket already");
        return NULL;
    }
    /* a failed attempt's lanes are reused (the thread may have seen them, unclaimed) */
    VideoLane *lanes = c->video != NULL ? c->video : calloc(2, sizeof(VideoLane));
    if (lanes == NULL)
        return PyErr_NoMemory();
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
        if (lanes != c->video)
            free(lanes);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Engine *e = self->engine;
    pthread_mutex_lock(&e->lock);
    c->video = lanes;
    for (int i = 0; i < 2; i++) {
        VideoLane *v = &c->video[i];
        memset(v, 0, sizeof *v);
        v->out.first = 0x80;
        v->highest = -1;
        v->punted_at = UINT64_MAX;
        for (int k = 0; k < 128; k++)
            v->pt_map[k] = -1;
    }
    c->fds[2] = dup;
    c->vsip_rx = (void *)(uintptr_t)sip_rx;
    c->vsip_tx = (void *)(uintptr_t)sip_tx;
    c->video_tag.core = c;
    c->video_tag.which = 2;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->video_tag};
    int failed = epoll_ctl(e->epfd, EPOLL_CTL_ADD, dup, &ev) < 0;
    if (!failed)
        c->has_video = 1;
    pthread_mutex_unlock(&e->lock);
    if (failed) {
        int saved = errno;
        close(dup);
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static VideoLane *video_lane(Link *self, int which) {
    Core *c = self->core;
    if (which < 0 || which > 1) {
        PyErr_SetString(PyExc_ValueError, "which is 0 (browser -> SIP side) or 1 (SIP side -> browser)");
        return NULL;
    }
    if (c == NULL || !c->has_video) {
        PyErr_SetString(PyExc_ValueError, "the link is closed or has no video socket");
        return NULL;
    }
    return &c->video[which];
}

static PyObject *link_set_video_output(Link *self, PyObject *args) {
    int which, first;
    unsigned long ssrc;
    const char *extension = "";
    Py_ssize_t extension_len = 0;
    if (!PyArg_ParseTuple(args, "iik|y#", &which, &first, &ssrc, &extension, &extension_len))
        return NULL;
    if (extension_len > MAX_EXTENSION || extension_len % 4) {
        PyErr_SetString(PyExc_ValueError, "an extension of up to 252 bytes in words");
        return NULL;
    }
    VideoLane *v = video_lane(self, which);
    if (v == NULL)
        return NULL;
    pthread_mutex_lock(&self->engine->lock);
    v->out.first = (uint8_t)first;
    v->out.ssrc = (uint32_t)ssrc;
    memcpy(v->out.extension, extension, (size_t)extension_len);
    v->out.extension_len = (int)extension_len;
    pthread_mutex_unlock(&self->engine->lock);
    Py_RETURN_NONE;
}

/* The RTP of video lane ``which``'s direction in a queued item, as video_web() and video_sip() tell it. */
static int queued_video_rtp(const Core *c, int which, const Item *item, Rtp *r) {
    if (item->link_id != c->id)
        return 0;
    if (which == 0)
        return item->kind == KIND_WEB_RTP && parse_rtp(item->data, item->len, r) && c->video[0].claimed &&
               r->ssrc == c->video[0].ssrc;
    if (item->kind == KIND_VIDEO_SIP_RTP)
        return parse_rtp(item->data, item->len, r);
    if (item->kind != KIND_VIDEO_SIP_RAW || c->vsip_rx != NULL || item->len < 2 || item->data[0] < 128 ||
        item->data[0] > 191 || (item->data[1] >= 192 && item->data[1] <= 223))
        return 0;
    return parse_rtp(item->data, item->len, r);
}

/* take_back() for a video lane: the packets of its direction queued since the last drain go through
   video_feed() in queue order (forwarded, or dropped as the Python path drops them, and accounted); the
   first one it does not take disarms it and stays for Python with every later one. */
static int take_back_video(Engine *e, Core *c, int which) {
    VideoLane *v = &c->video[which];
    for (size_t i = 0; i < e->count && v->armed; i++) {
        Item *item = &e->items[i];
        Rtp r;
        if (!queued_video_rtp(c, which, item, &r))
            continue;
        if (!video_feed(e, c, which, item->data, &r, &item->source.addr, item->arrival))
            break;
        taken(item);
    }
    if (v->armed)
        v->punted_at = UINT64_MAX;
    return v->armed;
}

static PyObject *link_arm_video(Link *self, PyObject *args) {
    int which, offset, last_out, highest, flavour;
    PyObject *source, *destination, *stats;
    unsigned long ssrc, anchor_in, anchor_out, last_ts;
    double last_time;
    long long clock_rate;
    Py_buffer map, repair, codecs;
    if (!PyArg_ParseTuple(args, "iOOky*y*y*iiikkkdiLO", &which, &source, &destination, &ssrc, &map, &repair,
                          &codecs, &offset, &last_out, &highest, &anchor_in, &anchor_out, &last_ts, &last_time,
                          &flavour, &clock_rate, &stats))
        return NULL;
    PyObject *result = NULL;
    Address src, dst;
    Reception imported;
    memset(&imported, 0, sizeof imported);
    VideoLane *v = NULL;
    if (map.len != 128 || repair.len != 128 || codecs.len != 128 || offset < 0 || offset > 0xFFFF || last_out < 0 ||
        last_out > 0xFFFF || highest < -1 || highest > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "bad video lane: 128-byte payload type map (255: none), repair flags and "
                                          "codecs; offset and last output 16 bits; highest -1 or 16 bits");
    } else if (stats == Py_None ? (flavour < STATS_RFC3550 || flavour > STATS_AIORTC || clock_rate <= 0)
                                : !parse_reception(stats, flavour, clock_rate, &imported)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "bad receive statistics: flavour 0/1, clock rate > 0");
    } else if (parse_address(source, &src) && parse_address(destination, &dst) && (v = video_lane(self, which))) {
        if (stats == Py_None) {
            imported.flavour = flavour;
            imported.clock_rate = clock_rate;
            imported.base_seq = imported.max_seq = -1;
            imported.bad_seq = SEQ_MOD + 1;
        }
        const uint8_t *m = map.buf, *rp = repair.buf, *cd = codecs.buf;
        pthread_mutex_lock(&self->engine->lock);
        /* re-armed for the same source while armed: the thread's numbers are newer than Python's */
        int continuing = v->armed && v->ssrc == (uint32_t)ssrc && v->anchor_in == (uint32_t)anchor_in &&
                         v->anchor_out == (uint32_t)anchor_out;
        for (int k = 0; k < 128; k++) {
            v->pt_map[k] = m[k] < 128 ? (int16_t)m[k] : -1;
            v->repair[k] = rp[k] != 0;
            v->codec[k] = cd[k];
        }
        v->source = src;
        v->destination = dst;
        if (!continuing) {
            v->ssrc = (uint32_t)ssrc;
            v->offset = (uint16_t)offset;
            v->last_out = (uint16_t)last_out;
            v->highest = highest;
            v->anchor_in = (uint32_t)anchor_in;
            v->anchor_out = (uint32_t)anchor_out;
            v->last_ts = (uint32_t)last_ts;
            v->last_time = last_time;
            v->rx = imported;
        }
        v->claimed = 1;
        v->armed = 1;
        /* as link_arm: what waits of this direction is forwarded now, ahead of any newer packet */
        int armed = v->punted_at != self->engine->drains || take_back_video(self->engine, self->core, which);
        result = PyBool_FromLong(armed);
        pthread_mutex_unlock(&self->engine->lock);
    }
    PyBuffer_Release(&map);
    PyBuffer_Release(&repair);
    PyBuffer_Release(&codecs);
    return result;
}

static PyObject *link_disarm_video(Link *self, PyObject *args) {
    int which;
    if (!PyArg_ParseTuple(args, "i", &which))
        return NULL;
    Core *c = self->core;
    if (which < 0 || which > 1) {
        PyErr_SetString(PyExc_ValueError, "which is 0 or 1");
        return NULL;
    }
    if (c != NULL && c->has_video) {
        pthread_mutex_lock(&self->engine->lock);
        c->video[which].armed = 0;
        pthread_mutex_unlock(&self->engine->lock);
    }
    Py_RETURN_NONE;
}

static PyObject *link_video_snapshot(Link *self, PyObject *args) {
    int which;
    if (!PyArg_ParseTuple(args, "i", &which))
        return NULL;
    if (which < 0 || which > 1) {
        PyErr_SetString(PyExc_ValueError, "which is 0 or 1");
        return NULL;
    }
    Core *c = self->core;
    if (c == NULL || !c->has_video)
        Py_RETURN_NONE;
    VideoLane t;
    pthread_mutex_lock(&self->engine->lock);
    VideoLane *v = &c->video[which];
    if (v->received == 0) {
        pthread_mutex_unlock(&self->engine->lock);
        Py_RETURN_NONE;
    }
    memcpy(&t, v, sizeof t);
    v->received = v->forwarded = v->repair_dropped = v->dropped = v->lost = v->keyframes = v->padding = 0;
    v->sent = v->octets = 0;
    v->rx.restarted = 0;
    pthread_mutex_unlock(&self->engine->lock);
    PyObject *reception = reception_tuple(&t.rx);
    if (reception == NULL)
        return NULL;
    return Py_BuildValue("(KKKKKKKKKkkdkkdiiiNO)", (unsigned long long)t.received, (unsigned long long)t.forwarded,
                         (unsigned long long)t.repair_dropped, (unsigned long long)t.dropped,
                         (unsigned long long)t.lost, (unsigned long long)t.keyframes, (unsigned long long)t.padding,
                         (unsigned long long)t.sent, (unsigned long long)t.octets, (unsigned long)t.ssrc,
                         (unsigned long)t.last_ts, t.last_arrival, (unsigned long)t.last_mapped,
                         (unsigned long)t.last_out_ts, t.last_departure, (int)t.offset, (int)t.last_out, t.highest,
                         reception, t.rx.restarted ? Py_True : Py_False);
}

static PyObject *link_video_counters(Link *self, PyObject *unused) {
    Core *c = self->core;
    unsigned long long v[5] = {0, 0, 0, 0, 0};
    if (c != NULL && c->has_video) {
        pthread_mutex_lock(&self->engine->lock);
        v[0] = c->video[0].total_forwarded;
        v[1] = c->video[1].total_forwarded;
        v[2] = c->video[0].send_errors;
        v[3] = c->video[1].send_errors;
        v[4] = c->video_sip_dropped;
        pthread_mutex_unlock(&self->engine->lock);
    }
    return Py_BuildValue("(KKKKK)", v[0], v[1], v[2], v[3], v[4]);
}

static PyObject *link_get_closed(Link *self, void *closure) { return PyBool_FromLong(self->core == NULL); }

static PyMethodDef link_methods[] = {
    {"set_output", (PyCFunction)link_set_output, METH_VARARGS,
     "set_output(which, first_byte, ssrc, seq[, extension]): output 0 goes to the SIP side, 1 to the browser."},
    {"arm", (PyCFunction)link_arm, METH_VARARGS,
     "arm(which, source, destination, ssrc, pt_in, pt_out, anchor_in, anchor_out, in_rate, out_rate, last_ts, "
     "last_time, codec_in, codec_out, next_ts, tolerance, frame_ticks): forward matching packets of lane 0 "
     "(web -> SIP) or 1 (SIP -> web) natively until one does not match; codecs 0 (pass-through) or Opus (1) "
     "<-> PCMU (2) / PCMA (3), next_ts -1 for none. Packets of that direction queued since the last "
     "drain() are forwarded first; False when one of them disarmed it (it stays queued). Optional: "
     "flavour (0 RFC 3550, 1 aiortc), clock rate, "
     "ReceptionState (None: no packet yet) and last seq (-1) of the source's receive statistics, imported "
     "unless the engine holds them already."},
    {"disarm", (PyCFunction)link_disarm, METH_VARARGS, "disarm(which): everything of that lane goes to Python."},
    {"armed", (PyCFunction)link_armed, METH_VARARGS, "armed(which) -> bool"},
    {"send", (PyCFunction)link_send, METH_VARARGS,
     "send(which, destination, marker, pt, ts, payload) -> sequence number used, or -1: one packet on output "
     "which with its SSRC and next sequence number (SRTP-protected towards the browser, and towards the SIP "
     "side when it has SRTP)."},
    {"srtp", (PyCFunction)link_srtp, METH_VARARGS,
     "srtp(op, data[, sip]) -> bytes, or an int libsrtp error: op 0 protect, 1 unprotect, 2 protect_rtcp, "
     "3 unprotect_rtcp, on the web leg's sessions (sip 1: the SIP leg's, 2: the SIP side's video's; an error 1 "
     "without them), serialized with the thread."},
    {"ice", (PyCFunction)link_ice, METH_VARARGS,
     "ice(username, password, controlling, (host, port)) or ice(None): answer the browser's consent checks from "
     "that address here (username: the requests' USERNAME, ours:theirs; password: our ice-pwd; controlling: our "
     "role), or stop; the others go to Python."},
    {"stun_answered", (PyCFunction)link_stun_answered, METH_NOARGS,
     "stun_answered() -> how many consent checks this thread answered"},
    {"sequence", (PyCFunction)link_sequence, METH_VARARGS, "sequence(which) -> the next sequence number of output which"},
    {"reports", (PyCFunction)link_reports, METH_NOARGS,
     "reports() -> None, or (packets, octets, [(arrival, compound), ...]): the browser's report compounds the "
     "engine kept since the last call (SRTCP packets and their octets; the latest SR-led and RR-led ones, "
     "decrypted, oldest first, with their time.monotonic() arrival); taking them clears them."},
    {"counters", (PyCFunction)link_counters, METH_NOARGS,
     "(dropped from the browser, forwarded web->sip, forwarded sip->web, send errors web->sip, send errors "
     "sip->web, dropped from the SIP side: SRTP that did not authenticate)"},
    {"snapshot", (PyCFunction)link_snapshot, METH_VARARGS,
     "snapshot(which[, latency]) -> None when lane which forwarded nothing since the last snapshot, else "
     "(packets, forwarded, transcoded, lost, sent, octets, ssrc, last pt, last ts, last arrival, last mapped ts, "
     "next frame ts or -1, last output ts, last departure, last seq, receive statistics (ReceptionState), "
     "restarted, latency samples (native doubles) or None); counts since the last snapshot. A snapshot of a "
     "disarmed lane hands the receive statistics back to Python (arm() imports them again)."},
    {"close", (PyCFunction)link_close, METH_NOARGS, "Stop reading the sockets (idempotent; no item of it after)."},
    {"video", (PyCFunction)link_video, METH_VARARGS,
     "video(sip_video_fd[, sip_rx_session, sip_tx_session]): read the SIP side's video socket too (SRTP with its "
     "own sessions when given); its datagrams not forwarded are queued as kinds 6 (raw) and 7 (decrypted RTP)."},
    {"set_video_output", (PyCFunction)link_set_video_output, METH_VARARGS,
     "set_video_output(which, first_byte, ssrc[, extension]): video output 0 goes to the SIP side, 1 to the browser."},
    {"arm_video", (PyCFunction)link_arm_video, METH_VARARGS,
     "arm_video(which, source, destination, ssrc, pt_map, repair, codecs, offset, last_out, highest, anchor_in, "
     "anchor_out, last_ts, last_time, flavour, clock_rate, reception or None) -> bool: forward video lane which "
     "natively (video.VideoPath.feed); maps are 128 bytes indexed by the input payload type (pt_map 255: not "
     "forwarded; codecs 1 VP8, 2 VP9, 3 H.264). Queued packets of that direction go first; False when one "
     "disarmed it."},
    {"disarm_video", (PyCFunction)link_disarm_video, METH_VARARGS, "disarm_video(which)"},
    {"video_snapshot", (PyCFunction)link_video_snapshot, METH_VARARGS,
     "video_snapshot(which) -> None, or (received, forwarded, repair_dropped, dropped, lost, keyframes, padding, "
     "sent, octets, ssrc, last ts, last arrival, last mapped ts, last output ts, last departure, offset, last "
     "output seq, highest seq, ReceptionState, restarted): counts since the last snapshot, the rest current."},
    {"video_counters", (PyCFunction)link_video_counters, METH_NOARGS,
     "(video forwarded browser->SIP, SIP->browser, send errors of each, SRTP dropped from the SIP side's video)"},
    {NULL},
};

static PyGetSetDef link_getset[] = {
    {"closed", (getter)link_get_closed, NULL, "whether close() was called", NULL},
    {NULL},
};

static PyTypeObject LinkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gateway.media._fastlane.Link",
    .tp_basicsize = sizeof(Link),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One call's two sockets in the engine (Engine.link).",
    .tp_dealloc = (destructor)link_dealloc,
    .tp_methods = link_methods,
    .tp_getset = link_getset,
};

static PyObject *set_codecs(PyObject *module, PyObject *args) {
    PyObject *functions;
    Py_buffer ulaw_decode, ulaw_encode, alaw_decode, alaw_encode;
    if (!PyArg_ParseTuple(args, "Oy*y*y*y*", &functions, &ulaw_decode, &ulaw_encode, &alaw_decode, &alaw_encode))
        return NULL;
    PyObject *result = NULL;
    unsigned long long f[7] = {0};
    if (ulaw_decode.len != 512 || alaw_decode.len != 512 || ulaw_encode.len != 65536 || alaw_encode.len != 65536) {
        PyErr_SetString(PyExc_ValueError, "G.711 tables: 256 native int16 samples to decode, 65536 codes to encode");
    } else if (functions != Py_None &&
               !PyArg_ParseTuple(functions, "KKKKKKK", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6])) {
        /* error set */
    } else {
        if (!g711_ready) {
            memcpy(g711_decode[0], ulaw_decode.buf, 512);
            memcpy(g711_decode[1], alaw_decode.buf, 512);
            memcpy(g711_encode[0], ulaw_encode.buf, 65536);
            memcpy(g711_encode[1], alaw_encode.buf, 65536);
            g711_ready = 1;
        }
        int all = 1;
        for (int i = 0; i < 7; i++)
            all &= f[i] != 0;
        if (!opus_ready && all) {
            opus.decoder_create = (void *(*)(int32_t, int, int *))(uintptr_t)f[0];
            opus.decode = (int (*)(void *, const unsigned char *, int32_t, int16_t *, int, int))(uintptr_t)f[1];
            opus.decoder_destroy = (void (*)(void *))(uintptr_t)f[2];
            opus.encoder_create = (void *(*)(int32_t, int, int, int *))(uintptr_t)f[3];
            opus.encode = (int32_t(*)(void *, const int16_t *, int, unsigned char *, int32_t))(uintptr_t)f[4];
            opus.encoder_ctl = (int (*)(void *, int, ...))(uintptr_t)f[5];
            opus.encoder_destroy = (void (*)(void *))(uintptr_t)f[6];
            opus_ready = 1;
        }
        result = PyBool_FromLong(opus_ready && g711_ready);
    }
    PyBuffer_Release(&ulaw_decode);
    PyBuffer_Release(&ulaw_encode);
    PyBuffer_Release(&alaw_decode);
    PyBuffer_Release(&alaw_encode);
    return result;
}

static PyObject *set_opus_encoder(PyObject *module, PyObject *args) {
    int complexity, inband_fec;
    if (!PyArg_ParseTuple(args, "ip", &complexity, &inband_fec))
        return NULL;
    if (complexity < 0 || complexity > 10) {
        PyErr_SetString(PyExc_ValueError, "Opus complexity is 0-10");
        return NULL;
    }
    opus_complexity = complexity; /* read by prepare_codecs, with the GIL held: the thread never reads it */
    opus_inband_fec = inband_fec;
    Py_RETURN_NONE;
}

static PyObject *stun_digests(PyObject *module, PyObject *args) {
    const char *key, *data;
    Py_ssize_t key_len, len;
    if (!PyArg_ParseTuple(args, "y#y#", &key, &key_len, &data, &len))
        return NULL;
    if (key_len > INT_MAX || len > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "too long");
        return NULL;
    }
    uint8_t digest[20];
    stun_hmac_sha1((const uint8_t *)key, (int)key_len, (const uint8_t *)data, (int)len, NULL, 0, digest);
    uint32_t crc = stun_crc32((const uint8_t *)data, (int)len);
    return Py_BuildValue("(y#k)", (const char *)digest, (Py_ssize_t)20, (unsigned long)crc);
}

static PyMethodDef module_methods[] = {
    {"stun_digests", stun_digests, METH_VARARGS,
     "stun_digests(key, data) -> (HMAC-SHA1, CRC-32): _stun.c's own, for tests."},
    {"set_opus_encoder", set_opus_encoder, METH_VARARGS,
     "set_opus_encoder(complexity, inband_fec): the settings of the Opus encoders created from now on "
     "(complexity 0-10; narrowband, voice, no DTX, 32 kbit/s always)."},
    {"set_codecs", set_codecs, METH_VARARGS,
     "set_codecs(opus, ulaw_decode, ulaw_encode, alaw_decode, alaw_encode) -> whether transcoding lanes work: "
     "opus is None or the addresses of opus_decoder_create, opus_decode, opus_decoder_destroy, "
     "opus_encoder_create, opus_encode, opus_encoder_ctl, opus_encoder_destroy (set once per process)."},
    {"replay", replay, METH_VARARGS,
     "replay(flavour, clock_rate, state, packets) -> (ReceptionState, restarted): the lanes' receive statistics "
     "applied to (seq, ts, arrival) tuples (arrival: monotonic seconds for flavour 0, wall seconds for 1)."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "gateway.media._fastlane", .m_methods = module_methods,
    .m_doc = "Native forwarding of steady pass-through RTP (see gateway/media/fastpath.py).", .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastlane(void) {
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&LinkType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&LinkType);
    if (PyModule_AddObject(m, "Link", (PyObject *)&LinkType) < 0) {
        Py_DECREF(&LinkType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
