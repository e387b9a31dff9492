/* Shared helpers of the C ABI test programs (the ffi/tests/t_ programs, driven by ffi/tests/c_programs.rs).
 *
 * Every check names the program's file and line and, for a result, its name and
 * ssekit_last_error_message(). A failed check exits 1 at once. SSEKIT_TEST_SMALL=1 (set by the
 * driver under valgrind) asks the programs for fewer and smaller cases. */
#ifndef SSEKIT_TEST_H
#define SSEKIT_TEST_H

#define _GNU_SOURCE
#include "ssekit.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                           \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fprintf(stderr, "\n");                                                                         \
    fflush(stderr);                                                                                \
    exit(1);                                                                                       \
  } while (0)

/* `x` must return SSEKIT_RESULT_OK. */
#define CHECK(x)                                                                                   \
  do {                                                                                             \
    ssekit_result r_ = (x);                                                                        \
    if (r_ != SSEKIT_RESULT_OK)                                                                    \
      FAIL("%s -> %s (%s)", #x, ssekit_result_name(r_), ssekit_last_error_message());             \
  } while (0)

/* `x` must return `want`; a failure must leave a last error message. */
#define EXPECT_RC(x, want)                                                                         \
  do {                                                                                             \
    ssekit_result r_ = (x);                                                                        \
    ssekit_result w_ = (want);                                                                     \
    if (r_ != w_)                                                                                  \
      FAIL("%s -> %s, want %s (%s)", #x, ssekit_result_name(r_), ssekit_result_name(w_),          \
           ssekit_last_error_message());                                                           \
    if (w_ != SSEKIT_RESULT_OK && ssekit_last_error_message()[0] == '\0')                          \
      FAIL("%s -> %s with an empty ssekit_last_error_message()", #x, ssekit_result_name(r_));     \
  } while (0)

/* As EXPECT_RC, but the program goes on (and still exits 1 at the end, from test_done): for
 * checks after which the rest stays meaningful. */
static int t_failures_;
#define SOFT_EXPECT_RC(x, want)                                                                    \
  do {                                                                                             \
    ssekit_result r_ = (x);                                                                        \
    ssekit_result w_ = (want);                                                                     \
    if (r_ != w_) {                                                                                \
      fprintf(stderr, "FAIL %s:%d: %s -> %s, want %s (%s)\n", __FILE__, __LINE__, #x,             \
              ssekit_result_name(r_), ssekit_result_name(w_), ssekit_last_error_message());        \
      t_failures_++;                                                                               \
    }                                                                                              \
  } while (0)

#define SOFT_ASSERT(c, ...)                                                                        \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "FAIL %s:%d: `%s`: ", __FILE__, __LINE__, #c);                               \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      t_failures_++;                                                                               \
    }                                                                                              \
  } while (0)

/* main's return value: 0 when no soft check failed. */
static inline int test_done(const char *program) {
  if (t_failures_) {
    fprintf(stderr, "%s: %d check(s) FAILED\n", program, t_failures_);
    return 1;
  }
  printf("%s: ok\n", program);
  return 0;
}

