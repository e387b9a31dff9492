/* Range reads: bytes=A-B, bytes=A-, bytes=-N across chunk and part boundaries, for single-layer,
 * DSSE and multipart objects; only the listed stored ranges are fetched; invalid and
 * unsatisfiable ranges; tampered fetched bytes. */
#include "ssekit_test.h"

/* Reads `spec` of `o` (plaintext `pt`, `n` bytes) and checks it returns pt[want_start, want_end).
 * Returns the stored bytes fetched. */
static uint64_t read_range(const ssekit_read_plan *rp, const stored_obj *o, const uint8_t *pt, size_t n,
                           const char *spec, uint64_t want_start, uint64_t want_end) {
  ssekit_range *rg = NULL;
  ssekit_result r = ssekit_read_plan_range(rp, spec, strlen(spec), o->stored_len, &rg);
  if (r != SSEKIT_RESULT_OK) FAIL("range %s of %zu: %s (%s)", spec, n, ssekit_result_name(r), ssekit_last_error_message());
  uint64_t start = 0, end = 0, size = 0;
  CHECK(ssekit_range_plaintext(rg, &start, &end, &size));
  ASSERT(start == want_start && end == want_end && size == n, "range %s of %zu: [%llu, %llu) of %llu, want [%llu, %llu)",
         spec, n, (unsigned long long)start, (unsigned long long)end, (unsigned long long)size,
         (unsigned long long)want_start, (unsigned long long)want_end);
  size_t count = ssekit_range_fetch_count(rg);
  ASSERT(count >= 1, "range %s: nothing to fetch", spec);
  uint64_t total = ssekit_range_fetch_total(rg), sum = 0, prev_end = 0;
  uint8_t *fetched = xmalloc((size_t)total);
  for (size_t i = 0; i < count; i++) {
    uint64_t off = 0, len = 0;
    CHECK(ssekit_range_fetch(rg, i, &off, &len));
    ASSERT(off + len <= o->stored_len, "range %s: fetch %zu [%llu+%llu) past the stored %zu", spec, i,
           (unsigned long long)off, (unsigned long long)len, o->stored_len);
    ASSERT(i == 0 || off >= prev_end, "range %s: fetches out of order", spec);
    ASSERT(sum + len <= total, "range %s: fetches exceed fetch_total", spec);
    memcpy(fetched + sum, o->stored + off, (size_t)len);
    sum += len;
    prev_end = off + len;
  }
  ASSERT_EQ_U64(sum, total);
  uint64_t off = 0, len = 0;
  EXPECT_RC(ssekit_range_fetch(rg, count, &off, &len), SSEKIT_RESULT_INVALID_PARAMETER);
  size_t want = (size_t)(want_end - want_start), got = 0;
  uint8_t *out = xmalloc(want + 1);
  if (want > 0) {
    got = 77;
    EXPECT_RC(ssekit_range_open(rg, rp, fetched, (size_t)total, out, want - 1, &got), SSEKIT_RESULT_BUFFER_TOO_SMALL);
    ASSERT_EQ_U64(got, 77);
  }
  CHECK(ssekit_range_open(rg, rp, fetched, (size_t)total, out, want, &got));
  ASSERT_EQ_U64(got, want);
  ASSERT(memcmp(out, pt + want_start, want) == 0, "range %s: wrong plaintext", spec);
  /* Fetched bytes altered (first, middle, last) or cut short: refused. */
  size_t flips[] = {0, (size_t)total / 2, (size_t)total - 1};
  for (int f = 0; f < 3; f++) {
    fetched[flips[f]] ^= 0x01;
    got = 77;
    r = ssekit_range_open(rg, rp, fetched, (size_t)total, out, want, &got);
    ASSERT(r == SSEKIT_RESULT_TAMPERED || r == SSEKIT_RESULT_WRONG_KEY || r == SSEKIT_RESULT_PART_REPLACED,
           "range %s, fetched byte %zu flipped: %s, want TAMPERED", spec, flips[f], ssekit_result_name(r));
    /* The first fetch may start with the message header (then WRONG_KEY, or a
     * part's salt: PART_REPLACED); the last byte is a tag. */
    if (f == 2) ASSERT(r == SSEKIT_RESULT_TAMPERED, "range %s: byte %zu flipped: %s", spec, flips[f], ssekit_result_name(r));
    ASSERT_EQ_U64(got, 77);
    fetched[flips[f]] ^= 0x01;
  }
  r = ssekit_range_open(rg, rp, fetched, (size_t)total - 1, out, want, &got);
  ASSERT(r != SSEKIT_RESULT_OK, "range %s: opened from a short fetch", spec);
  ssekit_range_free(rg);
  free(out);
  free(fetched);
  return total;
}

