/* What the fast lane's files share (gateway/media/fastlane/_fastlane.c says how the engine works): the types, the
   process-wide codec tables and the functions one file calls in another. */
#ifndef GATEWAY_FASTLANE_H
#define GATEWAY_FASTLANE_H

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

/* What one file defines and others use is hidden: only PyInit__fastlane leaves the module. */
#pragma GCC visibility push(hidden)

#define MAX_PACKET 1500
#define BUFFER_SIZE (MAX_PACKET + 256) /* room for the SRTP trailer (tag + MKI) */
#define MAX_EXTENSION 255
#define BATCH 32                 /* datagrams read from one socket per round (fairness) */
#define QUEUE_LIMIT 262144       /* items; beyond it new items are dropped and counted */
/* Seconds one lane's direction may keep queueing RTP for Python without a drain; after, its packets are
   dropped (counted in queue_drops) until Python drains. Python needs the first ones of a direction to arm
   its lane; a Python that has not drained for that long would only hand the rest on late, and 500 calls
   starting at once under load queued 50 000 a second for it until the event loop stalled for seconds and
   every call was silent (issue 38). RFC 4733 events of such a direction go too: a digit pressed while
   the event loop stalls that long is lost, as its audio is. */
#define PUNT_WINDOW 0.5
#define ARRIVAL_MAX 10.0         /* seconds: an older kernel arrival time means a wall clock step (arrival_of) */
#define JUMP_SECONDS 1.0         /* as gateway/media/rtp/retime.py */
#define NOTIFY_DELAY 0.01        /* seconds RTCP and STUN may wait in the queue for Python (wake_python) */
#define MAX_COALESCE 0.005       /* Engine.coalesce's ceiling, seconds */
#define GATHER_MIN 4.0           /* packets a gathering wait must expect (at the thread's rate) to be worth it */
#define RATE_WINDOW 0.1          /* seconds over which the thread measures its packet rate */
#define GATHER_LATE 0.0005       /* seconds after which a gathering wait that has not ended is late */
#define GATHER_LATE_MAX 3        /* late waits out of GATHER_SPAN that stop the gathering (the CPUs are busy) */
#define GATHER_SPAN 64           /* gathering waits over which late ones are counted */
#define GATHER_PAUSE 1.0         /* seconds the thread then forwards each packet as it comes, doubled up to */
#define GATHER_PAUSE_MAX 32.0    /* ... this while late waits stop the waits again within GATHER_RECENT */
#define GATHER_RECENT 10.0       /* seconds after a pause's end */
#define ENGINE_THREAD_NAME "fastlane"  /* the engine threads' name (comm): _fastlane.ENGINE_THREAD_NAME */

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
    uint64_t packets, forwarded, transcoded, lost, sent, octets, late;
    uint64_t recovered, malformed; /* RFC 2198: lost packets restored from RED, malformed RED dropped */
    uint64_t gaps;                 /* loss events: runs of consecutive lost packets (MediaPath.gaps) */
    uint32_t last_ts, last_mapped, last_out_ts;
    uint8_t last_pt;
    double last_arrival, last_departure;
    float latency[LATENCY_SAMPLES]; /* seconds from arrival to departure, the newest kept */
    int latency_count;
    Address armed_from;            /* the source a primed lane's first packet came from (len 0: none since) */
} Tally;

/* Output sequence numbers of pass-through audio (gateway/media/rtp/seqmap.py): input + offset, re-chosen
   on a new SSRC, an RFC 3550 A.1 restart, or after the sender's own packets took the numbers. */
typedef struct {
    int64_t ssrc;                  /* -1: none yet */
    uint16_t offset, highest;
    int32_t bad;                   /* -1: none */
} SeqMap;

#define PCM_FRAME 160              /* 20 ms at 8 kHz: what transcoding lanes decode to and encode from */
#define PCM_CAPACITY 1280          /* 120 ms (Opus's longest packet) + a partial frame */

/* A transcoding lane decodes in sequence order (gateway/media/rtp/reorder.py is the same logic): packets
   behind a missing one wait in a ring, at most the lane's ``hold`` seconds after the first of them came (or
   until the ring is full); then the gap is concealed - Opus from the next packet's in-band FEC, else
   libopus's PLC; G.711 by ITU-T G.711 Appendix I (gateway/media/codecs/g711_plc.py) - up to
   MAX_CONCEALED_FRAMES. The hold adapts: 0 until a packet comes after its gap was given up (a reordering),
   then REORDER_HOLD, halved after REORDER_CALM s without another (0 below REORDER_MARGIN). */
