/* What a transcoding lane does about loss and reordering (issue 35): a short reorder ring per lane that
   decodes in sequence order (gateway/media/rtp/reorder.py is the same logic for the Python path), and
   G.711 packet loss concealment after ITU-T G.711 Appendix I (gateway/media/codecs/g711_plc.py says what
   is simplified). Opus is concealed by libopus itself (decode_in_order in _fastlane_media.c). */

#include "_fastlane.h"

/* ----------------------------------------------------------------------- G.711 Appendix I */

#define PLC_PITCH_MIN 40           /* 5 ms, §I.2.2 */
#define PLC_PITCH_MAX 120          /* 15 ms */
#define PLC_CORR_LEN 160
#define PLC_TEN_MS 80
#define PLC_SILENT_AFTER (6 * PLC_TEN_MS)

static int plc_pitch(const int16_t *history) {
    const int16_t *recent = history + PLC_HISTORY - PLC_CORR_LEN;
    int best = PLC_PITCH_MAX;
    double best_score = -1.0;
    for (int period = PLC_PITCH_MIN; period <= PLC_PITCH_MAX; period++) {
        const int16_t *earlier = recent - period;
        double energy = 0.0, corr = 0.0;
        for (int i = 0; i < PLC_CORR_LEN; i++) {
            energy += (double)earlier[i] * earlier[i];
            corr += (double)recent[i] * earlier[i];
        }
        if (energy <= 0.0)
            continue;
        double score = corr / sqrt(energy);
        if (score > best_score) {
            best = period;
            best_score = score;
        }
    }
    return best;
}

/* The period of the frame after a gap by its own normalized autocorrelation (g711_plc._pitch_ahead). */
static int plc_pitch_ahead(const int16_t *frame, int n) {
    int best = PLC_PITCH_MIN, top = n - PLC_PITCH_MIN < PLC_PITCH_MAX ? n - PLC_PITCH_MIN : PLC_PITCH_MAX;
    double best_score = -2.0;
    for (int period = PLC_PITCH_MIN; period <= top; period++) {
        int span = n - period;
        double ea = 0.0, eb = 0.0, corr = 0.0;
        for (int i = 0; i < span; i++) {
            ea += (double)frame[i] * frame[i];
            eb += (double)frame[i + period] * frame[i + period];
            corr += (double)frame[i] * frame[i + period];
        }
        if (ea * eb <= 0.0)
            continue;
        double score = corr / sqrt(ea * eb);
        if (score > best_score) {
            best = period;
            best_score = score;
        }
    }
    return best;
}

/* The repeated periods (one for 10 ms, two until 20 ms, then three: §I.2.3), attenuated by 20 % per 10 ms
   from the second 10 ms (§I.2.4) unless ``attenuate`` is 0. */
static void plc_synthetic(const Plc *p, int16_t *out, int n, int attenuate) {
    for (int i = 0; i < n; i++) {
        int elapsed = p->erased + i;
        int periods = elapsed < PLC_TEN_MS ? 1 : elapsed < 2 * PLC_TEN_MS ? 2 : 3;
        int span = periods * p->pitch;
        double sample = p->history[PLC_HISTORY - span + (p->position + i) % span];
        if (elapsed >= PLC_TEN_MS && attenuate) {
            double gain = 1.0 - 0.2 * (double)(elapsed - PLC_TEN_MS) / PLC_TEN_MS;
            sample *= gain > 0.0 ? gain : 0.0;
        }
        out[i] = (int16_t)sample;
    }
}

/* ``n`` samples for an erasure; ``following`` (``following_len`` samples, or none): the good frame after
   the gap, whose first period (by its own pitch) repeated backwards is cross-faded in over the gap
   (unattenuated: at most MAX_CONCEALED_FRAMES), so the gap ends on it (g711_plc.py: the lane knows the next
   packet when it gives a gap up). */
