/* The floor for bench/vs_rtpengine.py: a bare UDP relay in C (issue 14 goal 1).
 *
 * One thread, one epoll set, 2 x N UDP sockets on 127.0.0.1 (two legs per call). A datagram that arrives
 * on socket i leaves from socket i ^ 1 towards that socket's remote address, unchanged: what a media
 * anchor does for plain RTP pass-through, with nothing else (no parsing, no statistics, no RTCP, no SRTP).
 * Each wake-up drains a socket with recvmmsg and forwards the batch with one sendmmsg.
 *
 * Protocol on stdio (the bench drives it): it prints "ports p0 p1 ... p(2N-1)\n", then reads one line
 * per socket "<remote port>" (127.0.0.1), prints "ready\n", relays until SIGTERM or SIGINT, and prints
 * "received R sent S errors E\n" on exit.
 *
 * Build: cc -O2 -o floor_relay floor_relay.c    Run: ./floor_relay N [first-port]
 * (first-port 0 or absent: ports chosen by the kernel; else 2N consecutive ports from first-port.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define MAX_DATAGRAM 2048

static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CALLS [FIRST_PORT]\n", argv[0]);
        return 2;
    }
    int calls = atoi(argv[1]);
    int first_port = argc > 2 ? atoi(argv[2]) : 0;
    int count = 2 * calls;
    if (calls <= 0) return 2;
    int *fds = calloc(count, sizeof *fds);
    struct sockaddr_in *remotes = calloc(count, sizeof *remotes);
    int epfd = epoll_create1(0);
    if (!fds || !remotes || epfd < 0) { perror("setup"); return 1; }

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
    unsigned long long received = 0, sent = 0, errors = 0;
    while (!stopping) {
        int ready = epoll_wait(epfd, events, 64, 200);
        if (ready < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            break;
        }
        for (int e = 0; e < ready; e++) {
            int i = (int)events[e].data.u32, j = i ^ 1;
            for (;;) {  /* drain the socket: level-triggered, but one batch per read keeps it fair */
                for (int k = 0; k < BATCH; k++) {
                    iov_in[k] = (struct iovec){ buffers[k], MAX_DATAGRAM };
                    in[k].msg_hdr = (struct msghdr){ .msg_iov = &iov_in[k], .msg_iovlen = 1 };
                }
                int n = recvmmsg(fds[i], in, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0) break;
                received += (unsigned)n;
                for (int k = 0; k < n; k++) {
                    iov_out[k] = (struct iovec){ buffers[k], in[k].msg_len };
                    out[k].msg_hdr = (struct msghdr){ .msg_name = &remotes[j], .msg_namelen = sizeof remotes[j],
                                                      .msg_iov = &iov_out[k], .msg_iovlen = 1 };
                }
                int done = sendmmsg(fds[j], out, (unsigned)n, 0);
                if (done < 0) { errors += (unsigned)n; } else { sent += (unsigned)done; errors += (unsigned)(n - done); }
                if (n < BATCH) break;
            }
        }
    }
    printf("received %llu sent %llu errors %llu\n", received, sent, errors);
    fflush(stdout);
    return 0;
}
