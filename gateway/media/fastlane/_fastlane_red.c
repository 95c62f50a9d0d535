/* RFC 2198 redundant audio in the lanes (issue 35): what gateway/media/forward.py and aiortc_direct.py do
   with ``audio/red`` over Opus on the Python path, natively, so that a call with Chrome's RED stays here.

   In (a lane armed with ``red_in``, the primary's payload type): each RED payload is unwrapped (red_unpack,
   the format of gateway/media/rtp/red.py). A malformed one is dropped and counted (Tally.malformed); one
   whose primary is another payload type never reaches the lane (lane_takes leaves it to Python). The
   primary is the lane's packet. Pass-through: the packets lost just before it that its redundant blocks
   restore go out first, each with its own sequence number and timestamp (red_restore: the k-th newest block
   is packet seq - k, as MediaPath._restore); the far end never sees RED. Transcoding: the redundant blocks
   are kept by timestamp (red_keep) and a gap the reorder ring gives up is filled from them before in-band
   FEC or PLC (red_conceal, called by decode_in_order); a lost frame without a copy takes the in-band FEC of
   the next one's (red_copy). Restored packets count in Tally.recovered.

   Out (``red_out``, towards the browser while aiortc_direct's red_active): each audio payload the lane
   sends goes out in RED with the previous one as its redundant block (lane_emit; red.pack's layout). */

#include "_fastlane.h"

/* The blocks of a RED payload of a packet stamped ``ts``, oldest first and the primary last (``blocks``
   holds RED_MAX_BLOCKS + 1); 0 when malformed: truncated headers, a block running past the end, no
   primary, too many headers (red.unpack). */
int red_unpack(const uint8_t *payload, int size, uint32_t ts, RedBlock *blocks) {
    int count = 0, pos = 0;
    for (;;) {
        if (pos >= size || count > RED_MAX_BLOCKS)
            return 0;
        uint8_t first = payload[pos];
        if (!(first & 0x80)) { /* the primary's one-octet header (F=0) */
            blocks[count].pt = first & 0x7F;
            blocks[count].ts = ts;
            blocks[count].len = -1;
            count++;
            pos++;
            break;
        }
        if (pos + 4 > size)
            return 0;
        uint32_t word = ((uint32_t)payload[pos + 1] << 16) | ((uint32_t)payload[pos + 2] << 8) | payload[pos + 3];
        blocks[count].pt = first & 0x7F;
        blocks[count].ts = ts - (word >> 10);
        blocks[count].len = (int)(word & RED_MAX_BLOCK);
        count++;
        pos += 4;
    }
    for (int i = 0; i < count; i++) {
        int len = blocks[i].len < 0 ? size - pos : blocks[i].len;
        if (pos + len > size)
            return 0;
        blocks[i].offset = pos;
        blocks[i].len = len;
        pos += len;
    }
    return count;
}

/* The primary's payload type of a RED payload, -1 when it is malformed. */
int red_primary(const uint8_t *payload, int size) {
    RedBlock blocks[RED_MAX_BLOCKS + 1];
    int count = red_unpack(payload, size, 0, blocks);
    return count > 0 ? blocks[count - 1].pt : -1;
}

/* A redundant block worth keeping: the primary's codec, not empty. */
static int usable(const RedBlock *block, const RedBlock *primary) {
    return block->pt == primary->pt && block->len > 0;
}

/* Pass-through: the packets lost just before ``r`` (after the last one counted) that its redundant blocks
   restore, sent oldest first with their own (mapped) sequence numbers and timestamps; how many were sent. */