#define REORDER_SLOTS 8
#define REORDER_HOLD 0.06
#define REORDER_MARGIN 0.005
#define REORDER_CALM 10.0
#define MAX_CONCEALED_FRAMES 10
#define PLC_HISTORY 390            /* three periods of 15 ms and a quarter (G.711 Appendix I) */
typedef struct {
    uint16_t seq;
    uint32_t ts;
    double arrival;
    int len;
    uint8_t data[MAX_PACKET];
} Held;

/* RFC 2198 redundancy (_fastlane_red.c; gateway/media/rtp/red.py is the same format) */
#define RED_MAX_BLOCKS 32          /* headers beyond this: not RED (red.py's _MAX_BLOCKS) */
#define RED_MAX_OFFSET 0x3FFF      /* 14 bits (RFC 2198 §3) */
#define RED_MAX_BLOCK 0x3FF        /* 10 bits */
#define RED_COPIES 16              /* redundant blocks a transcoding lane keeps (forward.py's _RECOVERY) */
typedef struct {
    uint8_t pt;
    uint32_t ts;                   /* the packet's minus the block's offset */
    int offset, len;               /* the block's data: payload[offset:offset + len] */
} RedBlock;

typedef struct {                   /* a redundant block kept until a gap may need it (len 0: none) */
    uint32_t ts;
    int len;
    uint8_t data[RED_MAX_BLOCK];
} RedCopy;

typedef struct {                   /* G.711 Appendix I state: the last good signal, the erasure so far */
    int16_t history[PLC_HISTORY];
    int erased, pitch, position;
} Plc;

typedef struct {
    int armed;
    /* primed (Link.arm(..., primed=True)): a direction Python has not had a packet of yet. Its first packet,
       from ``source`` with ``pt_in`` (and RED primary), arms the lane in the thread - the SSRC and the input
       anchor are that packet's - so a call's media flow while Python is busy (issue 38: 500 set-ups at once
       left it seconds behind, and every call silent until it handled each direction's first packet). Any
       other packet unprimes it: Python decides. ``self_armed``: armed so, not re-armed by Python since. */
    int primed, self_armed;
    uint32_t self_arms;            /* how often (Link.self_arms) */
    /* how often the lane was disarmed (Link.disarms): by lane_takes at a timestamp jump, by lane_takes for a
       packet of another source, SSRC, payload type or RED primary, by Python (Link.disarm) */
    uint32_t jumps, strangers, disarms;
    Address source;                /* only packets from here */
    Address destination;           /* where they go on the other leg */
    uint32_t ssrc;
    uint8_t pt_in, pt_out;
    /* timestamps as gateway/media/rtp/retime.py: out = anchor_out + floor(signed(in - anchor_in) * out/in) */
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
    int loss_set, loss_fec, loss_percent; /* the browser's reported loss for the encoder (link_opus_loss) */
    SeqMap seqmap;                 /* pass-through: output sequence numbers (map_sequence) */
    int16_t *pcm;                  /* PCM_CAPACITY samples, malloc'd with the codecs (prepare_codecs): NULL
                                      until the lane first transcodes (a pass-through call has none) */
    int pcm_len;
    Held *held;                    /* REORDER_SLOTS + 1, malloc'd with ``pcm`` */
    int held_count;
    int has_expected, has_expect_out;
    uint16_t expected;             /* the next sequence number to decode */
    double hold, hold_raised;      /* the reorder wait now, and when it last grew or halved (REORDER_CALM) */
    int has_gap;                   /* the last gap given up: its numbers */
    uint16_t gap_first, gap_count;
    uint32_t expect_out;           /* where the next input packet starts on the output timeline */
    uint64_t late, concealed;      /* packets dropped after their slot was concealed; frames concealed */
    Plc plc;
    uint64_t punted_at;            /* Engine.drains when it last queued an RTP packet of this direction */
    double punted_since;           /* ... and when the first since that drain arrived (PUNT_WINDOW) */
    uint64_t forwarded, send_errors, codec_errors;
    /* RFC 2198 (_fastlane_red.c): red_in >= 0 when pt_in is RED whose primary is that payload type (the
       input unwrapped); red_out >= 0: audio goes out in RED with that payload type, the previous payload
       as its redundant block */
    int red_in, red_out;
    RedCopy *copies;               /* RED_COPIES, malloc'd when a transcoding lane is armed for RED */
    int copies_next;
    int previous_len;              /* -1: none */
    uint32_t previous_ts;
    uint8_t previous[RED_MAX_BLOCK];
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

extern OpusApi opus;
extern int opus_ready;
extern int g711_ready;
extern int16_t g711_decode[2][256];       /* [0]: mu-law, [1]: A-law */
extern uint8_t g711_encode[2][65536];     /* indexed by the sample as uint16 */

#define OPUS_APPLICATION_VOIP 2048
#define OPUS_SET_BITRATE_REQUEST 4002
#define OPUS_BITRATE 32000
/* The encoder's settings for a G.711 source (gateway/media/codecs/opus_settings.py says why; set_opus_encoder):
   libopus's request numbers (opus_defines.h). */
#define OPUS_SET_MAX_BANDWIDTH_REQUEST 4004
#define OPUS_SET_COMPLEXITY_REQUEST 4010
#define OPUS_SET_INBAND_FEC_REQUEST 4012
#define OPUS_SET_DTX_REQUEST 4016
#define OPUS_GET_INBAND_FEC_REQUEST 4013
#define OPUS_SET_PACKET_LOSS_PERC_REQUEST 4014
#define OPUS_GET_PACKET_LOSS_PERC_REQUEST 4015
#define OPUS_SET_SIGNAL_REQUEST 4024
#define OPUS_BANDWIDTH_NARROWBAND 1101
#define OPUS_SIGNAL_VOICE 3001
extern int opus_complexity, opus_inband_fec;


/* A video lane (issue 19): gateway/media/video/forward.py's VideoPath.feed for one direction - payload types
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
    int has_upstream;              /* upstream_* were read (the SIP side's lane armed, its statistics live) */
    uint32_t upstream_ssrc;        /* at the arrival: the SIP side's stream and its cumulative loss (RFC */
    int64_t upstream_lost;         /* 3550 A.3), which the browser's report counts too in a pass-through call */
    uint8_t data[KEPT_MAX];
} Kept;

