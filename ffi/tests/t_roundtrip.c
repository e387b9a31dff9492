/* Round trips of every mode and boundary size: seal_into/open_into and seal_in_place/open_in_place,
 * the metadata through its encoding, the response headers of PUT and GET. */
#include "ssekit_test.h"

#define ARN_PREFIX "arn:aws:kms:us-east-1:000000000000:key/"

typedef struct {
  const char *name;
  const char *const *hdrs; /* NULL: no SSE header */
  bool secure;
  bool ssec;
  uint32_t mode;
  const char *sse;        /* x-amz-server-side-encryption, NULL for none */
  const char *key_arn;    /* exact key id header; "" any ARN; NULL none */
  const char *bucket_key; /* x-amz-server-side-encryption-bucket-key-enabled */
} mode_case;

static ssec_key SSEC;

static void check_headers(const mode_case *mc, const ssekit_headers *h, const char *when) {
  ASSERT(h != NULL, "%s: %s headers NULL", mc->name, when);
  EXPECT_HEADER(h, "x-amz-server-side-encryption", mc->sse);
  char v[2048];
  bool has_key = header_value(h, "x-amz-server-side-encryption-aws-kms-key-id", v, sizeof v);
  if (mc->key_arn == NULL) {
    ASSERT(!has_key, "%s %s: unexpected key id %s", mc->name, when, v);
  } else {
    ASSERT(has_key, "%s %s: no key id header", mc->name, when);
    ASSERT(strncmp(v, ARN_PREFIX, strlen(ARN_PREFIX)) == 0, "%s: key id %s is not a full ARN",
           mc->name, v);
    if (mc->key_arn[0]) ASSERT(strcmp(v, mc->key_arn) == 0, "%s: key id %s, want %s", mc->name, v, mc->key_arn);
  }
  EXPECT_HEADER(h, "x-amz-server-side-encryption-bucket-key-enabled", mc->bucket_key);
  if (mc->ssec) {
    EXPECT_HEADER(h, "x-amz-server-side-encryption-customer-algorithm", "AES256");
    EXPECT_HEADER(h, "x-amz-server-side-encryption-customer-key-MD5", SSEC.md5);
  } else {
    EXPECT_HEADER(h, "x-amz-server-side-encryption-customer-algorithm", NULL);
  }
}

static void roundtrip(const ssekit_engine *e, const ssekit_bucket *bk, const mode_case *mc, size_t n,
                      uint64_t seed) {
  char key[64];
  snprintf(key, sizeof key, "obj-%s-%zu", mc->name, n);
  uint8_t *pt = random_buf(n, seed);

  /* PUT with seal_into. */
  ssekit_request *put = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", key, mc->secure, mc->hdrs, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  CHECK(ssekit_engine_plan_write(e, put, bk, &wp, NULL));
  ASSERT_EQ_U64(ssekit_write_plan_mode(wp), mc->mode);
  check_headers(mc, ssekit_write_plan_response_headers(wp), "PUT");
  uint64_t sl = 0;
  CHECK(ssekit_write_plan_stored_len(wp, n, &sl));
  ASSERT(sl > n, "%s n=%zu: stored length %llu not larger than the plaintext", mc->name, n,
         (unsigned long long)sl);
  uint8_t *stored = xmalloc((size_t)sl);
  size_t w = 0;
  EXPECT_RC(ssekit_write_plan_seal_into(wp, pt, n, stored, (size_t)sl - 1, &w),
            SSEKIT_RESULT_BUFFER_TOO_SMALL);
  ASSERT_EQ_U64(w, 0);
  CHECK(ssekit_write_plan_seal_into(wp, pt, n, stored, (size_t)sl, &w));
  ASSERT_EQ_U64(w, sl);
  if (n >= 32) ASSERT(memmem(stored, w, pt, 32) == NULL, "%s: plaintext visible in stored data", mc->name);
  ssekit_meta *m = NULL;
  CHECK(ssekit_write_plan_finish(wp, n, &m));
  ASSERT_EQ_U64(ssekit_meta_size(m), n);
  ASSERT_EQ_U64(ssekit_meta_mode(m), mc->mode);
  ASSERT_EQ_U64(ssekit_meta_part_count(m), 0);
  m = meta_roundtrip(m);
  ssekit_write_plan_free(wp);

  /* GET with open_into. */
  ssekit_read_plan *rp = get_plan(e, bk, "bkt", key, mc->secure, mc->ssec ? SSEC.hdrs : NO_HDRS, m);
  check_headers(mc, ssekit_read_plan_response_headers(rp), "GET");
  expect_opens(rp, stored, w, pt, n);
  uint64_t psl = 0;
  CHECK(ssekit_read_plan_part_stored_len(rp, 0, &psl));
  ASSERT_EQ_U64(psl, w);
  if (n > 0) {
    uint8_t *small = xmalloc(n);
    size_t got = 12345;
    EXPECT_RC(ssekit_read_plan_open_into(rp, stored, w, small, n - 1, &got), SSEKIT_RESULT_BUFFER_TOO_SMALL);
    ASSERT_EQ_U64(got, 12345);
    free(small);
  }
  /* open_in_place of a copy of the stored data. */
  uint8_t *buf = xmalloc(w);
  memcpy(buf, stored, w);
  size_t plen = 0;
  CHECK(ssekit_read_plan_open_in_place(rp, buf, w, &plen));
  ASSERT_EQ_U64(plen, n);
  ASSERT_MEM_EQ(buf, pt, n);
  free(buf);
  ssekit_read_plan_free(rp);

  /* HEAD: the size and headers, without opening. */
  ssekit_request *head = request(SSEKIT_OPERATION_HEAD_OBJECT, "bkt", key, mc->secure,
                                 mc->ssec ? SSEC.hdrs : NO_HDRS, NO_HDRS);
  CHECK(ssekit_engine_plan_read(e, head, bk, m, &rp, NULL));
  uint64_t hs = 0;
  CHECK(ssekit_read_plan_size(rp, &hs));
  ASSERT_EQ_U64(hs, n);
  check_headers(mc, ssekit_read_plan_response_headers(rp), "HEAD");
  uint8_t *hb = xmalloc(n + 1);
  size_t got = 777;
  /* The header: INVALID_STATE is "a HEAD plan asked to open data" (checked at one size). */
  if (n == 1) SOFT_EXPECT_RC(ssekit_read_plan_open_into(rp, stored, w, hb, n + 1, &got), SSEKIT_RESULT_INVALID_STATE);
  if (n == 1) SOFT_ASSERT(got == 777, "%s n=%zu: a HEAD plan opened %zu bytes", mc->name, n, got);
  free(hb);
  ssekit_read_plan_free(rp);
  ssekit_request_free(head);
  ssekit_meta_free(m);
  free(stored);

  /* PUT with seal_in_place, GET with open_in_place. */
  CHECK(ssekit_engine_plan_write(e, put, bk, &wp, NULL));
  CHECK(ssekit_write_plan_stored_len(wp, n, &sl));
  buf = xmalloc((size_t)sl);
  memcpy(buf, pt, n);
  EXPECT_RC(ssekit_write_plan_seal_in_place(wp, buf, (size_t)sl - 1, n, &w), SSEKIT_RESULT_BUFFER_TOO_SMALL);
  ASSERT_MEM_EQ(buf, pt, n);
  CHECK(ssekit_write_plan_seal_in_place(wp, buf, (size_t)sl, n, &w));
  ASSERT_EQ_U64(w, sl);
  CHECK(ssekit_write_plan_finish(wp, n, &m));
  m = meta_roundtrip(m);
  ssekit_write_plan_free(wp);
  rp = get_plan(e, bk, "bkt", key, mc->secure, mc->ssec ? SSEC.hdrs : NO_HDRS, m);
  /* The in-place data opens with open_into too. */
  expect_opens(rp, buf, w, pt, n);
  CHECK(ssekit_read_plan_open_in_place(rp, buf, w, &plen));
  ASSERT_EQ_U64(plen, n);
  ASSERT_MEM_EQ(buf, pt, n);
  ssekit_read_plan_free(rp);
  ssekit_meta_free(m);
  free(buf);
  ssekit_request_free(put);
  free(pt);
}

