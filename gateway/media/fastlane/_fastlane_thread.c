/* The engine thread: its rounds (epoll, recvmmsg, one packet at a time through handle), the browser's
   report compounds kept (web_rtcp), waking Python (wake_python), closed links freed (bury). */

#include "_fastlane.h"

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
    /* the gaps forwarded so far, for Python to tell the browser's own loss from the phone's (own_loss.py) */
    const Lane *lane = &c->lanes[LANE_SIP_TO_WEB];
    const Reception *rx = &lane->tally.rx;
    kept->has_upstream = lane->armed && lane->tally.owned && rx->flavour == STATS_RFC3550 && rx->max_seq >= 0;
    if (kept->has_upstream) {
        kept->upstream_ssrc = lane->tally.rx_ssrc;
        kept->upstream_lost = rx->cycles + rx->max_seq - rx->base_seq + 1 - rx->received;
    }
    c->kept_packets++;
    c->kept_octets += (uint64_t)size;
    return 0;
}

/* Whether one more RTP packet of ``lane``'s direction may wait for Python: not when Python has not drained
   since one queued PUNT_WINDOW ago (then it is dropped and counted in queue_drops). Timed by the thread's
   round, not by the packets' arrival: a thread that was itself held up reads a backlog older than the
   window, which Python has had no chance to drain. */
