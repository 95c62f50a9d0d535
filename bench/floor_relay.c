/* The floor for bench/vs_rtpengine.py: a bare UDP relay in C (issue 14 goal 1).
 *
 * One thread, one epoll set, 2 x N UDP sockets on 127.0.0.1 (two legs per call). A datagram that arrives
 * on socket i leaves from socket i ^ 1 towards that socket's remote address: what a media anchor does for
 * pass-through, with nothing else (no RTP parsing, no statistics, no RTCP). Each wake-up drains a socket
 * with recvmmsg and forwards the batch with one sendmmsg.
 *
 * With --srtp (the floor of a pass-through call, "a bare C relay: epoll + recvmmsg + libsrtp + sendmmsg"),
 * the even socket of each call (2c, the "browser" leg) is SRTP AES_CM_128_HMAC_SHA1_80 (RFC 3711), or
 * AEAD_AES_128_GCM (RFC 7714, what aiortc negotiates first) with --srtp-gcm: what arrives there is
 * unprotected before it leaves on 2c+1 in plain RTP, what arrives on 2c+1 is protected before it leaves on
 * 2c. With --srtp-gcm256 it is AEAD_AES_256_GCM, the profile aiortc offers first and the calls through
 * our gateway negotiate (aiortc 1.16, OpenSSL 3): the default floor of bench/vs_rtpengine.py. Each call
 * has its own two libsrtp sessions (any inbound / any outbound SSRC), keyed with the two master keys (key +
 * salt, hex: 30 octets, 28 for AES-128-GCM, 44 for AES-256-GCM) read from stdin: the key the browser side
 * protects with, then the one it unprotects with. A packet that does not authenticate is dropped (counted
 * in "errors").
 *
 * $FLOOR_WINDOW, when set, is the sessions' replay window (and repeated sends are allowed): aiortc's own
 * sessions, which our engine uses, have 1024 (the default, unset: libsrtp's 128); at 10 calls it changed
 * nothing measurable (perf: libsrtp's samples within the runs' spread).
 *
 * $FLOOR_GATHER_MS, when set above 0, makes the relay gather as our fast-lane engine does
 * (gateway/media/fastlane/_fastlane_thread.c gather(), media.fast_path_coalesce_ms): after a round that
 * handled packets it sleeps until the round's start + that many milliseconds, when its packet rate (over
 * 0.1 s) says the wait gathers at least 4 packets, so that what arrives meanwhile is read in one round; a
 * packet waits up to that long (latency traded for fewer wake-ups and system calls).
 *
 * libsrtp2 is loaded with dlopen from the path in $FLOOR_LIBSRTP: bench/vs_rtpengine.py gives it
 * pylibsrtp's bundled copy (_binding.abi3.so: libsrtp 2 with OpenSSL, the same code the gateway's engine
 * runs; its few references to CPython are never called, and _Py_NoneStruct, the one data reference, is
 * defined below so that it loads), or Debian's libsrtp2.so.1 (the default; built with NSS here, slower).
 * Debian ships libsrtp2 without headers: the prototypes and libsrtp 2.x's srtp_policy_t are declared
 * below.
 *
 * $FLOOR_NICE, when set, is the relay's nice value (setpriority; raising it needs CAP_SYS_NICE): the bench
 * leaves it at 0 unless told (VS_RTPENGINE_FLOOR_NICE=-10: our engine thread's, gateway/media/fastlane/
 * _fastlane_thread.c run(); the default before issue 38). The priority changes what a relay
 * costs: a thread that preempts the peers as soon as a datagram arrives reads one datagram per wake-up,
 * one that waits its turn finds several (at 10 calls here: 7 800 voluntary context switches in 8 s at -10, 6 000 at 0).
 *
 * Protocol on stdio (the bench drives it): it prints "ports p0 p1 ... p(2N-1)\n", then (--srtp) reads
 * "<hex key in> <hex key out>", then one line per socket "<remote port>" (127.0.0.1), prints "ready\n",
 * relays until SIGTERM or SIGINT, and prints "received R sent S errors E nice N wakeups W\n" on exit.
 *
 * Build: cc -O2 -rdynamic -o floor_relay floor_relay.c -ldl
 * Run: [FLOOR_LIBSRTP=path] [FLOOR_GATHER_MS=1] ./floor_relay N [first-port] [--srtp|--srtp-gcm|--srtp-gcm256]
 * (first-port 0 or absent: ports chosen by the kernel; else 2N consecutive ports from first-port.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define MAX_DATAGRAM 2048
#define SRTP_ROOM 64 /* room left in each buffer for the SRTP trailer (tag, MKI) */

