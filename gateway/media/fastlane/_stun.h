/* The browser's ICE consent checks answered by the fast lane's thread (issue 14): see _stun.c. */
#ifndef GATEWAY_STUN_H
#define GATEWAY_STUN_H

#include <stdint.h>
#include <sys/socket.h>

#define STUN_MAX_USERNAME 513  /* RFC 8489 §14.3: under 513 octets */
#define STUN_MAX_KEY 256       /* RFC 8445 §5.3: an ice-pwd is 22 to 256 characters */
#define STUN_RESPONSE_MAX 80   /* header 20 + XOR-MAPPED-ADDRESS (IPv6) 24 + MESSAGE-INTEGRITY 24 + FINGERPRINT 8 */

typedef struct {
    int set;                          /* 0: every STUN message goes to Python */
    int controlling;                  /* our ICE role */
    int username_len, key_len;
    char username[STUN_MAX_USERNAME]; /* what the browser's requests carry: "<our ufrag>:<its ufrag>" */
    uint8_t key[STUN_MAX_KEY];        /* our ice-pwd: MESSAGE-INTEGRITY's key (RFC 8489 §9.2.2) */
} StunIce;

/* The Binding success response to ``d`` (``len`` octets from ``src``) written to ``out``, and its length,
   when ``d`` is a consent check this thread may answer as aioice would; 0 when Python must see it. */
int stun_consent_answer(const uint8_t *d, int len, const StunIce *ice, const struct sockaddr_storage *src,
                        uint8_t *out);

/* For tests (_fastlane.stun_digests): HMAC-SHA1 and STUN's CRC-32. */
void stun_hmac_sha1(const uint8_t *key, int key_len, const uint8_t *a, int a_len, const uint8_t *b, int b_len,
                    uint8_t digest[20]);
uint32_t stun_crc32(const uint8_t *d, int len);

#endif