int red_restore(Engine *e, Core *c, int which, Lane *lane, const Rtp *r, const uint8_t *payload,
                const RedBlock *blocks, int count, int *octets) {
    int32_t previous = lane->tally.last_seq;
    int missing = previous >= 0 ? (int)(((int32_t)r->seq - previous) & 0xFFFF) - 1 : 0;
    if (missing <= 0 || missing >= MAX_DROPOUT) /* none lost, or a late packet, or a jump */
        return 0;
    const RedBlock *primary = &blocks[count - 1];
    int older[RED_MAX_BLOCKS + 1], n = 0;
    for (int i = 0; i < count - 1; i++)
        if (usable(&blocks[i], primary) && (int32_t)(r->ts - blocks[i].ts) > 0)
            older[n++] = i;
    int chosen = n < missing ? n : missing; /* the newest ones */
    int sent = 0;
    for (int k = 0; k < chosen; k++) {
        const RedBlock *b = &blocks[older[n - chosen + k]];
        uint16_t seq_in = (uint16_t)(r->seq - chosen + k);
        int seq = map_sequence(&lane->seqmap, r->ssrc, seq_in, c->out[which].seq);
        if (lane_emit(e, c, which, lane, 0, seq, map_timestamp(lane, b->ts), payload + b->offset, b->len, octets) >=
            0) {
            sent++;
            lane->tally.recovered++;
        } else {
            lane->codec_errors++;
        }
    }
    return sent;
}

/* The redundant copy kept of the frame stamped ``ts`` (input clock), NULL when there is none. */
static RedCopy *find_copy(const Lane *lane, uint32_t ts) {
    if (lane->copies == NULL)
        return NULL;
    for (int k = 0; k < RED_COPIES; k++)
        if (lane->copies[k].len > 0 && lane->copies[k].ts == ts)
            return &lane->copies[k];
    return NULL;
}

/* Transcoding: the redundant blocks of a packet, kept by timestamp for a gap before it (a copy of the same
   timestamp replaced, else the oldest). */
void red_keep(Lane *lane, const uint8_t *payload, const RedBlock *blocks, int count) {
    if (lane->copies == NULL)
        return;
    for (int i = 0; i < count - 1; i++) {
        const RedBlock *b = &blocks[i];
        if (!usable(b, &blocks[count - 1]) || b->len > RED_MAX_BLOCK)
            continue;
        RedCopy *slot = find_copy(lane, b->ts);
        if (slot == NULL) {
            slot = &lane->copies[lane->copies_next];
            lane->copies_next = (lane->copies_next + 1) % RED_COPIES;
        }
        slot->ts = b->ts;
        slot->len = b->len;
        memcpy(slot->data, payload + b->offset, (size_t)b->len);
    }
}

/* A lost 20 ms Opus frame stamped ``ts`` (input clock) decoded from its redundant copy into the lane's PCM,
   the copy used up; 0 when there is none or it does not decode to one frame (FEC or PLC then). */
int red_conceal(Lane *lane, uint32_t ts) {
    if (lane->copies == NULL || lane->codec_in != CODEC_OPUS || PCM_CAPACITY - lane->pcm_len < PCM_FRAME)
        return 0;
    RedCopy *copy = find_copy(lane, ts);
    if (copy == NULL)
        return 0;
    int got = opus.decode(lane->decoder, copy->data, copy->len, lane->pcm + lane->pcm_len, PCM_FRAME, 0);
    copy->len = 0;
    if (got != PCM_FRAME)
        return 0;
    lane->pcm_len += PCM_FRAME;
    lane->tally.recovered++;
    return 1;
}

/* The redundant copy kept of the frame stamped ``ts`` (input clock), left in place, and its length; NULL when
   there is none. A lost frame's copy carries the frame before it in its in-band FEC (Chrome's RED repeats
   whole Opus packets): decode_in_order takes it for that one when it has no copy of its own. */
const uint8_t *red_copy(const Lane *lane, uint32_t ts, int *len) {
    const RedCopy *copy = find_copy(lane, ts);
    if (copy == NULL)
        return NULL;
    *len = copy->len;
    return copy->data;
}

/* Another source or codec: no copy of it applies, and no previous payload goes out as redundancy. */
void red_forget(Lane *lane) {
    if (lane->copies != NULL)
        for (int k = 0; k < RED_COPIES; k++)
            lane->copies[k].len = 0;
    lane->copies_next = 0;
    lane->previous_len = -1;
}