#define FLOOR_TRAIL 0x4000        /* gateway/media/video/forward.py FLOOR_TRAIL */
#define GUARD_SLOTS 1024           /* gateway/media/rtp/send_guard.py SLOTS, TAG, and its layout: the highest */
#define GUARD_TAG 8                /* index protected (int64, from 0) and 8 octets, then per slot index + 1 */
#define GUARD_SIZE (16 + GUARD_SLOTS * (8 + GUARD_TAG)) /* (uint64) and the tag, in native order */
typedef struct {
    int armed;
    int claimed;                   /* ``ssrc`` is the video's: its packets never disarm the audio lane */
    Address source, destination;
    uint32_t ssrc;
    int16_t pt_map[128];           /* input -> output payload type, -1: not forwarded */
    uint8_t repair[128], codec[128];
    uint16_t offset, last_out;
    int32_t highest;               /* -1: none yet */
    int32_t floor;                 /* the current offset's first output number (-1: any): below it, a */
                                   /* late packet would take a number sent (one SRTP index, two payloads); */
                                   /* it trails the last number out by at most FLOOR_TRAIL */
    uint32_t anchor_in, anchor_out, last_ts;
    double last_time;
    Output out;                    /* SSRC, first byte and header extension (seq: the offset's) */
    uint8_t *guard;                /* the output stream's SendGuard state (send_guard.py), or NULL: plain RTP */
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
    uint64_t overslept; /* waits that ended more than GATHER_LATE late (run: GATHER_LATE_MAX pause the waits) */
    /* whether a forwarded packet's departure is read from the clock (Engine.latency: a call's latency meter
       is on, a benchmark's); else it is the round's time, and no latency sample is kept */
    int latency;
    /* the departure of what is sent meanwhile while latency is off: the thread's round time (refreshed as
       run() reads the clock), take_back's one clock read */
    double sent_at;
    double gather_late; /* seconds after which a gathering wait is late (GATHER_LATE; tests set 0) */
} Engine;

typedef struct {
    PyObject_HEAD
    Engine *engine;
    Core *core;                    /* NULL once closed */
    PyObject *sessions;            /* keeps the pylibsrtp sessions alive while the thread may use them */
    Py_buffer guards[2];           /* the video lanes' SendGuard states (VideoLane.guard), while guarded[i] */
    int guarded[2];
} Link;

typedef struct {
    uint32_t ssrc, ts;
    uint16_t seq;
    uint8_t pt, marker;
    int payload, end;              /* payload = data[payload:end] */
} Rtp;

#define LINK_CORE(self, ret)                                                                             \
    Core *c = (self)->core;                                                                              \
    if (c == NULL) {                                                                                     \
        PyErr_SetString(PyExc_ValueError, "the link is closed");                                         \
        return ret;                                                                                      \
    }

static inline int is_rtcp(const uint8_t *d, int len) { return len > 1 && d[1] >= 192 && d[1] <= 208; }

