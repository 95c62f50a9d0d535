/* The browser's ICE consent checks (RFC 7675: a STUN Binding request every few seconds on the selected
 * pair), answered by the fast lane's thread (issue 14 goal 1).
 *
 * aioice answers them in Python: each one woke the event loop (about one call in five every second) to
 * parse, authenticate, build and send a response. Here the thread that reads the socket answers the ones
 * it can answer exactly as aioice's ``Connection.request_received`` would: a Binding request from the
 * pair's remote address whose USERNAME is ours, whose MESSAGE-INTEGRITY verifies with our ice-pwd (and
 * FINGERPRINT, when present, too), with PRIORITY, without a role conflict and without an attribute we do
 * not know that asks to be understood (RFC 8489 §14: types below 0x8000). The response is aioice's:
 * XOR-MAPPED-ADDRESS of the source, MESSAGE-INTEGRITY, FINGERPRINT (RFC 8445 §7.3.1.2; §7.2.2 makes
 * FINGERPRINT a must). Anything else - a role conflict, an ICE restart's new USERNAME, a bad integrity,
 * a request from elsewhere, STUN that is not a request - goes to Python as before, which answers with
 * the right error or learns the new pair. On the pair the fast lane uses the check changes nothing in
 * aioice (the pair is nominated and succeeded; USE-CANDIDATE on it is a no-op), so skipping Python loses
 * nothing.
 *
 * SHA-1 and CRC-32 are here (a few dozen lines each) rather than from a library: the extension links
 * nothing but libc, and libsrtp's own HMAC is not in its public interface.
 */
#include "_stun.h"

#include <netinet/in.h>
#include <string.h>

#define STUN_COOKIE 0x2112A442u
#define FINGERPRINT_XOR 0x5354554Eu
#define ATTR_USERNAME 0x0006
#define ATTR_MESSAGE_INTEGRITY 0x0008
#define ATTR_XOR_MAPPED_ADDRESS 0x0020
#define ATTR_PRIORITY 0x0024
#define ATTR_USE_CANDIDATE 0x0025
#define ATTR_FINGERPRINT 0x8028
#define ATTR_ICE_CONTROLLED 0x8029
#define ATTR_ICE_CONTROLLING 0x802A

/* ------------------------------------------------------------------------------------- SHA-1 (FIPS 180-4) */

typedef struct {
    uint32_t h[5];
    uint64_t length;
    uint8_t block[64];
    int used;
} Sha1;

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(Sha1 *s, const uint8_t *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
}

static void sha1_init(Sha1 *s) {
    static const uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    memcpy(s->h, h, sizeof h);
    s->length = 0;
    s->used = 0;
}

static void sha1_update(Sha1 *s, const uint8_t *p, int n) {
    s->length += (uint64_t)n;
    while (n > 0) {
        int take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->block + s->used, p, (size_t)take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            sha1_block(s, s->block);
            s->used = 0;
        }
    }
}

static void sha1_final(Sha1 *s, uint8_t digest[20]) {
    uint64_t bits = s->length * 8;
    uint8_t pad = 0x80, zero = 0, tail[8];
    sha1_update(s, &pad, 1);
    while (s->used != 56)
        sha1_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        tail[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(s, tail, 8);
    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (uint8_t)(s->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)s->h[i];
    }
}