int main(void) {
  ssekit_engine *e = local_engine();
  create_key(e, "k-roundtrip");
  ssec_init(&SSEC, 42);
  ssekit_bucket *bk = NULL;
  CHECK(ssekit_bucket_new(&bk));

  const mode_case modes[] = {
      {"sse-s3-default", NO_HDRS, false, false, SSEKIT_MODE_SSE_S3, "AES256", NULL, NULL},
      {"sse-s3", HDRS("x-amz-server-side-encryption", "AES256"), false, false, SSEKIT_MODE_SSE_S3,
       "AES256", NULL, NULL},
      {"sse-kms-default-key", HDRS("x-amz-server-side-encryption", "aws:kms"), false, false,
       SSEKIT_MODE_SSE_KMS, "aws:kms", "", NULL},
      {"sse-kms-named-key",
       HDRS("x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id",
            "k-roundtrip"),
       false, false, SSEKIT_MODE_SSE_KMS, "aws:kms", ARN_PREFIX "k-roundtrip", NULL},
      {"sse-kms-bucket-key",
       HDRS("x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id",
            "k-roundtrip", "x-amz-server-side-encryption-bucket-key-enabled", "true"),
       false, false, SSEKIT_MODE_SSE_KMS, "aws:kms", ARN_PREFIX "k-roundtrip", "true"},
      {"dsse-kms", HDRS("x-amz-server-side-encryption", "aws:kms:dsse"), false, false,
       SSEKIT_MODE_DSSE_KMS, "aws:kms:dsse", "", NULL},
      {"dsse-kms-named-key",
       HDRS("x-amz-server-side-encryption", "aws:kms:dsse",
            "x-amz-server-side-encryption-aws-kms-key-id", "k-roundtrip"),
       false, false, SSEKIT_MODE_DSSE_KMS, "aws:kms:dsse", ARN_PREFIX "k-roundtrip", NULL},
      {"sse-c", SSEC.hdrs, true, true, SSEKIT_MODE_SSE_C, NULL, NULL, NULL},
  };
  const size_t sizes[] = {0, 1, 16383, 16384, 16385, 32768, 1048576 + 17};
  size_t nmodes = sizeof modes / sizeof modes[0], nsizes = sizeof sizes / sizeof sizes[0];
  for (size_t i = 0; i < nmodes; i++) {
    for (size_t j = 0; j < nsizes; j++) {
      /* Under valgrind only the first and the DSSE mode seal the 1 MiB body. */
      if (test_small() && sizes[j] > 65536 && i != 0 && modes[i].mode != SSEKIT_MODE_DSSE_KMS) continue;
      fprintf(stderr, "%s size %zu\n", modes[i].name, sizes[j]);
      roundtrip(e, bk, &modes[i], sizes[j], i * 100 + j);
    }
  }
  ssekit_bucket_free(bk);
  ssekit_engine_free(e);
  return test_done("t_roundtrip");
}