static int may_punt(Engine *e, Lane *lane) {
    double now = e->sent_at;
    if (lane->punted_at != e->drains) {
        lane->punted_at = e->drains;
        lane->punted_since = now;
    }
    if (now - lane->punted_since > PUNT_WINDOW) {
        e->queue_drops++;
        return 0;
    }
    return 1;
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
            if (lane_takes(&c->lanes[LANE_WEB_TO_SIP], d, &r, src, now)) {
                forward(e, c, LANE_WEB_TO_SIP, d, &r, now);
                return 0;
            }
            lane_flush(e, c, LANE_WEB_TO_SIP); /* Python takes the direction over from here */
            if (!may_punt(e, &c->lanes[LANE_WEB_TO_SIP]))
                return 0;
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
    if (lane_takes(&c->lanes[LANE_SIP_TO_WEB], d, &r, src, now)) {
        forward(e, c, LANE_SIP_TO_WEB, d, &r, now);
        return 0;
    }
    lane_flush(e, c, LANE_SIP_TO_WEB);
    if (!may_punt(e, &c->lanes[LANE_SIP_TO_WEB]))
        return 0;
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

void free_codecs(Core *c) {
    for (int i = 0; i < 2; i++) {
        Lane *lane = &c->lanes[i];
        if (lane->decoder != NULL)
            opus.decoder_destroy(lane->decoder);
        if (lane->encoder != NULL)
            opus.encoder_destroy(lane->encoder);
        lane->decoder = lane->encoder = NULL;
        free(lane->pcm);
        lane->pcm = NULL;
        free(lane->held);
        lane->held = NULL;
        lane->held_count = 0;
        free(lane->copies);
        lane->copies = NULL;
    }
}

void bury(Engine *e) {
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
   wakes at once for a lone packet. Returns how late the wait ended: when other processes keep the CPUs
   busy, a thread that sleeps gives its turn away and now and then waits for a time slice (p99 4.8-4.9 ms
   at 100 calls with both cores burnt, against 0.6 ms without the waits, and no CPU saved), so run() stops
   gathering for GATHER_PAUSE once GATHER_LATE_MAX of GATHER_SPAN waits ended GATHER_LATE late (a quiet
   machine's waits end that late a few times in a thousand), twice as long each time one of the first
   span's waits after the pause ends late too within GATHER_RECENT of it (up to GATHER_PAUSE_MAX: the
   waits that find the CPUs still busy then delay a negligible share of the packets). A lull (the rate
   under GATHER_MIN) forgets the late waits counted. */
static double gather(double until) {
    struct timespec ts;
    ts.tv_sec = (time_t)until;
    ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    return monotonic_now() - until;
}

typedef struct {
    struct mmsghdr headers[BATCH];
    struct iovec vectors[BATCH];
    struct sockaddr_storage sources[BATCH];
    union { /* each datagram's SCM_TIMESTAMPNS (arrival_of) */
        struct cmsghdr align;
        char data[CMSG_SPACE(sizeof(struct timespec))];
    } controls[BATCH];
    uint8_t buffers[BATCH][BUFFER_SIZE];
} Batch;

/* When the kernel received datagram ``h`` (SO_TIMESTAMPNS, asked at link: a wall time), on the monotonic
   clock. A round that starts late (the thread waited for its lock, or for a CPU) reads a backlog at once:
   timed by the read, each lane's next packet looked like a timestamp jump (lane_takes) and every lane of
   the engine was handed to Python at once; timed by its arrival, it is not, and the latency meter counts
   the wait. ``now`` without one, or for an arrival
   outside [now - ARRIVAL_MAX, now] (the wall clock stepped forward since wall_offset was measured, at
   most a second ago; a step back of more than JUMP_SECONDS within that second makes one jump per lane,
   which Python re-arms, as a step of the senders' clocks would). */
static double arrival_of(struct msghdr *h, double wall_offset, double now) {
    if (h->msg_flags & MSG_CTRUNC)
        return now;
    for (struct cmsghdr *m = CMSG_FIRSTHDR(h); m != NULL; m = CMSG_NXTHDR(h, m)) {
        if (m->cmsg_level != SOL_SOCKET || m->cmsg_type != SCM_TIMESTAMPNS ||
            m->cmsg_len < CMSG_LEN(sizeof(struct timespec)))
            continue;
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(m), sizeof ts);
        double at = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - wall_offset;
        return at <= now && at >= now - ARRIVAL_MAX ? at : now;
    }
    return now;
}

void *run(void *arg) {
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
    double paused_until = 0; /* no gathering before (gather: late waits) */
    uint64_t overslept = 0;  /* late waits, for e->overslept at the next round (under the lock) */
    int span = 0, late = 0;  /* waits and late ones of the current GATHER_SPAN */
    int probing = 0;         /* the span is the first after a pause */
    double pause = GATHER_PAUSE;
    if (batch != NULL) { /* recvmmsg changes only each header's msg_len, msg_namelen, msg_controllen, msg_flags */
        memset(batch->headers, 0, sizeof batch->headers);
        for (int k = 0; k < BATCH; k++) {
            batch->vectors[k].iov_base = batch->buffers[k];
            batch->vectors[k].iov_len = MAX_PACKET + 1;
            batch->headers[k].msg_hdr.msg_iov = &batch->vectors[k];
            batch->headers[k].msg_hdr.msg_iovlen = 1;
            batch->headers[k].msg_hdr.msg_name = &batch->sources[k];
            batch->headers[k].msg_hdr.msg_namelen = sizeof batch->sources[k];
            batch->headers[k].msg_hdr.msg_control = &batch->controls[k];
            batch->headers[k].msg_hdr.msg_controllen = sizeof batch->controls[k];
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
        e->overslept += overslept; /* the late waits of the last round's wait */
        overslept = 0;
        if (!e->running) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        size_t first = e->count;
        e->sent_at = now;
        double late_after = e->gather_late;
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
                double arrival = arrival_of(h, e->wall_offset, now);
                h->msg_controllen = sizeof batch->controls[k];
                if (len > MAX_PACKET || (h->msg_flags & MSG_TRUNC)) {
                    c->dropped++;
                    continue;
                }
                handle(e, c, tag->which, batch->buffers[k], (int)len, &batch->sources[k], namelen, arrival);
                if (k % 8 == 7)
                    now = e->sent_at = monotonic_now();
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
        int busy = rate * coalesce >= GATHER_MIN;
        if (!busy) /* late waits count while the thread keeps gathering, not across quiet spells */
            span = late = probing = 0;
        int gathering = n > 0 && coalesce > round && busy && ended >= paused_until;
        if (gathering)
            e->coalesced++;
        pthread_mutex_unlock(&e->lock);
        if (gathering) {
            if (gather(round_start + coalesce) > late_after) {
                overslept++;
                late++;
            }
            /* busy CPUs: no waits for a while, longer if they stay busy; the first span after a pause
               tells at its first late wait */
            if (late >= (probing ? 1 : GATHER_LATE_MAX)) {
                double at = round_start + coalesce;
                int again = paused_until > 0 && at - paused_until < GATHER_RECENT;
                pause = !again ? GATHER_PAUSE : pause * 2 < GATHER_PAUSE_MAX ? pause * 2 : GATHER_PAUSE_MAX;
                paused_until = at + pause;
                span = late = 0;
                probing = 1;
            } else if (++span >= GATHER_SPAN) {
                span = late = probing = 0;
            }
        }
    }
    free(batch);
    return NULL;
}