/* libsrtp 2.x (include/srtp.h), declared here: Debian ships the library without its headers */
typedef struct {
    unsigned int cipher_type;
    int cipher_key_len;
    unsigned int auth_type;
    int auth_key_len;
    int auth_tag_len;
    int sec_serv;
} srtp_crypto_policy_t;
typedef struct srtp_policy_t {
    struct { int type; unsigned int value; } ssrc; /* ssrc_any_inbound = 2, ssrc_any_outbound = 3 */
    srtp_crypto_policy_t rtp, rtcp;
    unsigned char *key;
    void **keys;
    unsigned long num_master_keys;
    void *deprecated_ekt;
    unsigned long window_size;
    int allow_repeat_tx;
    int *enc_xtn_hdr;
    int enc_xtn_hdr_count;
    struct srtp_policy_t *next;
} srtp_policy_t;
typedef void *srtp_t;
static int (*srtp_init)(void);
static int (*srtp_create)(srtp_t *session, const srtp_policy_t *policy);
static int (*srtp_protect)(srtp_t ctx, void *rtp_hdr, int *len_ptr);
static int (*srtp_unprotect)(srtp_t ctx, void *srtp_hdr, int *len_ptr);
static void (*set_profile)(srtp_crypto_policy_t *p); /* AES_CM_128_HMAC_SHA1_80, AEAD_AES_128/256_GCM */
char _Py_NoneStruct[64]; /* for pylibsrtp's _binding.abi3.so (see above): exported with -rdynamic */

static void load_libsrtp(int gcm) { /* gcm: 0, 128 or 256 */
    const char *path = getenv("FLOOR_LIBSRTP");
    void *lib = dlopen(path && *path ? path : "libsrtp2.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (lib == NULL) { fprintf(stderr, "%s\n", dlerror()); exit(1); }
    *(void **)&srtp_init = dlsym(lib, "srtp_init");
    *(void **)&srtp_create = dlsym(lib, "srtp_create");
    *(void **)&srtp_protect = dlsym(lib, "srtp_protect");
    *(void **)&srtp_unprotect = dlsym(lib, "srtp_unprotect");
    *(void **)&set_profile = dlsym(lib, gcm == 256   ? "srtp_crypto_policy_set_aes_gcm_256_16_auth"
                                        : gcm == 128 ? "srtp_crypto_policy_set_aes_gcm_128_16_auth"
                                                     : "srtp_crypto_policy_set_rtp_default");
    if (!srtp_init || !srtp_create || !srtp_protect || !srtp_unprotect || !set_profile) {
        fprintf(stderr, "libsrtp2: missing symbols\n");
        exit(1);
    }
}

static volatile sig_atomic_t stopping;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig) { (void)sig; stopping = 1; }

static int read_key(unsigned char key[46], int size) {
    char hex[93];
    if (scanf("%92s", hex) != 1 || (int)strlen(hex) != 2 * size) return 0;
    for (int k = 0; k < size; k++) {
        unsigned value;
        if (sscanf(hex + 2 * k, "%2x", &value) != 1) return 0;
        key[k] = (unsigned char)value;
    }
    return 1;
}