static void expect_bad(const ssekit_read_plan *rp, const stored_obj *o, const char *spec, ssekit_result want) {
  ssekit_range *rg = (ssekit_range *)0x1;
  ssekit_result r = ssekit_read_plan_range(rp, spec, strlen(spec), o->stored_len, &rg);
  ASSERT(r == want, "range `%s`: %s, want %s (%s)", spec, ssekit_result_name(r), ssekit_result_name(want),
         ssekit_last_error_message());
  ASSERT(rg == (ssekit_range *)0x1, "range `%s`: range_out written on failure", spec);
}

static void ranges_of(const char *what, const ssekit_read_plan *rp, const stored_obj *o, const uint8_t *pt, size_t n,
                      const size_t *bounds, size_t nbounds) {
  fprintf(stderr, "%s: %zu bytes, stored %zu\n", what, n, o->stored_len);
  char spec[128];
  /* Fixed forms. */
  read_range(rp, o, pt, n, "bytes=0-0", 0, 1);
  read_range(rp, o, pt, n, "bytes=0-99", 0, 100);
  snprintf(spec, sizeof spec, "bytes=%zu-", n - 1);
  read_range(rp, o, pt, n, spec, n - 1, n);
  read_range(rp, o, pt, n, "bytes=-1", n - 1, n);
  read_range(rp, o, pt, n, "bytes=-100", n - 100, n);
  snprintf(spec, sizeof spec, "bytes=-%zu", n);
  read_range(rp, o, pt, n, spec, 0, n);
  snprintf(spec, sizeof spec, "bytes=-%zu", n + 1000);
  read_range(rp, o, pt, n, spec, 0, n);
  read_range(rp, o, pt, n, "bytes=0-", 0, n);
  snprintf(spec, sizeof spec, "bytes=10-%zu", n + 5000);
  read_range(rp, o, pt, n, spec, 10, n);
  /* Around chunk boundaries. */
  for (size_t c = 16384; c + 2 < n && c <= 4 * 16384; c += 16384) {
    snprintf(spec, sizeof spec, "bytes=%zu-%zu", c - 1, c);
    read_range(rp, o, pt, n, spec, c - 1, c + 1);
    snprintf(spec, sizeof spec, "bytes=%zu-%zu", c, c);
    read_range(rp, o, pt, n, spec, c, c + 1);
    snprintf(spec, sizeof spec, "bytes=%zu-%zu", c - 3, c + 16384 + 3);
    read_range(rp, o, pt, n, spec, c - 3, c + 16384 + 4 > n ? n : c + 16384 + 4);
  }
  /* Around part boundaries (bounds: the offsets where parts start). */
  for (size_t b = 0; b < nbounds; b++) {
    size_t p = bounds[b];
    snprintf(spec, sizeof spec, "bytes=%zu-%zu", p - 1, p);
    read_range(rp, o, pt, n, spec, p - 1, p + 1);
    snprintf(spec, sizeof spec, "bytes=%zu-%zu", p - 100, p + 99);
    read_range(rp, o, pt, n, spec, p - 100, p + 100);
    snprintf(spec, sizeof spec, "bytes=%zu-", p);
    read_range(rp, o, pt, n, spec, p, n);
  }
  /* A span over several parts. */
  if (nbounds >= 2) {
    snprintf(spec, sizeof spec, "bytes=%zu-%zu", bounds[0] - 5, bounds[nbounds - 1] + 5);
    read_range(rp, o, pt, n, spec, bounds[0] - 5, bounds[nbounds - 1] + 6);
  }
  /* Random ranges. */
  uint64_t rng = n;
  for (int i = 0; i < (test_small() ? 4 : 40); i++) {
    size_t a = (size_t)(rng_next(&rng) % n), b = a + (size_t)(rng_next(&rng) % 70000);
    if (b >= n) b = n - 1;
    snprintf(spec, sizeof spec, "bytes=%zu-%zu", a, b);
    read_range(rp, o, pt, n, spec, a, b + 1);
  }
  /* A small range in the middle fetches a few chunks, not the object. */
  size_t mid = n / 2;
  snprintf(spec, sizeof spec, "bytes=%zu-%zu", mid, mid + 99);
  uint64_t fetched = read_range(rp, o, pt, n, spec, mid, mid + 100);
  fprintf(stderr, "  100 bytes at %zu: fetched %llu of %zu\n", mid, (unsigned long long)fetched, o->stored_len);
  ASSERT(fetched <= 4 * 16400 + 2 * 56, "%s: a 100-byte range fetched %llu of %zu stored bytes", what,
         (unsigned long long)fetched, o->stored_len);
  if (n > 500000) ASSERT(fetched * 8 < o->stored_len, "%s: fetched %llu of %zu", what, (unsigned long long)fetched, o->stored_len);

  /* Not ranges S3 reads. */
  const char *invalid[] = {"", "bytes=", "bytes=5-3", "items=0-5", "bytes=0-1,3-4", "bytes=abc", "bytes=--5",
                           "bytes=1-2-3", "bytes= 1-2x", "BYTES", "bytes=-"};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) expect_bad(rp, o, invalid[i], SSEKIT_RESULT_INVALID_RANGE);
  snprintf(spec, sizeof spec, "bytes=%zu-", n);
  expect_bad(rp, o, spec, SSEKIT_RESULT_RANGE_NOT_SATISFIABLE);
  snprintf(spec, sizeof spec, "bytes=%zu-%zu", n + 10, n + 20);
  expect_bad(rp, o, spec, SSEKIT_RESULT_RANGE_NOT_SATISFIABLE);
}