static inline double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Ask the kernel to time each datagram ``fd`` receives (SCM_TIMESTAMPNS: _fastlane_thread.c's arrival_of);
   without it the thread times a datagram by its read. Readers of the socket that take no ancillary data
   (asyncio, when the link is closed) never see the timestamps. */
static inline void ask_arrival(int fd) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)
        errno = 0;
}

static inline double realtime_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int same_address(const Address *a, const struct sockaddr_storage *b) {
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

/* Defined in one file, used in others. */
extern PyTypeObject LinkType;

/* _fastlane_media.c */
int punt(Engine *e, Core *c, uint8_t kind, const uint8_t *data, int len, const struct sockaddr_storage *src,
         socklen_t srclen, double now);
void free_items(Item *items, size_t count);
void reception_update(Reception *s, uint16_t seq, uint32_t ts, double arrival, double wall_offset);
int parse_rtp(const uint8_t *d, int len, Rtp *r);
int write_header(uint8_t *out, const Output *o, int marker, uint8_t pt, uint16_t seq, uint32_t ts);
int emit(Engine *e, Core *c, int which, const Address *to, int marker, uint8_t pt, uint32_t ts,
         const uint8_t *payload, int payload_len);
int emit_seq(Engine *e, Core *c, int which, const Address *to, int marker, uint8_t pt, int seq, uint32_t ts,
             const uint8_t *payload, int payload_len);
int map_sequence(SeqMap *m, uint32_t ssrc, uint16_t seq, uint16_t next);
int lane_takes(Lane *lane, const uint8_t *d, const Rtp *r, const struct sockaddr_storage *src, double now);
void lane_flush(Engine *e, Core *c, int which);
uint32_t map_timestamp(const Lane *lane, uint32_t ts);
int decode_in_order(Engine *e, Core *c, int which, Lane *lane, uint32_t ts, const uint8_t *payload, int len,
                    int lost, int *octets, uint32_t *last_out);
int reorder_push(Engine *e, Core *c, int which, Lane *lane, const Rtp *r, const uint8_t *payload, int len,
                 double now, int *octets, uint32_t *last_out);
void reorder_reset(Lane *lane, int last_seq);
void plc_conceal(Plc *p, int16_t *out, int n, const int16_t *following, int following_len);
void plc_good(Plc *p, int16_t *pcm, int n);
void forward(Engine *e, Core *c, int which, const uint8_t *d, const Rtp *r, double now);
PyObject *reception_tuple(const Reception *r);
int parse_reception(PyObject *state, int flavour, long long clock_rate, Reception *out);
PyObject *replay(PyObject *module, PyObject *args);

/* _fastlane_red.c */
int red_unpack(const uint8_t *payload, int size, uint32_t ts, RedBlock *blocks);
int red_primary(const uint8_t *payload, int size);
int red_restore(Engine *e, Core *c, int which, Lane *lane, const Rtp *r, const uint8_t *payload,
                const RedBlock *blocks, int count, int *octets);
void red_keep(Lane *lane, const uint8_t *payload, const RedBlock *blocks, int count);
int red_conceal(Lane *lane, uint32_t ts);
const uint8_t *red_copy(const Lane *lane, uint32_t ts, int *len);
void red_forget(Lane *lane);
int lane_emit(Engine *e, Core *c, int which, Lane *lane, int marker, int seq, uint32_t ts, const uint8_t *payload,
              int len, int *octets);
PyObject *link_red_previous(Link *self, PyObject *args);

/* _fastlane_video.c */
int video_web(Engine *e, Core *c, uint8_t *d, int len, const Rtp *r, const struct sockaddr_storage *src,
              socklen_t srclen, double now);
int video_sip(Engine *e, Core *c, uint8_t *d, int len, const struct sockaddr_storage *src, socklen_t srclen,
              double now);
PyObject *link_video(Link *self, PyObject *args);
PyObject *link_set_video_output(Link *self, PyObject *args);
PyObject *link_arm_video(Link *self, PyObject *args);
PyObject *link_disarm_video(Link *self, PyObject *args);
PyObject *link_video_snapshot(Link *self, PyObject *args);
PyObject *link_video_counters(Link *self, PyObject *unused);

/* _fastlane_thread.c */
void free_codecs(Core *c);
void bury(Engine *e);
void *run(void *arg);

/* _fastlane_link.c */
void taken(Item *item);

/* _fastlane.c */
int parse_address(PyObject *tuple, Address *out);
PyObject *address_tuple(const Address *a);

#pragma GCC visibility pop

#endif