void plc_conceal(Plc *p, int16_t *out, int n, const int16_t *following, int following_len) {
    if (p->erased == 0) {
        p->pitch = plc_pitch(p->history);
        p->position = 0;
    }
    int joined = following != NULL && following_len >= 4 * PLC_PITCH_MIN;
    if (p->erased >= PLC_SILENT_AFTER)
        memset(out, 0, (size_t)n * sizeof(int16_t));
    else
        plc_synthetic(p, out, n, !joined);
    if (joined) {
        int ahead = plc_pitch_ahead(following, following_len < 2 * PLC_CORR_LEN ? following_len : 2 * PLC_CORR_LEN);
        for (int i = 0; i < n; i++) {
            double weight = (double)(i + 1) / (n + 1);
            int k = ((i - n) % ahead + ahead) % ahead;
            out[i] = (int16_t)(out[i] * (1.0 - weight) + following[k] * weight);
        }
        p->erased = 0; /* joined: the next frame follows on without an overlap-add */
        return;
    }
    p->erased += n;
    p->position += n;
}

/* A good frame: overlap-added with the synthetic signal when it ends an erasure (§I.2.5), remembered. */
void plc_good(Plc *p, int16_t *pcm, int n) {
    if (p->erased) {
        int erased = p->erased < PLC_SILENT_AFTER ? p->erased : PLC_SILENT_AFTER;
        int extra = erased > PLC_TEN_MS ? (erased - PLC_TEN_MS) / PLC_TEN_MS * 32 : 0;
        int length = p->pitch / 4 + extra;
        if (length > PLC_TEN_MS)
            length = PLC_TEN_MS;
        if (length > n)
            length = n;
        if (p->erased < PLC_SILENT_AFTER && length > 0) {
            int16_t tail[PLC_TEN_MS];
            plc_synthetic(p, tail, length, 1);
            for (int i = 0; i < length; i++) {
                double weight = (double)(i + 1) / (length + 1);
                pcm[i] = (int16_t)(tail[i] * (1.0 - weight) + pcm[i] * weight);
            }
        }
        p->erased = 0;
    }
    if (n >= PLC_HISTORY) {
        memcpy(p->history, pcm + n - PLC_HISTORY, PLC_HISTORY * sizeof(int16_t));
    } else if (n > 0) {
        memmove(p->history, p->history + n, (size_t)(PLC_HISTORY - n) * sizeof(int16_t));
        memcpy(p->history + PLC_HISTORY - n, pcm, (size_t)n * sizeof(int16_t));
    }
}

/* ------------------------------------------------------------------------------ reorder ring */

#define REORDER_MAX_DROPOUT 3000   /* RFC 3550 §A.1 */
#define REORDER_MAX_MISORDER 100

/* A lane (re)armed for another source or codec: the order starts again after ``last_seq`` (-1: at the next
   packet), nothing concealed yet; what was held is dropped (lane_flush sends it first when it can). */
void reorder_reset(Lane *lane, int last_seq) {
    lane->held_count = 0;
    lane->has_expected = last_seq >= 0;
    lane->expected = (uint16_t)(last_seq + 1);
    lane->has_expect_out = 0;
    lane->hold = lane->hold_raised = 0.0;
    lane->has_gap = 0;
    memset(&lane->plc, 0, sizeof lane->plc);
    red_forget(lane);
}

static int find_held(const Lane *lane, uint16_t seq) {
    for (int i = 0; i < lane->held_count; i++)
        if (lane->held[i].seq == seq)
            return i;
    return -1;
}

/* Decode what is ready in order; give a gap up when its wait ran out, the ring is over full (``force``:
   one gap) or ``everything``. The number of packets sent. */