/* emit_seq for the lane's audio (``seq`` -1: the output's next): in RED when ``red_out`` (the previous
   payload as its one redundant block when its offset and length fit: red.pack), else as it is; the octets
   sent are added to ``octets``. */
int lane_emit(Engine *e, Core *c, int which, Lane *lane, int marker, int seq, uint32_t ts, const uint8_t *payload,
              int len, int *octets) {
    if (lane->red_out < 0) {
        int used = emit_seq(e, c, which, &lane->destination, marker, lane->pt_out, seq, ts, payload, len);
        if (used >= 0)
            *octets += len;
        return used;
    }
    uint8_t wrapped[MAX_PACKET];
    int pos = 0;
    uint32_t offset = ts - lane->previous_ts;
    if (lane->previous_len >= 0 && offset > 0 && offset <= RED_MAX_OFFSET) {
        uint32_t word = (offset << 10) | (uint32_t)lane->previous_len;
        wrapped[0] = (uint8_t)(0x80 | lane->pt_out);
        wrapped[1] = (uint8_t)(word >> 16);
        wrapped[2] = (uint8_t)(word >> 8);
        wrapped[3] = (uint8_t)word;
        pos = 4;
    }
    wrapped[pos++] = lane->pt_out & 0x7F;
    int size = pos + (pos > 1 ? lane->previous_len : 0) + len;
    if (len < 0 || size > MAX_PACKET)
        return -1;
    if (pos > 1) {
        memcpy(wrapped + pos, lane->previous, (size_t)lane->previous_len);
        pos += lane->previous_len;
    }
    memcpy(wrapped + pos, payload, (size_t)len);
    if (len <= RED_MAX_BLOCK) { /* the next packet's redundancy (a longer one is left out: 10 bits) */
        memcpy(lane->previous, payload, (size_t)len);
        lane->previous_len = len;
        lane->previous_ts = ts;
    } else {
        lane->previous_len = -1;
    }
    int used = emit_seq(e, c, which, &lane->destination, marker, (uint8_t)lane->red_out, seq, ts, wrapped, size);
    if (used >= 0)
        *octets += size;
    return used;
}

/* red_previous(which[, ts, payload]) -> (ts, payload) or None: the payload lane ``which`` sends as the next
   RED packet's redundant block, set first when given (the sender's, handed over at arm and back at sync). */
PyObject *link_red_previous(Link *self, PyObject *args) {
    int which;
    unsigned long ts = 0;
    Py_buffer payload = {NULL};
    if (!PyArg_ParseTuple(args, "i|ky*", &which, &ts, &payload))
        return NULL;
    int given = payload.buf != NULL, len = given ? (int)payload.len : -1;
    if (which < 0 || which > 1 || len > RED_MAX_BLOCK) {
        if (given)
            PyBuffer_Release(&payload);
        PyErr_SetString(PyExc_ValueError, "which is 0 or 1, a redundant block at most 1023 bytes");
        return NULL;
    }
    Core *c = self->core;
    if (c == NULL) {
        if (given)
            PyBuffer_Release(&payload);
        PyErr_SetString(PyExc_ValueError, "the link is closed");
        return NULL;
    }
    uint8_t data[RED_MAX_BLOCK];
    pthread_mutex_lock(&self->engine->lock);
    Lane *lane = &c->lanes[which];
    if (given) {
        memcpy(lane->previous, payload.buf, (size_t)len);
        lane->previous_len = len;
        lane->previous_ts = (uint32_t)ts;
    }
    len = lane->previous_len;
    ts = lane->previous_ts;
    if (len > 0)
        memcpy(data, lane->previous, (size_t)len);
    pthread_mutex_unlock(&self->engine->lock);
    if (given)
        PyBuffer_Release(&payload);
    if (len < 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(ky#)", ts, (const char *)data, (Py_ssize_t)len);
}