static srtp_t session(unsigned char *key, int inbound) {
    srtp_policy_t policy;
    memset(&policy, 0, sizeof policy);
    policy.ssrc.type = inbound ? 2 : 3;
    set_profile(&policy.rtp);
    set_profile(&policy.rtcp);
    policy.key = key;
    const char *window = getenv("FLOOR_WINDOW"); /* aiortc's sessions: 1024 and repeated sends allowed */
    if (window != NULL && *window != '\0') {
        policy.window_size = (unsigned long)atol(window);
        policy.allow_repeat_tx = 1;
    }
    srtp_t s = NULL;
    if (srtp_create(&s, &policy) != 0) { fprintf(stderr, "srtp_create failed\n"); exit(1); }
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CALLS [FIRST_PORT] [--srtp|--srtp-gcm|--srtp-gcm256]\n", argv[0]);
        return 2;
    }
    int calls = atoi(argv[1]);
    int first_port = argc > 2 ? atoi(argv[2]) : 0;
    const char *mode = argc > 3 ? argv[3] : "";
    int gcm = strcmp(mode, "--srtp-gcm256") == 0 ? 256 : strcmp(mode, "--srtp-gcm") == 0 ? 128 : 0;
    int srtp = gcm || strcmp(mode, "--srtp") == 0;
    const char *gather_value = getenv("FLOOR_GATHER_MS");
    double gather = gather_value != NULL && *gather_value != '\0' ? atof(gather_value) / 1000.0 : 0.0;
    int count = 2 * calls;
    if (calls <= 0) return 2;
    const char *nice_value = getenv("FLOOR_NICE");
    if (nice_value != NULL && *nice_value != '\0' && setpriority(PRIO_PROCESS, 0, atoi(nice_value)) != 0)
        perror("setpriority"); /* without CAP_SYS_NICE: stays at its nice value, printed on exit */
    int *fds = calloc(count, sizeof *fds);
    struct sockaddr_in *remotes = calloc(count, sizeof *remotes);
    srtp_t *sessions = calloc(count, sizeof *sessions); /* [2c]: unprotects from 2c, [2c+1]: protects to 2c */
    int epfd = epoll_create1(0);
    if (!fds || !remotes || !sessions || epfd < 0) { perror("setup"); return 1; }

    printf("ports");
    for (int i = 0; i < count; i++) {
        struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        local.sin_port = htons(first_port ? first_port + i : 0);
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&local, sizeof local) < 0) { perror("bind"); return 1; }
        socklen_t len = sizeof local;
        getsockname(fds[i], (struct sockaddr *)&local, &len);
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (unsigned)i };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0) { perror("epoll_ctl"); return 1; }
        printf(" %d", ntohs(local.sin_port));
    }
    printf("\n");
    fflush(stdout);
    if (srtp) {
        unsigned char key_in[46], key_out[46];
        int size = gcm == 256 ? 44 : gcm ? 28 : 30;
        load_libsrtp(gcm);
        if (!read_key(key_in, size) || !read_key(key_out, size)) {
            fprintf(stderr, "expected two %d-octet hex keys\n", size);
            return 2;
        }
        if (srtp_init() != 0) { fprintf(stderr, "srtp_init failed\n"); return 1; }
        for (int c = 0; c < calls; c++) {
            sessions[2 * c] = session(key_in, 1);
            sessions[2 * c + 1] = session(key_out, 0);
        }
    }
    for (int i = 0; i < count; i++) {
        int port;
        if (scanf("%d", &port) != 1) { fprintf(stderr, "expected %d remote ports\n", count); return 2; }
        remotes[i] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);

    static char buffers[BATCH][MAX_DATAGRAM];
    struct mmsghdr in[BATCH], out[BATCH];
    struct iovec iov_in[BATCH], iov_out[BATCH];
    struct epoll_event events[64];
    unsigned long long received = 0, sent = 0, errors = 0, wakeups = 0, gathered = 0;
    unsigned long long window_packets = 0;
    double rate = 0.0, window_start = now_seconds();
    while (!stopping) {
        int ready = epoll_wait(epfd, events, 64, 200);
        double round_start = gather > 0.0 ? now_seconds() : 0.0; /* no clock read unless it gathers */
        unsigned long long before = received;
        wakeups += ready > 0;
        if (ready < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            break;
        }
        for (int e = 0; e < ready; e++) {
            int i = (int)events[e].data.u32, j = i ^ 1;
            for (;;) {  /* drain the socket: level-triggered, but one batch per read keeps it fair */
                for (int k = 0; k < BATCH; k++) {
                    iov_in[k] = (struct iovec){ buffers[k], MAX_DATAGRAM - SRTP_ROOM };
                    in[k].msg_hdr = (struct msghdr){ .msg_iov = &iov_in[k], .msg_iovlen = 1 };
                }
                int n = recvmmsg(fds[i], in, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0) break;
                received += (unsigned)n;
                int m = 0;
                for (int k = 0; k < n; k++) {
                    int len = (int)in[k].msg_len;
                    if (srtp && (i & 1 ? srtp_protect(sessions[i], buffers[k], &len)
                                       : srtp_unprotect(sessions[i], buffers[k], &len)) != 0) {
                        errors++;
                        continue;
                    }
                    iov_out[m] = (struct iovec){ buffers[k], (size_t)len };
                    out[m].msg_hdr = (struct msghdr){ .msg_name = &remotes[j], .msg_namelen = sizeof remotes[j],
                                                      .msg_iov = &iov_out[m], .msg_iovlen = 1 };
                    m++;
                }
                int done = m ? sendmmsg(fds[j], out, (unsigned)m, 0) : 0;
                if (done < 0) { errors += (unsigned)m; } else { sent += (unsigned)done; errors += (unsigned)(m - done); }
                if (n < BATCH) break;
            }
        }
        if (gather > 0.0 && ready > 0) { /* as the engine's run() loop: its packet rate, then the wait */
            double ended = now_seconds();
            window_packets += received - before;
            if (ended - window_start >= 0.1) {
                rate = (double)window_packets / (ended - window_start);
                window_packets = 0;
                window_start = ended;
            }
            if (gather > ended - round_start && rate * gather >= 4.0) {
                double until = round_start + gather;
                struct timespec ts = { .tv_sec = (time_t)until };
                ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
                if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
                gathered++;
            }
        }
    }
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, 0);
    printf("received %llu sent %llu errors %llu nice %d wakeups %llu gathered %llu\n", received, sent, errors,
           nice_now, wakeups, gathered);
    fflush(stdout);
    return 0;
}