#define ASSERT(c, ...)                                                                             \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "FAIL %s:%d: `%s`: ", __FILE__, __LINE__, #c);                               \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      fflush(stderr);                                                                              \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#define ASSERT_EQ_U64(a, b)                                                                        \
  do {                                                                                             \
    unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);                 \
    if (a_ != b_) FAIL("%s == %s: %llu != %llu", #a, #b, a_, b_);                                  \
  } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                                     \
  do {                                                                                             \
    size_t n_ = (n);                                                                               \
    if (n_ && memcmp((a), (b), n_) != 0) FAIL("%s and %s differ (%zu bytes)", #a, #b, n_);         \
  } while (0)

/* `call` (which hands `&S3E` as its error_out) must fail with SSEKIT_RESULT_S3_ERROR carrying S3
 * code `code` and HTTP status `status`; the error is freed. */
#define EXPECT_S3(call, code, status)                                                              \
  do {                                                                                             \
    ssekit_s3_error *S3E = NULL;                                                                   \
    ssekit_result r_ = (call);                                                                     \
    if (r_ != SSEKIT_RESULT_S3_ERROR)                                                              \
      FAIL("%s -> %s, want SSEKIT_RESULT_S3_ERROR %s %d (%s)", #call, ssekit_result_name(r_),      \
           (code), (status), ssekit_last_error_message());                                         \
    if (S3E == NULL) FAIL("%s: SSEKIT_RESULT_S3_ERROR without an ssekit_s3_error", #call);         \
    if (strcmp(ssekit_s3_error_code(S3E), (code)) != 0 || ssekit_s3_error_status(S3E) != (status)) \
      FAIL("%s: S3 error %s %u (%s), want %s %d", #call, ssekit_s3_error_code(S3E),                \
           ssekit_s3_error_status(S3E), ssekit_s3_error_message(S3E), (code), (status));           \
    if (ssekit_s3_error_message(S3E)[0] == '\0') FAIL("%s: S3 error without a message", #call);    \
    ssekit_s3_error_free(S3E);                                                                     \
  } while (0)

static inline bool test_small(void) {
  const char *s = getenv("SSEKIT_TEST_SMALL");
  return s != NULL && s[0] != '\0' && strcmp(s, "0") != 0;
}

/* ---- temporary directories, removed at exit ---- */

static char t_dirs_[16][4096];
static int t_ndirs_;

static inline int t_rm_(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static inline void t_cleanup_(void) {
  for (int i = 0; i < t_ndirs_; i++) nftw(t_dirs_[i], t_rm_, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory (mode 0700) under $TMPDIR or /tmp, removed with its contents at exit. */
static inline const char *temp_dir(void) {
  if (t_ndirs_ == 16) FAIL("too many temp dirs");
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0') base = "/tmp";
  char *d = t_dirs_[t_ndirs_];
  snprintf(d, sizeof t_dirs_[0], "%s/ssekit-ctest-XXXXXX", base);
  if (mkdtemp(d) == NULL) FAIL("mkdtemp(%s): %s", d, strerror(errno));
  if (t_ndirs_++ == 0) atexit(t_cleanup_);
  return d;
}

/* ---- engines ---- */

/* A builder for a local keyring in a fresh temp dir. */
static inline ssekit_engine_builder *local_builder(void) {
  char keys[4200];
  snprintf(keys, sizeof keys, "%s/keys", temp_dir());
  ssekit_engine_builder *b = NULL;
  CHECK(ssekit_engine_builder_new(&b));
  ASSERT(b != NULL, "builder_new gave NULL");
  CHECK(ssekit_engine_builder_local_keyring(b, keys, strlen(keys), NULL, 0));
  return b;
}

static inline ssekit_engine *build(ssekit_engine_builder *b) {
  ssekit_engine *e = NULL;
  CHECK(ssekit_engine_builder_build(b, &e));
  ASSERT(e != NULL, "build gave NULL");
  return e;
}

static inline ssekit_engine *local_engine(void) { return build(local_builder()); }

/* Creates KMS key `id` (checks the description names it). */
static inline void create_key(const ssekit_engine *e, const char *id) {
  ssekit_bytes *info = NULL;
  CHECK(ssekit_engine_create_key(e, id, strlen(id), "test key", 8, 0, &info));
  ASSERT(info != NULL && ssekit_bytes_len(info) > 0, "create_key: no description");
  ASSERT(memmem(ssekit_bytes_data(info), ssekit_bytes_len(info), id, strlen(id)) != NULL,
         "create_key(%s): the description does not name the key: %.*s", id,
         (int)ssekit_bytes_len(info), (const char *)ssekit_bytes_data(info));
  ssekit_bytes_free(info);
}

static inline void set_key_enabled(const ssekit_engine *e, const char *id, bool on) {
  ssekit_bytes *info = NULL;
  CHECK(ssekit_engine_set_key_enabled(e, id, strlen(id), on, &info));
  ssekit_bytes_free(info);
}

/* ---- requests: headers as a NULL-terminated list of name, value pairs ---- */

#define HDRS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_HDRS ((const char *const *)NULL)

static inline void add_headers(ssekit_request *r, const char *const *h) {
  for (size_t i = 0; h != NULL && h[i] != NULL; i += 2) {
    ASSERT(h[i + 1] != NULL, "header %s without a value", h[i]);
    CHECK(ssekit_request_add_header(r, h[i], strlen(h[i]), h[i + 1], strlen(h[i + 1])));
  }
}

static inline ssekit_request *request(uint32_t op, const char *bucket, const char *key, bool secure,
                                      const char *const *h1, const char *const *h2) {
  ssekit_request *r = NULL;
  CHECK(ssekit_request_new(op, bucket, strlen(bucket), key, strlen(key), &r));
  ASSERT(r != NULL, "request_new gave NULL");
  CHECK(ssekit_request_set_secure(r, secure));
  add_headers(r, h1);
  add_headers(r, h2);
  return r;
}

/* ---- response headers ---- */

/* The value of header `name` (exactly one occurrence, case-insensitive) copied into `buf`, or
 * false when there is none. */
static inline bool header_value(const ssekit_headers *h, const char *name, char *buf, size_t cap) {
  bool found = false;
  for (size_t i = 0; i < ssekit_headers_len(h); i++) {
    const char *n, *v;
    size_t nl, vl;
    CHECK(ssekit_headers_get(h, i, &n, &nl, &v, &vl));
    if (nl == strlen(name) && strncasecmp(n, name, nl) == 0) {
      ASSERT(!found, "header %s appears twice", name);
      ASSERT(vl < cap, "header %s too long", name);
      memcpy(buf, v, vl);
      buf[vl] = '\0';
      found = true;
    }
  }
  return found;
}

/* Header `name` must be `want` (NULL: absent). */
#define EXPECT_HEADER(h, name, want)                                                               \
  do {                                                                                             \
    char hv_[2048];                                                                                \
    bool f_ = header_value((h), (name), hv_, sizeof hv_);                                          \
    const char *w_ = (want);                                                                       \
    if (w_ == NULL && f_) FAIL("header %s: `%s`, want none", (name), hv_);                         \
    if (w_ != NULL && !f_) FAIL("header %s missing, want `%s`", (name), w_);                       \
    if (w_ != NULL && strcmp(hv_, w_) != 0) FAIL("header %s: `%s`, want `%s`", (name), hv_, w_);   \
  } while (0)

/* ---- random data (xorshift64*, deterministic per seed) ---- */

static inline uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

static inline void fill_random(uint8_t *p, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rng_next(&s) >> 56);
}

static inline void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) FAIL("out of memory (%zu bytes)", n);
  return p;
}

static inline uint8_t *random_buf(size_t n, uint64_t seed) {
  uint8_t *p = xmalloc(n);
  fill_random(p, n, seed);
  return p;
}

/* ---- base64 and MD5 for SSE-C headers ---- */

static inline void base64(const uint8_t *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = t[(v >> 18) & 63];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = '\0';
}

static inline uint32_t md5_rol_(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }

/* RFC 1321 MD5 of `n` bytes (n < 2^29). */
static inline void md5(const uint8_t *msg, size_t n, uint8_t digest[16]) {
  static const uint32_t K[64] = {
      0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
      0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
      0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
      0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
      0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
      0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
      0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
      0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
      0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
      0xeb86d391};
  static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                            5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                            4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                            6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
  uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  size_t total = ((n + 8) / 64 + 1) * 64;
  uint8_t *m = calloc(total, 1);
  if (m == NULL) FAIL("out of memory");
  memcpy(m, msg, n);
  m[n] = 0x80;
  uint64_t bits = (uint64_t)n * 8;
  for (int i = 0; i < 8; i++) m[total - 8 + i] = (uint8_t)(bits >> (8 * i));
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)m[off + 4 * i] | (uint32_t)m[off + 4 * i + 1] << 8 |
             (uint32_t)m[off + 4 * i + 2] << 16 | (uint32_t)m[off + 4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
      uint32_t f;
      int g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      uint32_t tmp = d;
      d = c;
      c = b;
      b = b + md5_rol_(a + f + K[i] + w[g], R[i]);
      a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
  }
  free(m);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(h[i] >> (8 * j));
}

/* SSE-C request headers for a 32-byte key. */
typedef struct {
  char key[64];
  char md5[32];
  const char *hdrs[7];
} ssec_key;

static inline void ssec_init(ssec_key *k, uint64_t seed) {
  uint8_t raw[32], d[16];
  fill_random(raw, 32, seed);
  base64(raw, 32, k->key);
  md5(raw, 32, d);
  base64(d, 16, k->md5);
  k->hdrs[0] = "x-amz-server-side-encryption-customer-algorithm";
  k->hdrs[1] = "AES256";
  k->hdrs[2] = "x-amz-server-side-encryption-customer-key";
  k->hdrs[3] = k->key;
  k->hdrs[4] = "x-amz-server-side-encryption-customer-key-MD5";
  k->hdrs[5] = k->md5;
  k->hdrs[6] = NULL;
}

/* ---- metadata ---- */

/* Encodes `m`, parses the bytes back, checks the copy says the same and re-encodes to the same
 * bytes; frees `m` and returns the parsed copy (what a server reads from its store). */
static inline ssekit_meta *meta_roundtrip(ssekit_meta *m) {
  ssekit_bytes *b = NULL, *b2 = NULL;
  ssekit_meta *p = NULL;
  CHECK(ssekit_meta_encode(m, &b));
  ASSERT(ssekit_bytes_len(b) > 0 && ssekit_bytes_data(b) != NULL, "empty metadata encoding");
  CHECK(ssekit_meta_parse(ssekit_bytes_data(b), ssekit_bytes_len(b), &p));
  ASSERT_EQ_U64(ssekit_meta_size(p), ssekit_meta_size(m));
  ASSERT_EQ_U64(ssekit_meta_mode(p), ssekit_meta_mode(m));
  ASSERT_EQ_U64(ssekit_meta_part_count(p), ssekit_meta_part_count(m));
  CHECK(ssekit_meta_encode(p, &b2));
  ASSERT(ssekit_bytes_len(b2) == ssekit_bytes_len(b) &&
             memcmp(ssekit_bytes_data(b2), ssekit_bytes_data(b), ssekit_bytes_len(b)) == 0,
         "metadata re-encodes differently");
  ssekit_bytes_free(b);
  ssekit_bytes_free(b2);
  ssekit_meta_free(m);
  return p;
}

/* ---- objects ---- */

typedef struct {
  uint8_t *stored;
  size_t stored_len;
  ssekit_meta *meta; /* parsed back from its encoding */
} stored_obj;

static inline void obj_free(stored_obj *o) {
  free(o->stored);
  ssekit_meta_free(o->meta);
  o->stored = NULL;
  o->meta = NULL;
}

/* PUTs `pt` (n bytes) with seal_into; the metadata is round-tripped through its encoding. Returns
 * the plan's x-amz-server-side-encryption value (or "" for none) in `sse` when not NULL. */
static inline stored_obj put_object(const ssekit_engine *e, const ssekit_bucket *bk, const char *bucket,
                                    const char *key, bool secure, const char *const *h1,
                                    const char *const *h2, const uint8_t *pt, size_t n) {
  ssekit_request *r = request(SSEKIT_OPERATION_PUT_OBJECT, bucket, key, secure, h1, h2);
  ssekit_write_plan *wp = NULL;
  ssekit_s3_error *err = NULL;
  ssekit_result rc = ssekit_engine_plan_write(e, r, bk, &wp, &err);
  if (rc != SSEKIT_RESULT_OK)
    FAIL("plan_write %s/%s: %s %s %u %s", bucket, key, ssekit_result_name(rc),
         ssekit_s3_error_code(err), ssekit_s3_error_status(err), ssekit_last_error_message());
  uint64_t sl = 0;
  CHECK(ssekit_write_plan_stored_len(wp, n, &sl));
  stored_obj o = {0};
  o.stored = xmalloc((size_t)sl);
  size_t w = 0;
  CHECK(ssekit_write_plan_seal_into(wp, pt, n, o.stored, (size_t)sl, &w));
  ASSERT_EQ_U64(w, sl);
  o.stored_len = w;
  ssekit_meta *m = NULL;
  CHECK(ssekit_write_plan_finish(wp, n, &m));
  ASSERT_EQ_U64(ssekit_meta_size(m), n);
  o.meta = meta_roundtrip(m);
  ssekit_write_plan_free(wp);
  ssekit_request_free(r);
  return o;
}

static inline ssekit_read_plan *get_plan(const ssekit_engine *e, const ssekit_bucket *bk,
                                         const char *bucket, const char *key, bool secure,
                                         const char *const *h, const ssekit_meta *m) {
  ssekit_request *r = request(SSEKIT_OPERATION_GET_OBJECT, bucket, key, secure, h, NO_HDRS);
  ssekit_read_plan *rp = NULL;
  ssekit_s3_error *err = NULL;
  ssekit_result rc = ssekit_engine_plan_read(e, r, bk, m, &rp, &err);
  if (rc != SSEKIT_RESULT_OK)
    FAIL("plan_read %s/%s: %s %s %u %s", bucket, key, ssekit_result_name(rc),
         ssekit_s3_error_code(err), ssekit_s3_error_status(err), ssekit_last_error_message());
  ssekit_request_free(r);
  return rp;
}

/* Opens the whole object with open_into and compares it to `pt`. */
static inline void expect_opens(const ssekit_read_plan *rp, const uint8_t *stored, size_t stored_len,
                                const uint8_t *pt, size_t n) {
  uint64_t size = 0;
  CHECK(ssekit_read_plan_size(rp, &size));
  ASSERT_EQ_U64(size, n);
  uint8_t *out = xmalloc(n + 1);
  size_t got = 0;
  CHECK(ssekit_read_plan_open_into(rp, stored, stored_len, out, n, &got));
  ASSERT_EQ_U64(got, n);
  ASSERT_MEM_EQ(out, pt, n);
  free(out);
}


/* ---- multipart objects ---- */

/* CreateMultipartUpload with headers `create`, parts of `sizes` sealed in order (with
 * part_plan_seal_into) carrying `part_h` (SSE-C: the key), Complete carrying `part_h`. `pt` holds
 * the whole plaintext (the parts back to back). The stored object is the parts' stored bytes in
 * part order; the metadata is round-tripped. */
static inline stored_obj put_multipart(const ssekit_engine *e, const ssekit_bucket *bk, const char *bucket,
                                       const char *key, bool secure, const char *const *create,
                                       const char *const *part_h, const size_t *sizes, size_t nparts,
                                       const uint8_t *pt) {
  ssekit_request *r = request(SSEKIT_OPERATION_CREATE_MULTIPART_UPLOAD, bucket, key, secure, create, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  CHECK(ssekit_engine_plan_write(e, r, bk, &wp, NULL));
  ssekit_meta *upload = NULL;
  CHECK(ssekit_write_plan_upload_meta(wp, &upload));
  upload = meta_roundtrip(upload);
  ssekit_write_plan_free(wp);
  ssekit_request_free(r);
  ssekit_part_entry *rows = xmalloc(nparts * sizeof *rows);
  size_t total = 0, at = 0, off = 0;
  uint64_t *lens = xmalloc(nparts * sizeof *lens);
  for (size_t i = 0; i < nparts; i++) {
    ssekit_request *pr = request(SSEKIT_OPERATION_UPLOAD_PART, bucket, key, secure, part_h, NO_HDRS);
    ssekit_part_plan *pp = NULL;
    CHECK(ssekit_engine_plan_part(e, pr, bk, upload, (uint32_t)(i + 1), &pp, NULL));
    CHECK(ssekit_part_plan_stored_len(pp, sizes[i], &lens[i]));
    total += (size_t)lens[i];
    ssekit_part_plan_free(pp);
    ssekit_request_free(pr);
  }
  stored_obj o = {0};
  o.stored = xmalloc(total);
  for (size_t i = 0; i < nparts; i++) {
    ssekit_request *pr = request(SSEKIT_OPERATION_UPLOAD_PART, bucket, key, secure, part_h, NO_HDRS);
    ssekit_part_plan *pp = NULL;
    CHECK(ssekit_engine_plan_part(e, pr, bk, upload, (uint32_t)(i + 1), &pp, NULL));
    size_t w = 0;
    CHECK(ssekit_part_plan_seal_into(pp, pt + off, sizes[i], o.stored + at, (size_t)lens[i], &w, &rows[i]));
    ASSERT_EQ_U64(w, lens[i]);
    ASSERT_EQ_U64(rows[i].number, i + 1);
    ASSERT_EQ_U64(rows[i].size, sizes[i]);
    at += w;
    off += sizes[i];
    ssekit_part_plan_free(pp);
    ssekit_request_free(pr);
  }
  o.stored_len = at;
  ssekit_request *cr = request(SSEKIT_OPERATION_COMPLETE_MULTIPART_UPLOAD, bucket, key, secure, part_h, NO_HDRS);
  ssekit_meta *m = NULL;
  ssekit_headers *hd = NULL;
  CHECK(ssekit_engine_complete(e, cr, bk, upload, rows, nparts, &m, &hd, NULL));
  ASSERT_EQ_U64(ssekit_meta_part_count(m), nparts);
  ASSERT_EQ_U64(ssekit_meta_size(m), off);
  o.meta = meta_roundtrip(m);
  ssekit_headers_free(hd);
  ssekit_request_free(cr);
  ssekit_meta_free(upload);
  free(rows);
  free(lens);
  return o;
}

#endif /* SSEKIT_TEST_H */