static int reorder_release(Engine *e, Core *c, int which, Lane *lane, double now, int force, int everything,
                           int *octets, uint32_t *last_out) {
    int sent = 0, lost = 0;
    while (lane->held_count > 0) {
        int i = find_held(lane, lane->expected);
        if (i >= 0) {
            Held *h = &lane->held[i];
            sent += decode_in_order(e, c, which, lane, h->ts, h->data, h->len, lost, octets, last_out);
            lane->held[i] = lane->held[--lane->held_count]; /* the ring's order does not matter */
            lane->expected++;
            lost = 0;
            continue;
        }
        double oldest = lane->held[0].arrival;
        int next = 0;
        for (int k = 1; k < lane->held_count; k++) {
            if (lane->held[k].arrival < oldest)
                oldest = lane->held[k].arrival;
            if ((int16_t)(lane->held[k].seq - lane->expected) < (int16_t)(lane->held[next].seq - lane->expected))
                next = k;
        }
        if (!(everything || force || now - oldest >= lane->hold))
            break;
        uint16_t gap = (uint16_t)(lane->held[next].seq - lane->expected);
        if (!everything) { /* (a flush's ``now`` is not a time) */
            lane->has_gap = 1;
            lane->gap_first = lane->expected;
            lane->gap_count = gap;
            if (lane->hold > 0 && now - lane->hold_raised >= REORDER_CALM) { /* calm: the wait halves */
                lane->hold = lane->hold / 2 >= REORDER_MARGIN ? lane->hold / 2 : 0.0;
                lane->hold_raised = now;
            }
        }
        lost += gap;
        lane->expected = lane->held[next].seq;
        force = 0;
    }
    return sent;
}

/* One packet of a transcoding lane: decoded at once when it is the next in order and nothing waits (no
   copy, no delay), else held; the number of packets sent. */
int reorder_push(Engine *e, Core *c, int which, Lane *lane, const Rtp *r, const uint8_t *payload, int len,
                 double now, int *octets, uint32_t *last_out) {
    if (lane->held == NULL)
        return decode_in_order(e, c, which, lane, r->ts, payload, len, 0, octets, last_out);
    if (!lane->has_expected) {
        lane->expected = r->seq;
        lane->has_expected = 1;
    }
    int sent = 0;
    int delta = (int16_t)(r->seq - lane->expected);
    if (delta >= REORDER_MAX_DROPOUT || delta < -REORDER_MAX_MISORDER) { /* RFC 3550 §A.1: a new timeline */
        sent += reorder_release(e, c, which, lane, now, 0, 1, octets, last_out);
        lane->expected = r->seq;
        delta = 0;
    } else if (delta < 0) {
        lane->late++; /* its slot was concealed or played */
        lane->tally.late++;
        if (lane->has_gap && (uint16_t)(r->seq - lane->gap_first) < lane->gap_count) {
            lane->hold = REORDER_HOLD; /* a reordering: wait for the next gaps */
            lane->hold_raised = now;
        }
        return 0;
    } else if (delta > REORDER_SLOTS) { /* further ahead than a reordering: those between are lost, no wait */
        sent += reorder_release(e, c, which, lane, now, 0, 1, octets, last_out);
        int lost = (uint16_t)(r->seq - lane->expected);
        lane->expected = (uint16_t)(r->seq + 1);
        return sent + decode_in_order(e, c, which, lane, r->ts, payload, len, lost, octets, last_out);
    }
    if (delta == 0 && lane->held_count == 0) {
        lane->expected++;
        return sent + decode_in_order(e, c, which, lane, r->ts, payload, len, 0, octets, last_out);
    }
    if (find_held(lane, r->seq) >= 0 || len > MAX_PACKET)
        return sent; /* a duplicate */
    Held *h = &lane->held[lane->held_count++];
    h->seq = r->seq;
    h->ts = r->ts;
    h->arrival = now;
    h->len = len;
    memcpy(h->data, payload, (size_t)len);
    return sent + reorder_release(e, c, which, lane, now, lane->held_count > REORDER_SLOTS, 0, octets, last_out);
}

/* Everything the lane holds, decoded now, gaps concealed (the lane is given back to Python, or re-armed
   for another source), accounted as sent by the lane. */
void lane_flush(Engine *e, Core *c, int which) {
    Lane *lane = &c->lanes[which];
    if (lane->held == NULL || lane->held_count == 0)
        return;
    int octets = 0;
    uint32_t last_out = 0;
    int sent = reorder_release(e, c, which, lane, 0.0, 0, 1, &octets, &last_out);
    if (sent) {
        lane->tally.sent += (uint64_t)sent;
        lane->tally.octets += (uint64_t)octets;
        lane->tally.last_out_ts = last_out;
    }
}