/* HMAC-SHA1 (RFC 2104) of a then b: the message with its patched header, then the rest of it. */
void stun_hmac_sha1(const uint8_t *key, int key_len, const uint8_t *a, int a_len, const uint8_t *b, int b_len,
                    uint8_t digest[20]) {
    uint8_t k[64] = {0}, pad[64], inner[20];
    Sha1 s;
    if (key_len > 64) {
        sha1_init(&s);
        sha1_update(&s, key, key_len);
        sha1_final(&s, k);
    } else {
        memcpy(k, key, (size_t)key_len);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha1_init(&s);
    sha1_update(&s, pad, 64);
    sha1_update(&s, a, a_len);
    sha1_update(&s, b, b_len);
    sha1_final(&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5C;
    sha1_init(&s);
    sha1_update(&s, pad, 64);
    sha1_update(&s, inner, 20);
    sha1_final(&s, digest);
}

/* ---------------------------------------------------------------------- CRC-32 (ISO 3309, as zlib's crc32) */

uint32_t stun_crc32(const uint8_t *d, int len) {
    uint32_t crc = 0xFFFFFFFFu;
    for (int i = 0; i < len; i++) {
        crc ^= d[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ------------------------------------------------------------------------------------------------- STUN */

static unsigned get16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, unsigned v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* HMAC-SHA1 over d[0:end] with the header's length set as if the message ended after a MESSAGE-INTEGRITY
   at end (RFC 8489 §14.5). */
static void integrity(const StunIce *ice, const uint8_t *d, int end, uint8_t digest[20]) {
    uint8_t header[20];
    memcpy(header, d, 20);
    put16(header + 2, (unsigned)(end - 20 + 24));
    stun_hmac_sha1(ice->key, ice->key_len, header, 20, d + 20, end - 20, digest);
}

static int equal_digest(const uint8_t *a, const uint8_t *b, int n) {
    uint8_t diff = 0; /* in constant time, as hmac.compare_digest */
    for (int i = 0; i < n; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

int stun_consent_answer(const uint8_t *d, int len, const StunIce *ice, const struct sockaddr_storage *src,
                        uint8_t *out) {
    if (!ice->set || len < 20 || len > 1500 || get16(d) != 0x0001 || get32(d + 4) != STUN_COOKIE)
        return 0; /* not a Binding request (RFC 8489 §5: the two top bits are 0, class request) */
    int body = (int)get16(d + 2);
    if (body + 20 != len || body % 4 != 0)
        return 0;
    int username = -1, username_len = 0, mi = -1, fingerprint = -1, priority = 0;
    int controlling = 0, controlled = 0;
    for (int at = 20; at < len;) {
        if (at + 4 > len)
            return 0;
        unsigned type = get16(d + at), size = get16(d + at + 2);
        int value = at + 4, next = value + (int)((size + 3) & ~3u);
        if (next > len || fingerprint >= 0)
            return 0; /* FINGERPRINT must be the last (RFC 8489 §14.7) */
        if (mi >= 0 && type != ATTR_FINGERPRINT)
            return 0; /* only FINGERPRINT may follow MESSAGE-INTEGRITY: leave the rare rest to aioice */
        switch (type) {
        case ATTR_USERNAME:
            username = value;
            username_len = (int)size;
            break;
        case ATTR_MESSAGE_INTEGRITY:
            if (size != 20)
                return 0;
            mi = at;
            break;
        case ATTR_FINGERPRINT:
            if (size != 4)
                return 0;
            fingerprint = at;
            break;
        case ATTR_PRIORITY:
            priority = size == 4;
            break;
        case ATTR_USE_CANDIDATE:
            break;
        case ATTR_ICE_CONTROLLED:
            controlled = 1;
            break;
        case ATTR_ICE_CONTROLLING:
            controlling = 1;
            break;
        default:
            if (type < 0x8000)
                return 0; /* comprehension-required and unknown here */
        }
        at = next;
    }
    if (username < 0 || mi < 0 || !priority)
        return 0; /* aioice answers 400 (or learns a candidate from PRIORITY) */
    if (username_len != ice->username_len || memcmp(d + username, ice->username, (size_t)username_len) != 0)
        return 0; /* another session's, or an ICE restart's (RFC 8445 §9): aioice's */
    if ((ice->controlling && controlling) || (!ice->controlling && controlled))
        return 0; /* a role conflict (RFC 8445 §7.3.1.1): aioice repairs it */
    if (fingerprint >= 0 && (get32(d + fingerprint + 4) ^ FINGERPRINT_XOR) != stun_crc32(d, fingerprint))
        return 0;
    uint8_t digest[20];
    integrity(ice, d, mi, digest);
    if (!equal_digest(digest, d + mi + 4, 20))
        return 0; /* aioice answers 401 */

    /* the success response: the request's transaction, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT */
    put16(out, 0x0101);
    put32(out + 4, STUN_COOKIE);
    memcpy(out + 8, d + 8, 12);
    int n = 20;
    put16(out + n, ATTR_XOR_MAPPED_ADDRESS);
    if (src->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)src;
        put16(out + n + 2, 8);
        out[n + 4] = 0;
        out[n + 5] = 1;
        put16(out + n + 6, ntohs(a->sin_port) ^ (STUN_COOKIE >> 16));
        put32(out + n + 8, ntohl(a->sin_addr.s_addr) ^ STUN_COOKIE);
        n += 12;
    } else if (src->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)src;
        put16(out + n + 2, 20);
        out[n + 4] = 0;
        out[n + 5] = 2;
        put16(out + n + 6, ntohs(a->sin6_port) ^ (STUN_COOKIE >> 16));
        const uint8_t *address = a->sin6_addr.s6_addr;
        for (int i = 0; i < 16; i++) /* XORed with the cookie and the transaction ID (RFC 8489 §14.2) */
            out[n + 8 + i] = address[i] ^ out[4 + i];
        n += 24;
    } else {
        return 0;
    }
    integrity(ice, out, n, digest);
    put16(out + n, ATTR_MESSAGE_INTEGRITY);
    put16(out + n + 2, 20);
    memcpy(out + n + 4, digest, 20);
    n += 24;
    put16(out + 2, (unsigned)(n - 20 + 8));
    put16(out + n, ATTR_FINGERPRINT);
    put16(out + n + 2, 4);
    put32(out + n + 4, stun_crc32(out, n) ^ FINGERPRINT_XOR);
    return n + 8;
}