int main(void) {
  ssekit_engine *e = local_engine();
  ssekit_bucket *bk = NULL;
  CHECK(ssekit_bucket_new(&bk));
  size_t n = test_small() ? 100003 : 1048576 + 17;
  uint8_t *pt = random_buf(n, 1);

  const char *modes[] = {"AES256", "aws:kms", "aws:kms:dsse"};
  for (int m = 0; m < 3; m++) {
    stored_obj o = put_object(e, bk, "bkt", "r", false, HDRS("x-amz-server-side-encryption", modes[m]), NO_HDRS, pt, n);
    ssekit_read_plan *rp = get_plan(e, bk, "bkt", "r", false, NO_HDRS, o.meta);
    ranges_of(modes[m], rp, &o, pt, n, NULL, 0);
    ssekit_read_plan_free(rp);
    obj_free(&o);
  }

  /* SSE-C: the range needs the key on the GET. */
  ssec_key k;
  ssec_init(&k, 3);
  stored_obj o = put_object(e, bk, "bkt", "c", true, k.hdrs, NO_HDRS, pt, n);
  ssekit_read_plan *rp = get_plan(e, bk, "bkt", "c", true, k.hdrs, o.meta);
  ranges_of("sse-c", rp, &o, pt, n, NULL, 0);
  ssekit_read_plan_free(rp);
  obj_free(&o);

  /* Multipart: parts of odd sizes, boundaries inside and at chunk edges. */
  size_t sizes[] = {16384 * 2 + 5, 16384, 30001, n - (16384 * 2 + 5) - 16384 - 30001};
  size_t bounds[] = {sizes[0], sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]};
  for (int m = 0; m < 3; m += 2) {
    o = put_multipart(e, bk, "bkt", "mp", false, HDRS("x-amz-server-side-encryption", modes[m]), NO_HDRS, sizes, 4, pt);
    rp = get_plan(e, bk, "bkt", "mp", false, NO_HDRS, o.meta);
    ranges_of(m == 0 ? "multipart sse-s3" : "multipart dsse", rp, &o, pt, n, bounds, 3);
    ssekit_read_plan_free(rp);
    obj_free(&o);
  }

  /* An empty object has no satisfiable range. */
  o = put_object(e, bk, "bkt", "empty", false, NO_HDRS, NO_HDRS, pt, 0);
  rp = get_plan(e, bk, "bkt", "empty", false, NO_HDRS, o.meta);
  expect_bad(rp, &o, "bytes=0-0", SSEKIT_RESULT_RANGE_NOT_SATISFIABLE);
  expect_bad(rp, &o, "bytes=0-", SSEKIT_RESULT_RANGE_NOT_SATISFIABLE);
  ssekit_read_plan_free(rp);
  obj_free(&o);

  free(pt);
  ssekit_bucket_free(bk);
  ssekit_engine_free(e);
  return test_done("t_ranges");
}
