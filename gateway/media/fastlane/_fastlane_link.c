/* Link, one call's two sockets in the engine: the Python type and its methods (arm, disarm, snapshot,
   SRTP for Python, the browser's reports, ICE consent answers). */

#include "_fastlane.h"

/* ------------------------------------------------------------------------------------------ Link */

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
    for (int i = 0; i < 2; i++) /* the video lanes' guards: the thread no longer sends on this link */
        if (self->guarded[i]) {
            self->guarded[i] = 0;
            PyBuffer_Release(&self->guards[i]);
        }
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
    if (lane->held == NULL && (lane->held = malloc((REORDER_SLOTS + 1) * sizeof(Held))) == NULL)
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
        if (lane->loss_set) { /* the browser reported loss before the encoder was made (link_opus_loss) */
            opus.encoder_ctl(lane->encoder, OPUS_SET_INBAND_FEC_REQUEST, (int32_t)lane->loss_fec);
            opus.encoder_ctl(lane->encoder, OPUS_SET_PACKET_LOSS_PERC_REQUEST, (int32_t)lane->loss_percent);
        }
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
void taken(Item *item) {
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
    e->sent_at = monotonic_now();
    for (size_t i = 0; i < e->count && lane->armed; i++) {
        Item *item = &e->items[i];
        Rtp r;
        if (!queued_rtp(c, which, item, &r))
            continue;
        if (!lane_takes(lane, item->data, &r, &item->source.addr, item->arrival)) {
            lane_flush(e, c, which);
            break;
        }
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
    int flavour = STATS_RFC3550, last_seq = -1, red_in = -1, red_out = -1, primed = 0;
    long long stats_rate = 8000;
    PyObject *stats = Py_None;
    if (!PyArg_ParseTuple(args, "iOOkiikkLLkdiiLLL|iLOiiip", &which, &source, &destination, &ssrc, &pt_in,
                          &pt_out, &anchor_in, &anchor_out, &in_rate, &out_rate, &last_ts, &last_time, &codec_in,
                          &codec_out, &next_ts, &tolerance, &frame_ticks, &flavour, &stats_rate, &stats, &last_seq,
                          &red_in, &red_out, &primed))
        return NULL;
    if (red_in < -1 || red_in > 127 || red_in == pt_in || red_out < -1 || red_out > 127 ||
        (red_out >= 0 && red_out == pt_out)) {
        PyErr_SetString(PyExc_ValueError, "red_in and red_out are -1 or payload types other than the lane's");
        return NULL;
    }
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
    if (primed && lane->self_armed) {
        /* the thread armed it on its first packet since Python looked (and may have disarmed it since): its
           tally and anchors stay for Python's next snapshot. Kept armed only as asked; else the next packet
           goes to Python, which syncs and arms the lane anew */
        int same = lane->armed && lane->pt_in == pt_in && lane->pt_out == pt_out && lane->codec_in == codec_in &&
                   lane->codec_out == codec_out && lane->in_rate == in_rate && lane->out_rate == out_rate &&
                   lane->red_in == red_in && lane->red_out == red_out &&
                   same_address(&lane->source, &src.addr) && same_address(&lane->destination, &dst.addr);
        lane->armed = same;
        lane->primed = 0;
        pthread_mutex_unlock(&self->engine->lock);
        return PyBool_FromLong(same);
    }
    /* re-armed for the same source and codecs: the thread's timeline (last packet, next frame) is newer
       than what Python last read, and stays */
    int continuing = !primed && lane->armed && lane->ssrc == (uint32_t)ssrc && lane->pt_in == pt_in &&
                     lane->codec_in == codec_in && lane->codec_out == codec_out && lane->in_rate == in_rate &&
                     lane->out_rate == out_rate && lane->anchor_in == (uint32_t)anchor_in &&
                     lane->anchor_out == (uint32_t)anchor_out;
    lane->armed = lane->primed = 0; /* a packet meanwhile waits for Python (and then keeps it from priming) */
    pthread_mutex_unlock(&self->engine->lock);
    if (transcoding && !prepare_codecs(lane, codec_in, codec_out)) {
        PyErr_SetString(PyExc_RuntimeError, "libopus could not create a codec state");
        return NULL;
    }
    /* RFC 2198 copies for the decoder (zeroed: none kept); the thread does not use them until armed */
    if (transcoding && red_in >= 0 && lane->copies == NULL &&
        (lane->copies = calloc(RED_COPIES, sizeof(RedCopy))) == NULL)
        return PyErr_NoMemory();
    pthread_mutex_lock(&self->engine->lock);
    if (!continuing)
        lane_flush(self->engine, c, which); /* what the lane held for reordering, before it changes */
    lane->source = src;
    lane->destination = dst;
    lane->ssrc = (uint32_t)ssrc;
    lane->pt_in = (uint8_t)pt_in;
    lane->pt_out = (uint8_t)pt_out;
    lane->anchor_in = (uint32_t)anchor_in;
    lane->anchor_out = (uint32_t)anchor_out;
    lane->in_rate = in_rate;
    lane->out_rate = out_rate;
    lane->red_in = red_in;
    lane->red_out = red_out;
    if (!continuing) {
        lane->last_ts = (uint32_t)last_ts;
        lane->last_time = last_time;
        lane->has_next = next_ts >= 0;
        lane->next_ts = (uint32_t)(next_ts >= 0 ? next_ts : 0);
    }
    if (lane->codec_in != codec_in || lane->codec_out != codec_out)
        lane->pcm_len = 0;
    if (!continuing)
        reorder_reset(lane, last_seq); /* Python decoded up to ``last_seq`` */
    lane->codec_in = codec_in;
    lane->codec_out = codec_out;
    lane->tolerance = tolerance;
    lane->frame_ticks = frame_ticks;
    Tally *t = &lane->tally;
    lane->self_armed = 0;
    if (primed) {
        /* the first packet arms it (self_arm), unless one of this direction waits for Python already */
        t->rx = imported;
        t->last_seq = -1;
        t->rx_ssrc = 0;
        t->owned = 1;
        lane->armed = 0;
        lane->primed = lane->punted_at != self->engine->drains;
        pthread_mutex_unlock(&self->engine->lock);
        Py_RETURN_FALSE;
    }
    lane->primed = 0;
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
        c->lanes[which].disarms += (uint32_t)c->lanes[which].armed;
        c->lanes[which].armed = c->lanes[which].primed = c->lanes[which].self_armed = 0;
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
    int seq_in = -1; /* a forwarded packet's mapped sequence number (seqmap); -1: the output's next */
    if (!PyArg_ParseTuple(args, "iOpiky*|i", &which, &destination, &marker, &pt, &ts, &payload, &seq_in))
        return NULL;
    PyObject *result = NULL;
    Address dst;
    if (which < 0 || which > 1 || pt < 0 || pt > 127 || seq_in < -1 || seq_in > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "which is 0 or 1, payload type 0-127, seq -1 or 16 bits");
    } else if (parse_address(destination, &dst)) {
        Core *c = self->core;
        if (c == NULL) {
            PyErr_SetString(PyExc_ValueError, "the link is closed");
        } else {
            pthread_mutex_lock(&self->engine->lock);
            int seq = emit_seq(self->engine, c, which, &dst, marker, (uint8_t)pt, seq_in, (uint32_t)ts,
                               payload.buf, (int)payload.len);
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
        kept[i].has_upstream = c->kept[i].has_upstream;
        kept[i].upstream_ssrc = c->kept[i].upstream_ssrc;
        kept[i].upstream_lost = c->kept[i].upstream_lost;
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
        PyObject *upstream = k->has_upstream ? Py_BuildValue("(kL)", (unsigned long)k->upstream_ssrc,
                                                             (long long)k->upstream_lost)
                                             : Py_NewRef(Py_None);
        PyObject *item = upstream == NULL ? NULL
                                          : Py_BuildValue("(dy#N)", k->arrival, (const char *)k->data,
                                                          (Py_ssize_t)k->len, upstream);
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

static PyObject *link_disarms(Link *self, PyObject *unused) {
    Core *c = self->core;
    unsigned long v[6] = {0, 0, 0, 0, 0, 0};
    if (c != NULL) {
        pthread_mutex_lock(&self->engine->lock);
        for (int i = 0; i < 2; i++) {
            v[3 * i] = c->lanes[i].jumps;
            v[3 * i + 1] = c->lanes[i].strangers;
            v[3 * i + 2] = c->lanes[i].disarms;
        }
        pthread_mutex_unlock(&self->engine->lock);
    }
    return Py_BuildValue("(kkkkkk)", v[0], v[1], v[2], v[3], v[4], v[5]);
}

static PyObject *link_self_arms(Link *self, PyObject *unused) {
    Core *c = self->core;
    unsigned long v[2] = {0, 0};
    if (c != NULL) {
        pthread_mutex_lock(&self->engine->lock);
        v[0] = c->lanes[0].self_arms;
        v[1] = c->lanes[1].self_arms;
        pthread_mutex_unlock(&self->engine->lock);
    }
    return Py_BuildValue("(kk)", v[0], v[1]);
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

/* Pass-through output sequence numbers (seqmap.SequenceState): Python's before it arms, the engine's after. */
static PyObject *link_set_sequence_map(Link *self, PyObject *args) {
    int which, offset, highest, bad;
    long long ssrc;
    if (!PyArg_ParseTuple(args, "iLiii", &which, &ssrc, &offset, &highest, &bad))
        return NULL;
    if (which < 0 || which > 1 || ssrc < -1 || ssrc > 0xFFFFFFFFLL || offset < 0 || offset > 0xFFFF ||
        highest < 0 || highest > 0xFFFF || bad < -1 || bad > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "bad sequence map: which 0/1, ssrc -1 or 32 bits, offset and highest "
                                          "16 bits, bad -1 or 16 bits");
        return NULL;
    }
    LINK_CORE(self, NULL)
    pthread_mutex_lock(&self->engine->lock);
    SeqMap *m = &c->lanes[which].seqmap;
    m->ssrc = ssrc;
    m->offset = (uint16_t)offset;
    m->highest = (uint16_t)highest;
    m->bad = bad;
    pthread_mutex_unlock(&self->engine->lock);
    Py_RETURN_NONE;
}

static PyObject *link_sequence_map(Link *self, PyObject *args) {
    int which;
    if (!parse_which(args, &which))
        return NULL;
    LINK_CORE(self, NULL)
    pthread_mutex_lock(&self->engine->lock);
    SeqMap m = c->lanes[which].seqmap;
    pthread_mutex_unlock(&self->engine->lock);
    return Py_BuildValue("(Liii)", (long long)m.ssrc, (int)m.offset, (int)m.highest, (int)m.bad);
}

/* The browser's reported loss for lane ``which``'s Opus encoder (opus_settings.OpusEncoderSettings.for_loss):
   in-band FEC on or off and OPUS_SET_PACKET_LOSS_PERC, now when the encoder exists, else when it is made. */
static PyObject *link_opus_loss(Link *self, PyObject *args) {
    int which, fec, percent;
    if (!PyArg_ParseTuple(args, "iii", &which, &fec, &percent))
        return NULL;
    if (which < 0 || which > 1 || fec < 0 || fec > 1 || percent < 0 || percent > 100) {
        PyErr_SetString(PyExc_ValueError, "which 0/1, fec 0/1, percent 0-100");
        return NULL;
    }
    LINK_CORE(self, NULL)
    pthread_mutex_lock(&self->engine->lock);
    Lane *lane = &c->lanes[which];
    lane->loss_set = 1;
    lane->loss_fec = fec;
    lane->loss_percent = percent;
    int applied = lane->encoder != NULL;
    if (applied) {
        opus.encoder_ctl(lane->encoder, OPUS_SET_INBAND_FEC_REQUEST, (int32_t)fec);
        opus.encoder_ctl(lane->encoder, OPUS_SET_PACKET_LOSS_PERC_REQUEST, (int32_t)percent);
    }
    pthread_mutex_unlock(&self->engine->lock);
    return PyBool_FromLong(applied);
}

/* (in-band FEC, packet loss percentage) as lane ``which``'s Opus encoder reports them, or None: no encoder. */
static PyObject *link_opus_encoder(Link *self, PyObject *args) {
    int which;
    if (!parse_which(args, &which))
        return NULL;
    LINK_CORE(self, NULL)
    int32_t fec = -1, percent = -1;
    pthread_mutex_lock(&self->engine->lock);
    Lane *lane = &c->lanes[which];
    int has = lane->encoder != NULL;
    if (has) {
        opus.encoder_ctl(lane->encoder, OPUS_GET_INBAND_FEC_REQUEST, &fec);
        opus.encoder_ctl(lane->encoder, OPUS_GET_PACKET_LOSS_PERC_REQUEST, &percent);
    }
    pthread_mutex_unlock(&self->engine->lock);
    if (!has)
        Py_RETURN_NONE;
    return Py_BuildValue("(ii)", (int)fec, (int)percent);
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
    live->packets = live->forwarded = live->transcoded = live->lost = live->sent = live->octets = live->late = 0;
    live->recovered = live->malformed = live->gaps = 0;
    live->latency_count = 0;
    live->rx.restarted = 0;
    live->armed_from.len = 0;
    long long next_ts = lane->codec_in != CODEC_PASS && lane->has_next ? (long long)lane->next_ts : -1;
    unsigned long anchor_in = lane->anchor_in, anchor_out = lane->anchor_out;
    pthread_mutex_unlock(&self->engine->lock);
    PyObject *reception = reception_tuple(&t.rx);
    if (reception == NULL)
        return NULL;
    PyObject *armed_from = t.armed_from.len > 0 ? address_tuple(&t.armed_from) : Py_NewRef(Py_None);
    if (armed_from == NULL) {
        Py_DECREF(reception);
        return NULL;
    }
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
            Py_DECREF(armed_from);
            return NULL;
        }
    }
    return Py_BuildValue("(KKKKKKkBkdkLkdiNONKKKkkNK)", (unsigned long long)t.packets, (unsigned long long)t.forwarded,
                         (unsigned long long)t.transcoded, (unsigned long long)t.lost, (unsigned long long)t.sent,
                         (unsigned long long)t.octets, (unsigned long)t.rx_ssrc, t.last_pt, (unsigned long)t.last_ts,
                         t.last_arrival, (unsigned long)t.last_mapped, next_ts, (unsigned long)t.last_out_ts,
                         t.last_departure, t.last_seq, reception, t.rx.restarted ? Py_True : Py_False, samples,
                         (unsigned long long)t.late, (unsigned long long)t.recovered,
                         (unsigned long long)t.malformed, anchor_in, anchor_out, armed_from,
                         (unsigned long long)t.gaps);
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
     "unless the engine holds them already; red_in: pt_in is RFC 2198 RED around this payload type (unwrapped, "
     "a lost packet restored from it), red_out: audio goes out in RED with this payload type (-1: neither); "
     "primed: the lane is armed by the direction's first packet, from source with pt_in, whose SSRC and "
     "timestamp become ssrc and anchor_in (any other packet unprimes it; nothing of the direction may be "
     "queued); True when the thread armed it so already."},
    {"disarm", (PyCFunction)link_disarm, METH_VARARGS, "disarm(which): everything of that lane goes to Python."},
    {"armed", (PyCFunction)link_armed, METH_VARARGS, "armed(which) -> bool"},
    {"send", (PyCFunction)link_send, METH_VARARGS,
     "send(which, destination, marker, pt, ts, payload[, seq]) -> sequence number used, or -1: one packet on "
     "output which with its SSRC and next sequence number, or seq (SRTP-protected towards the browser, and towards the SIP "
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
    {"set_sequence_map", (PyCFunction)link_set_sequence_map, METH_VARARGS,
     "set_sequence_map(which, ssrc, offset, highest, bad): lane which's pass-through sequence mapping "
     "(seqmap.SequenceState; ssrc and bad -1: none)"},
    {"sequence_map", (PyCFunction)link_sequence_map, METH_VARARGS,
     "sequence_map(which) -> (ssrc, offset, highest, bad): lane which's pass-through sequence mapping now"},
    {"opus_loss", (PyCFunction)link_opus_loss, METH_VARARGS,
     "opus_loss(which, fec, percent) -> whether lane which's Opus encoder exists (else it takes them when made): "
     "OPUS_SET_INBAND_FEC and OPUS_SET_PACKET_LOSS_PERC from the browser's receiver reports"},
    {"red_previous", (PyCFunction)link_red_previous, METH_VARARGS,
     "red_previous(which[, ts, payload]) -> (ts, payload) or None: what lane which sends as the next RFC 2198 "
     "packet's redundant block (its output timestamp and payload), set first when given"},
    {"opus_encoder", (PyCFunction)link_opus_encoder, METH_VARARGS,
     "opus_encoder(which) -> (inband_fec, packet_loss_perc) of lane which's Opus encoder, or None"},
    {"reports", (PyCFunction)link_reports, METH_NOARGS,
     "reports() -> None, or (packets, octets, [(arrival, compound, upstream), ...]): the browser's report "
     "compounds the engine kept since the last call (SRTCP packets and their octets; the latest SR-led and "
     "RR-led ones, decrypted, oldest first, with their time.monotonic() arrival and the SIP side's stream's "
     "(SSRC, cumulative loss) then, or None when its lane was not armed); taking them clears them."},
    {"counters", (PyCFunction)link_counters, METH_NOARGS,
     "(dropped from the browser, forwarded web->sip, forwarded sip->web, send errors web->sip, send errors "
     "sip->web, dropped from the SIP side: SRTP that did not authenticate)"},
    {"self_arms", (PyCFunction)link_self_arms, METH_NOARGS,
     "(lane 0, lane 1): how often each primed lane was armed by the thread on its direction's first packet"},
    {"disarms", (PyCFunction)link_disarms, METH_NOARGS,
     "(jumps, strangers, by Python) of lane 0 (web->sip), then of lane 1: how often each was disarmed at a "
     "timestamp jump, for a packet of another source, SSRC or payload type, by disarm() (bench/vs_rtpengine.py)"},
    {"snapshot", (PyCFunction)link_snapshot, METH_VARARGS,
     "snapshot(which[, latency]) -> None when lane which forwarded nothing since the last snapshot, else "
     "(packets, forwarded, transcoded, lost, sent, octets, ssrc, last pt, last ts, last arrival, last mapped ts, "
     "next frame ts or -1, last output ts, last departure, last seq, receive statistics (ReceptionState), "
     "restarted, latency samples (native doubles) or None, late, recovered from RED, malformed RED dropped, "
     "anchor in, anchor out, armed from, loss events: runs of lost packets); "
     "counts since the last snapshot. A snapshot of a "
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

PyTypeObject LinkType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gateway.media.fastlane._fastlane.Link",
    .tp_basicsize = sizeof(Link),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One call's two sockets in the engine (Engine.link).",
    .tp_dealloc = (destructor)link_dealloc,
    .tp_methods = link_methods,
    .tp_getset = link_getset,
};
