/* Video lanes (issue 19): forwarding one video packet (the thread) and the Link methods that arm,
   disarm and read them. */

#include "_fastlane.h"

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

/* SendGuard.admit (gateway/media/rtp/send_guard.py) on its state ``g``, the same layout: whether the
   protected ``packet`` may go (its index is new, or it went under it with the same tag), recorded if so. */
static int guard_admit(uint8_t *g, const uint8_t *packet, int len) {
    if (len < 12 + GUARD_TAG)
        return 0;
    int64_t highest, delta, seq = (packet[2] << 8) | packet[3];
    memcpy(&highest, g, sizeof highest);
    if (highest <= 0x8000) { /* libsrtp's srtp_rdbx_estimate_index and srtp_index_guess (send_guard.estimate) */
        delta = seq - highest;
    } else {
        int64_t local = highest & 0xFFFF;
        if (local < 0x8000)
            delta = seq - local > 0x8000 ? seq - local - 0x10000 : seq - local;
        else
            delta = local - 0x8000 > seq ? seq - local + 0x10000 : seq - local;
    }
    if (delta <= -GUARD_SLOTS)
        return 0;
    int64_t index = highest + delta;
    uint8_t *slot = g + 16 + (size_t)(index % GUARD_SLOTS) * (8 + GUARD_TAG);
    const uint8_t *tag = packet + len - GUARD_TAG;
    uint64_t stored;
    memcpy(&stored, slot, sizeof stored);
    if (delta <= 0 && stored == (uint64_t)index + 1)
        return memcmp(slot + 8, tag, GUARD_TAG) == 0;
    stored = (uint64_t)index + 1;
    memcpy(slot, &stored, sizeof stored);
    memcpy(slot + 8, tag, GUARD_TAG);
    if (delta > 0)
        memcpy(g, &index, sizeof index);
    return 1;
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
    if (session != NULL && v->guard != NULL && !guard_admit(v->guard, buffer, len))
        return -1; /* another packet went under this index: never a second (send_guard.py) */
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
            v->floor = (uint16_t)(v->last_out + 1);
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
    if (v->floor >= 0 && (uint16_t)(seq - (uint16_t)v->floor) >= 0x8000) {
        v->dropped++; /* late across a new offset: its number was another packet's (as VideoPath) */
        return 1;
    }
    if (seq != v->last_out && (uint16_t)(seq - v->last_out) < 0x8000) {
        v->last_out = seq;
        uint16_t trail = (uint16_t)(seq - (uint16_t)v->floor); /* VideoPath's FLOOR_TRAIL */
        if (v->floor >= 0 && trail >= FLOOR_TRAIL && trail < 0x8000)
            v->floor = (uint16_t)(seq - FLOOR_TRAIL);
    }
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
int video_web(Engine *e, Core *c, uint8_t *d, int len, const Rtp *r, const struct sockaddr_storage *src,
              socklen_t srclen, double now) {
    if (c->video == NULL)
        return -1;
    VideoLane *v = &c->video[0];
    if (!v->claimed)
        return -1;
    if (r->ssrc != v->ssrc) { /* another SSRC with one of the video's media payload types (the browser's */
        if (v->pt_map[r->pt] >= 0) /* new source; RFC 4588 repair streams have SSRCs of their own): Python's */
            v->armed = 0;          /* from here, numbered from the lane's next (never both: send_guard.py) */
        return -1;
    }
    if (video_feed(e, c, 0, d, r, src, now))
        return 0;
    v->punted_at = e->drains;
    return punt(e, c, KIND_WEB_RTP, d, len, src, (socklen_t)srclen, now);
}

/* A datagram of the SIP side's video socket (RTP, RTCP when muxed, STUN/DTLS): as the audio's. */
int video_sip(Engine *e, Core *c, uint8_t *d, int len, const struct sockaddr_storage *src, socklen_t srclen,
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

/* ------------------------------------------------------------------------------ Link: video lanes */

PyObject *link_video(Link *self, PyObject *args) {
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
    ask_arrival(dup);
    Engine *e = self->engine;
    pthread_mutex_lock(&e->lock);
    c->video = lanes;
    for (int i = 0; i < 2; i++) {
        VideoLane *v = &c->video[i];
        memset(v, 0, sizeof *v);
        v->out.first = 0x80;
        v->highest = v->floor = -1;
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

PyObject *link_set_video_output(Link *self, PyObject *args) {
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

PyObject *link_arm_video(Link *self, PyObject *args) {
    int which, offset, last_out, highest, flavour;
    PyObject *source, *destination, *stats, *guard = Py_None;
    unsigned long ssrc, anchor_in, anchor_out, last_ts;
    double last_time;
    long long clock_rate;
    Py_buffer map, repair, codecs, view = {0};
    if (!PyArg_ParseTuple(args, "iOOky*y*y*iiikkkdiLO|O", &which, &source, &destination, &ssrc, &map, &repair,
                          &codecs, &offset, &last_out, &highest, &anchor_in, &anchor_out, &last_ts, &last_time,
                          &flavour, &clock_rate, &stats, &guard))
        return NULL;
    if (guard != Py_None) { /* held until the lane is armed again, or the link closes: never resized meanwhile */
        if (!PyByteArray_Check(guard) || PyObject_GetBuffer(guard, &view, PyBUF_WRITABLE) != 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "the guard is a SendGuard's bytearray");
        } else if (view.len != GUARD_SIZE) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_ValueError, "the guard is a SendGuard's bytearray (its size)");
        }
        if (PyErr_Occurred()) {
            PyBuffer_Release(&map);
            PyBuffer_Release(&repair);
            PyBuffer_Release(&codecs);
            return NULL;
        }
    }
    PyObject *result = NULL;
    Py_buffer released = {0};
    int release = 0;
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
            v->floor = (uint16_t)(last_out + 1); /* what Python sent is not known here one by one */
            v->anchor_in = (uint32_t)anchor_in;
            v->anchor_out = (uint32_t)anchor_out;
            v->last_ts = (uint32_t)last_ts;
            v->last_time = last_time;
            v->rx = imported;
        }
        release = self->guarded[which]; /* the lane's guard: the new one; the old one released below */
        released = self->guards[which];
        self->guarded[which] = guard != Py_None;
        self->guards[which] = view;
        v->guard = guard != Py_None ? view.buf : NULL;
        guard = Py_None; /* the link holds the view now */
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
    if (release)
        PyBuffer_Release(&released);
    if (guard != Py_None) /* not armed (an error): the view was not taken */
        PyBuffer_Release(&view);
    return result;
}

PyObject *link_disarm_video(Link *self, PyObject *args) {
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

PyObject *link_video_snapshot(Link *self, PyObject *args) {
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

PyObject *link_video_counters(Link *self, PyObject *unused) {
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
