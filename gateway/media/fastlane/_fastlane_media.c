/* The engine thread's per-packet work: the queue for Python, each lane's accounting (receive
   statistics, RFC 3550 A.1/A.3/A.8 and aiortc's), forwarding and transcoding one packet; the statistics'
   exchange with Python (Link.snapshot, replay). */

#include "_fastlane.h"

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

int punt(Engine *e, Core *c, uint8_t kind, const uint8_t *data, int len, const struct sockaddr_storage *src,
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

void free_items(Item *items, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(items[i].data);
}

/* -------------------------------------------------------------------------------------- accounting */



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

void reception_update(Reception *s, uint16_t seq, uint32_t ts, double arrival, double wall_offset) {
    if (s->flavour == STATS_AIORTC)
        reception_aiortc(s, seq, ts, arrival + wall_offset);
    else
        reception_rfc3550(s, seq, ts, arrival);
}

/* One forwarded packet, accounted as MediaPath.forward_audio/feed, the input leg's receive statistics and
   the output leg's sender counters would account for it on the Python path (``malformed``: RED it dropped). */
static void tally_packet(Engine *e, Lane *lane, const Rtp *r, double now, int sent, int octets, uint32_t mapped,
                         uint32_t last_out, int malformed) {
    Tally *t = &lane->tally;
    reception_update(&t->rx, r->seq, r->ts, now, e->wall_offset);
    if (t->last_seq >= 0) { /* forward.MediaPath._count_loss */
        int32_t gap = ((int32_t)r->seq - t->last_seq) & 0xFFFF;
        if (gap != 0 && gap <= 0x8000) {
            if (gap < MAX_DROPOUT) {
                t->lost += (uint64_t)(gap - 1);
                t->gaps += gap > 1;
            }
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
    if (malformed)
        t->malformed++;
    else if (lane->codec_in != CODEC_PASS)
        t->transcoded++;
    if (sent) {
        /* a clock read per packet only for a latency meter (Engine.latency); the senders' reports
           extrapolate their RTP timestamps from the departure, for which the round's time does (not the
           packet's arrival: take_back forwards packets that waited in the queue) */
        double departure = e->latency ? monotonic_now() : e->sent_at;
        t->forwarded++;
        t->sent += (uint64_t)sent;
        t->octets += (uint64_t)octets;
        t->last_out_ts = last_out;
        t->last_departure = departure;
        if (e->latency)
            t->latency[t->latency_count++ % LATENCY_SAMPLES] = (float)(departure - now);
    }
}

/* -------------------------------------------------------------------------------------- forwarding */

/* RFC 3550 §5.1: header, CSRCs, extension and padding; 0 when malformed. */
int parse_rtp(const uint8_t *d, int len, Rtp *r) {
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
int write_header(uint8_t *out, const Output *o, int marker, uint8_t pt, uint16_t seq, uint32_t ts) {
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
int emit(Engine *e, Core *c, int which, const Address *to, int marker, uint8_t pt, uint32_t ts,
         const uint8_t *payload, int payload_len) {
    return emit_seq(e, c, which, to, marker, pt, -1, ts, payload, payload_len);
}

/* seqmap.SequenceMap.map: the output sequence number of input ``seq`` of ``ssrc``, the output's next
   being ``next``. */
int map_sequence(SeqMap *m, uint32_t ssrc, uint16_t seq, uint16_t next) {
    if (m->ssrc != (int64_t)ssrc)
        goto resync; /* a new source continues the output without a gap */
    uint16_t delta = (uint16_t)(seq - m->highest);
    if (delta == 0 || delta >= SEQ_MOD - MAX_MISORDER) /* a duplicate or a late packet */
        return (uint16_t)(seq + m->offset);
    if (delta < MAX_DROPOUT) { /* in order, maybe after a gap (kept) */
        m->highest = seq;
        uint16_t out = (uint16_t)(seq + m->offset);
        if ((uint16_t)(out - next) >= 0x8000) { /* the sender's own packets took these numbers */
            m->offset = (uint16_t)(next - seq);
            out = next;
        }
        return out;
    }
    if ((int32_t)seq == m->bad) /* RFC 3550 A.1: two sequential packets after a jump */
        goto resync;
    m->bad = (uint16_t)(seq + 1);
    return next;
resync:
    m->ssrc = ssrc;
    m->offset = (uint16_t)(next - seq);
    m->highest = seq;
    m->bad = -1;
    return next;
}

/* emit with sequence number ``seq`` (-1: the output's next); the output's next moves past it when it is
   ahead (seqmap.advance). */
int emit_seq(Engine *e, Core *c, int which, const Address *to, int marker, uint8_t pt, int seq_in, uint32_t ts,
             const uint8_t *payload, int payload_len) {
    uint8_t buffer[BUFFER_SIZE];
    Output *o = &c->out[which];
    if (payload_len < 0 || 12 + o->extension_len + payload_len > MAX_PACKET)
        return -1;
    uint16_t seq = seq_in < 0 ? o->seq : (uint16_t)seq_in;
    int len = write_header(buffer, o, marker, pt, seq, ts);
    memcpy(buffer + len, payload, (size_t)payload_len);
    len += payload_len;
    if (which == LANE_SIP_TO_WEB) {
        if (c->tx == NULL || e->fn[OP_PROTECT](c->tx, buffer, &len) != 0)
            return -1;
    } else if (c->sip_tx != NULL && e->fn[OP_PROTECT](c->sip_tx, buffer, &len) != 0) {
        return -1;
    }
    if ((uint16_t)(seq - o->seq) < 0x8000)
        o->seq = (uint16_t)(seq + 1);
    if (sendto(c->fds[which == LANE_SIP_TO_WEB ? 0 : 1], buffer, (size_t)len, MSG_DONTWAIT,
               (const struct sockaddr *)&to->addr, to->len) < 0)
        c->lanes[which].send_errors++;
    return seq;
}

/* Whether ``r`` (in datagram ``d``) may take lane ``lane`` (which it disarms when not). RED around another
   payload type than the lane's is Python's; malformed RED is the lane's to drop (_fastlane_red.c). */
/* A primed lane's first packet (see Lane.primed): armed with its SSRC and timestamp when it is the one
   expected, else unprimed (Python decides); whether it is armed now. */
static int self_arm(Lane *lane, const Rtp *r, const struct sockaddr_storage *src, int primary, double now) {
    lane->primed = 0;
    if (r->pt != lane->pt_in || !same_address(&lane->source, src) || (lane->red_in >= 0 && primary != lane->red_in))
        return 0;
    lane->ssrc = r->ssrc;
    lane->anchor_in = lane->last_ts = r->ts;
    /* the output timeline ran on the clock since it was primed at last_time (retime.now_out: the fill's
       frames went out on it meanwhile; 0: not timed); a packet read in a backlog may predate that */
    if (lane->last_time > 0 && now > lane->last_time)
        lane->anchor_out += (uint32_t)llround((now - lane->last_time) * (double)lane->out_rate);
    lane->last_time = now;
    lane->tally.rx_ssrc = r->ssrc;
    lane->tally.owned = 1; /* the statistics primed (fresh): the thread's from here */
    lane->tally.armed_from = lane->source;
    lane->armed = lane->self_armed = 1;
    lane->self_arms++;
    return 1;
}

int lane_takes(Lane *lane, const uint8_t *d, const Rtp *r, const struct sockaddr_storage *src, double now) {
    if (!lane->armed && !lane->primed)
        return 0;
    int primary = lane->red_in >= 0 ? red_primary(d + r->payload, r->end - r->payload) : -1;
    if (!lane->armed && !self_arm(lane, r, src, primary, now))
        return 0;
    if (r->ssrc == lane->ssrc && r->pt == lane->pt_in && same_address(&lane->source, src) &&
        (primary < 0 || primary == lane->red_in)) {
        double media = (double)(int32_t)(r->ts - lane->last_ts) / (double)lane->in_rate;
        if (fabs(media - (now - lane->last_time)) <= JUMP_SECONDS)
            return 1;
        lane->jumps++;
    } else {
        lane->strangers++;
    }
    lane->armed = 0; /* Python decides about this packet and re-arms */
    return 0;
}

uint32_t map_timestamp(const Lane *lane, uint32_t ts) {
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

/* Encode each whole 20 ms frame of the lane's PCM and send it, stamped from ``mapped`` (the output timeline
   position of the PCM's first new sample); the number of packets sent. */
static int encode_frames(Engine *e, Core *c, int which, Lane *lane, uint32_t mapped, int *octets,
                         uint32_t *last_out) {
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
        if (lane_emit(e, c, which, lane, 0, -1, ts, out, out_len, octets) >= 0) {
            sent++;
            *last_out = ts;
        }
    }
    lane->pcm_len -= done;
    memmove(lane->pcm, lane->pcm + done, (size_t)lane->pcm_len * sizeof(int16_t));
    return sent;
}

/* One lost 20 ms Opus frame as PCM: from ``following``'s in-band FEC (RFC 6716 §2.1.7; libopus does PLC
   when it carries none) or libopus's PLC. 0 when it could not. */
static int conceal_opus(Lane *lane, const uint8_t *following, int len) {
    if (PCM_CAPACITY - lane->pcm_len < PCM_FRAME)
        return 0;
    int got = opus.decode(lane->decoder, following, following != NULL ? len : 0, lane->pcm + lane->pcm_len,
                          PCM_FRAME, following != NULL);
    if (got != PCM_FRAME)
        return 0;
    lane->pcm_len += PCM_FRAME;
    return 1;
}

/* Decode one packet in sequence order (after ``lost`` given up just before it, concealed here) to 8 kHz
   PCM, encode each whole 20 ms frame and send it; the number of packets sent. Output timestamps follow the
   input's timeline: a concealed frame takes the lost one's slot, and a gap left unconcealed (silence
   suppression, a burst beyond MAX_CONCEALED_FRAMES) moves the output on by as much. */
int decode_in_order(Engine *e, Core *c, int which, Lane *lane, uint32_t ts, const uint8_t *payload, int len,
                    int lost, int *octets, uint32_t *last_out) {
    uint32_t mapped = map_timestamp(lane, ts);
    int64_t gap = lane->has_expect_out ? (int64_t)(int32_t)(mapped - lane->expect_out) : 0;
    int sent = 0;
    if (lost > 0 && gap > 0 && gap <= MAX_CONCEALED_FRAMES * lane->frame_ticks) {
        int frames = (int)((gap + lane->frame_ticks / 2) / lane->frame_ticks);
        int16_t g711[MAX_CONCEALED_FRAMES * PCM_FRAME];
        if (lane->codec_in != CODEC_OPUS) { /* G.711 Appendix I over the whole gap, joined to this packet */
            int16_t next[PCM_FRAME];
            int n = len < PCM_FRAME ? len : PCM_FRAME;
            const int16_t *table = g711_decode[lane->codec_in == CODEC_PCMA];
            for (int i = 0; i < n; i++)
                next[i] = table[payload[i]];
            plc_conceal(&lane->plc, g711, frames * PCM_FRAME, next, n);
        }
        /* the input clock's frame (a lost frame's RED copy is found by its input timestamp) */
        uint32_t ticks_in = (uint32_t)(lane->frame_ticks * lane->in_rate / lane->out_rate);
        for (int i = 0; i < frames; i++) {
            if (lane->codec_in == CODEC_OPUS) {
                uint32_t lost_ts = ts - (uint32_t)(frames - i) * ticks_in;
                /* its FEC: in the packet after the gap for the last frame, else in the next frame's RED copy */
                int next_len = len;
                const uint8_t *next = i == frames - 1 ? (len > 0 ? payload : NULL)
                                                      : red_copy(lane, lost_ts + ticks_in, &next_len);
                if (!red_conceal(lane, lost_ts) && !conceal_opus(lane, next, next_len) &&
                    (next == NULL || !conceal_opus(lane, NULL, 0))) /* a copy that does not decode: PLC */
                    break;
            } else {
                if (PCM_CAPACITY - lane->pcm_len < PCM_FRAME)
                    break;
                memcpy(lane->pcm + lane->pcm_len, g711 + i * PCM_FRAME, PCM_FRAME * sizeof(int16_t));
                lane->pcm_len += PCM_FRAME;
            }
            lane->concealed++;
            gap -= lane->frame_ticks;
            sent += encode_frames(e, c, which, lane, (uint32_t)(lane->expect_out + i * lane->frame_ticks),
                                  octets, last_out);
        }
    }
    if (gap != 0 && lane->has_next) {
        if (gap > 0)
            lane->next_ts = (uint32_t)(lane->next_ts + gap); /* the input moved on by more than it sent */
        else
            lane->has_next = 0;
    }
    int got;
    if (lane->codec_in == CODEC_OPUS) {
        got = len > 0 ? opus.decode(lane->decoder, payload, len, lane->pcm + lane->pcm_len,
                                    PCM_CAPACITY - lane->pcm_len, 0)
                      : -1;
        if (got < 0) {
            lane->codec_errors++;
            return sent;
        }
    } else {
        const int16_t *table = g711_decode[lane->codec_in == CODEC_PCMA];
        if (len > PCM_CAPACITY - lane->pcm_len) {
            lane->codec_errors++;
            return sent;
        }
        int16_t *pcm = lane->pcm + lane->pcm_len;
        for (int i = 0; i < len; i++)
            pcm[i] = table[payload[i]];
        plc_good(&lane->plc, pcm, len);
        got = len;
    }
    lane->pcm_len += got;
    lane->expect_out = (uint32_t)(mapped + (int64_t)got * lane->out_rate / 8000);
    lane->has_expect_out = 1;
    return sent + encode_frames(e, c, which, lane, mapped, octets, last_out);
}

void forward(Engine *e, Core *c, int which, const uint8_t *d, const Rtp *r, double now) {
    Lane *lane = &c->lanes[which];
    uint32_t mapped = map_timestamp(lane, r->ts);
    const uint8_t *payload = d + r->payload;
    int len = r->end - r->payload, octets = 0, sent = 0;
    uint32_t last_out = mapped;
    lane->last_ts = r->ts;
    lane->last_time = now;
    RedBlock blocks[RED_MAX_BLOCKS + 1];
    int count = 0, restored = 0;
    if (lane->red_in >= 0) { /* RFC 2198: the primary is the lane's packet (_fastlane_red.c) */
        count = red_unpack(payload, len, r->ts, blocks);
        if (count == 0 || blocks[count - 1].pt != lane->red_in) {
            tally_packet(e, lane, r, now, 0, 0, mapped, last_out, 1);
            return;
        }
        if (lane->codec_in == CODEC_PASS)
            restored = red_restore(e, c, which, lane, r, payload, blocks, count, &octets);
        else
            red_keep(lane, payload, blocks, count);
        payload += blocks[count - 1].offset;
        len = blocks[count - 1].len;
    }
    if (lane->codec_in == CODEC_PASS) {
        int seq = map_sequence(&lane->seqmap, r->ssrc, r->seq, c->out[which].seq);
        if (lane_emit(e, c, which, lane, r->marker, seq, mapped, payload, len, &octets) >= 0)
            sent = 1;
        else
            lane->codec_errors++; /* too long, or SRTP refused it */
    } else {
        sent = reorder_push(e, c, which, lane, r, payload, len, now, &octets, &last_out);
    }
    if (sent || restored)
        lane->forwarded++;
    tally_packet(e, lane, r, now, sent + restored, octets, mapped, last_out, 0);
    lane->tally.forwarded += (uint64_t)restored; /* (as MediaPath counts them: forwarded and recovered) */
}

/* ----------------------------------------------------------------------------- receive statistics */

/* (received, base_seq, max_seq, bad_seq, cycles, transit or None, last arrival or None, last timestamp,
   jitter): rtp_stats.ReceptionState; -1 for a sequence number not seen yet. */
PyObject *reception_tuple(const Reception *r) {
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
int parse_reception(PyObject *state, int flavour, long long clock_rate, Reception *out) {
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

PyObject *replay(PyObject *module, PyObject *args) {
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
