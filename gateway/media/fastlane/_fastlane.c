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
 * or DTLS-SRTP, gateway/media/rtp/srtp.py) on the SIP leg, pointers taken from pylibsrtp; every use of them -
 * the thread's and Python's (Link.srtp, which the fast lane installs in the legs' place) - happens under
 * the engine mutex: libsrtp sessions are not thread-safe. An SRTP packet from the SIP side that does not
 * authenticate is dropped and counted (sip_dropped), as one from the browser is (dropped).
 *
 * Accounting (the Tally of each lane): what the Python path does per packet it forwards - RTCP receive
 * statistics of the input source (RFC 3550 A.1, A.3, A.8, as gateway/media/rtp/rtp_stats.py for the SIP leg
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
 *
 * Files: this one is the module and the Engine type (the thread's start and stop, drain, link); the
 * thread's rounds are in _fastlane_thread.c, a packet's forwarding, transcoding and accounting in
 * _fastlane_media.c, the Link type in _fastlane_link.c, video lanes in _fastlane_video.c, what they share
 * in _fastlane.h, and the consent checks' answers in _stun.c.
 */

#include "_fastlane.h"

/* libopus (the one PyAV bundles, or the system's) and G.711 tables, given once by fastpath.py (set_codecs) */
OpusApi opus;
int opus_ready;
int g711_ready;
int16_t g711_decode[2][256];       /* [0]: mu-law, [1]: A-law */
uint8_t g711_encode[2][65536];     /* indexed by the sample as uint16 */
int opus_complexity = 5, opus_inband_fec = 0;

static PyTypeObject EngineType;

/* ---------------------------------------------------------------------------------------- Python */

int parse_address(PyObject *tuple, Address *out) {
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

PyObject *address_tuple(const Address *a) {
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
    pthread_setname_np(self->thread, ENGINE_THREAD_NAME); /* top -H, /proc/<pid>/task/<tid>/comm */
    return 0;
}

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Engine *self = (Engine *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->epfd = self->stopfd = self->notifyfd = -1;
        self->gather_late = GATHER_LATE;
    }
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
    c->lanes[0].seqmap.ssrc = c->lanes[1].seqmap.ssrc = -1; /* no source mapped yet (set_sequence_map) */
    c->lanes[0].seqmap.bad = c->lanes[1].seqmap.bad = -1;
    for (int i = 0; i < 2; i++) { /* RFC 2198: none until arm() says so */
        c->lanes[i].red_in = c->lanes[i].red_out = -1;
        c->lanes[i].previous_len = -1;
    }
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
        ask_arrival(c->fds[i]);
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
    link->guarded[0] = link->guarded[1] = 0;
    memset(link->guards, 0, sizeof link->guards);
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

/* Hold the thread's lock for a while: its rounds wait as behind a long drain, or with no CPU free. */
static PyObject *engine_stall(Engine *self, PyObject *arg) {
    double seconds = PyFloat_AsDouble(arg);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(seconds >= 0 && seconds <= 5)) {
        PyErr_SetString(PyExc_ValueError, "stall: 0 to 5 seconds");
        return NULL;
    }
    struct timespec ts = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
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
    {"stall", (PyCFunction)engine_stall, METH_O,
     "stall(seconds): hold the thread's lock that long (0-5 s), as a slow drain or a busy CPU would keep the "
     "thread from its sockets; what arrives meanwhile waits in them. For tests and diagnostics."},
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

/* Engine fields Python reads (and sets) under the lock, found by the getset's closure: a counter's offset,
   or a Seconds (a field in seconds, its ceiling, the error naming its range) */
typedef struct {
    size_t offset;
    double max;
    const char *range;
} Seconds;
static const Seconds COALESCE_FIELD = {offsetof(Engine, coalesce), MAX_COALESCE,
                                       "coalesce must be 0 to 0.005 seconds"};
static const Seconds GATHER_LATE_FIELD = {offsetof(Engine, gather_late), 1.0, "gather_late must be 0 to 1 second"};

static PyObject *engine_get_count(Engine *self, void *offset) {
    pthread_mutex_lock(&self->lock);
    unsigned long long count = (unsigned long long)*(uint64_t *)((char *)self + (size_t)offset);
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromUnsignedLongLong(count);
}

static PyObject *engine_get_seconds(Engine *self, void *field) {
    pthread_mutex_lock(&self->lock);
    double seconds = *(double *)((char *)self + ((const Seconds *)field)->offset);
    pthread_mutex_unlock(&self->lock);
    return PyFloat_FromDouble(seconds);
}

static int engine_set_seconds(Engine *self, PyObject *value, void *field) {
    const Seconds *f = field;
    double seconds = value == NULL ? -1.0 : PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred())
        return -1;
    if (!(seconds >= 0.0 && seconds <= f->max)) { /* also NaN */
        PyErr_SetString(PyExc_ValueError, f->range);
        return -1;
    }
    pthread_mutex_lock(&self->lock);
    *(double *)((char *)self + f->offset) = seconds;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

static PyObject *engine_get_latency(Engine *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    int latency = self->latency;
    pthread_mutex_unlock(&self->lock);
    return PyBool_FromLong(latency);
}

static int engine_set_latency(Engine *self, PyObject *value, void *closure) {
    int latency = value == NULL ? -1 : PyObject_IsTrue(value);
    if (latency < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "latency cannot be deleted");
        return -1;
    }
    pthread_mutex_lock(&self->lock);
    self->latency = latency;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

static PyGetSetDef engine_getset[] = {
    {"coalesce", (getter)engine_get_seconds, (setter)engine_set_seconds,
     "seconds the thread waits after a round that found packets, for the next ones (0 to 0.005; 0: none)",
     (void *)&COALESCE_FIELD},
    {"coalesced", (getter)engine_get_count, NULL, "rounds after which the thread waited (coalesce)",
     (void *)offsetof(Engine, coalesced)},
    {"overslept", (getter)engine_get_count, NULL,
     "waits (coalesce) that ended over 0.5 ms late; 3 of 64 (the CPUs busy) stop the waits for a second",
     (void *)offsetof(Engine, overslept)},
    {"gather_late", (getter)engine_get_seconds, (setter)engine_set_seconds,
     "seconds after which a gathering wait counts as late (overslept; default 0.0005; 0: every wait)",
     (void *)&GATHER_LATE_FIELD},
    {"latency", (getter)engine_get_latency, (setter)engine_set_latency,
     "whether each forwarded packet's departure is read from the clock and kept as a latency sample (a call's "
     "latency meter is on); else its departure is its round's time (no clock read per packet)",
     NULL},
    {"failed", (getter)engine_get_failed, NULL, "whether the thread stopped on an error", NULL},
    {"notify_fd", (getter)engine_get_notify_fd, NULL, "readable when drain() has datagrams or many records", NULL},
    {"queue_drops", (getter)engine_get_queue_drops, NULL, "items lost to a full queue, and RTP a disarmed lane dropped for a Python behind (PUNT_WINDOW)", NULL},
    {"timing", (getter)engine_get_timing, NULL,
     "(lock waits > 1 ms, the longest wait s, rounds holding the lock > 2 ms, the longest round s) of the thread",
     NULL},
    {NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gateway.media.fastlane._fastlane.Engine",
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
    PyModuleDef_HEAD_INIT, .m_name = "gateway.media.fastlane._fastlane", .m_methods = module_methods,
    .m_doc = "Native forwarding of steady pass-through RTP (see gateway/media/fastpath.py).", .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastlane(void) {
    if (PyType_Ready(&EngineType) < 0 || PyType_Ready(&LinkType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "ENGINE_THREAD_NAME", ENGINE_THREAD_NAME) < 0) {
        Py_DECREF(m);
        return NULL;
    }
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
