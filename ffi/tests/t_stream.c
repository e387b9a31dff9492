/* Streaming: ssekit_sealer and ssekit_opener fed odd piece sizes; cross-checked against
 * seal_into/open_into; short buffers; truncation, extra bytes and tampering mid-stream. */
#include "ssekit_test.h"

static const size_t FIXED[] = {1, 7, 4095, 16384, 65537};

/* Piece sizes: pattern 0 cycles FIXED, pattern 1 is random 1..40000, pattern 2 is all one piece. */
static size_t piece(int pattern, size_t i, uint64_t *rng, size_t left) {
  size_t k;
  if (pattern == 0)
    k = FIXED[i % (sizeof FIXED / sizeof FIXED[0])];
  else if (pattern == 1)
    k = 1 + (size_t)(rng_next(rng) % 40000);
  else
    k = left;
  return k < left ? k : left;
}

/* Seals `pt` through a sealer in pieces; returns the stored bytes (length in *len). Checks every
 * update writes exactly update_len bytes and that a short buffer consumes nothing. */
static uint8_t *stream_seal(ssekit_sealer *s, const uint8_t *pt, size_t n, int pattern, uint64_t seed,
                            size_t *len, ssekit_part_entry *entry) {
  uint64_t rng = seed;
  size_t cap = n + 16384 * 2 + 4096, at = 0, done = 0;
  uint8_t *out = xmalloc(cap);
  bool tried_short = false;
  for (size_t i = 0; done < n; i++) {
    size_t k = piece(pattern, i, &rng, n - done);
    size_t need = 0, w = 0;
    CHECK(ssekit_sealer_update_len(s, k, &need));
    /* The header: "at most input_len + 16 KiB + 16 bytes per chunk + 56". */
    size_t bound = k + 16384 + 16 * ((k + 16384) / 16384 + 1) + 56;
    SOFT_ASSERT(need <= bound, "sealer_update_len(%zu) = %zu > %zu", k, need, bound);
    if (at + need > cap) {
      cap = (at + need) * 2;
      out = realloc(out, cap);
      ASSERT(out != NULL, "realloc");
    }
    if (need > 0 && !tried_short) {
      w = 999;
      EXPECT_RC(ssekit_sealer_update(s, pt + done, k, out + at, need - 1, &w), SSEKIT_RESULT_BUFFER_TOO_SMALL);
      ASSERT_EQ_U64(w, 999);
      ASSERT_EQ_U64(ssekit_sealer_plaintext_len(s), done);
      size_t need2 = 0;
      CHECK(ssekit_sealer_update_len(s, k, &need2));
      ASSERT_EQ_U64(need2, need);
      tried_short = true;
    }
    CHECK(ssekit_sealer_update(s, pt + done, k, out + at, need, &w));
    ASSERT_EQ_U64(w, need);
    at += w;
    done += k;
    ASSERT_EQ_U64(ssekit_sealer_plaintext_len(s), done);
  }
  size_t fl = 0, w = 0;
  CHECK(ssekit_sealer_finish_len(s, &fl));
  ASSERT(fl >= 16, "finish_len %zu", fl);
  if (at + fl > cap) {
    cap = at + fl;
    out = realloc(out, cap);
    ASSERT(out != NULL, "realloc");
  }
  w = 999;
  EXPECT_RC(ssekit_sealer_finish(s, out + at, fl - 1, &w, entry), SSEKIT_RESULT_BUFFER_TOO_SMALL);
  ASSERT_EQ_U64(w, 999);
  CHECK(ssekit_sealer_finish(s, out + at, fl, &w, entry));
  ASSERT_EQ_U64(w, fl);
  at += w;
  if (entry) ASSERT_EQ_U64(entry->size, n);
  /* A finished sealer takes nothing more. */
  uint8_t b = 0;
  size_t w2 = 5;
  EXPECT_RC(ssekit_sealer_update(s, &b, 1, out, cap, &w2), SSEKIT_RESULT_INVALID_STATE);
  EXPECT_RC(ssekit_sealer_finish(s, out, cap, &w2, NULL), SSEKIT_RESULT_INVALID_STATE);
  ASSERT_EQ_U64(w2, 5);
  *len = at;
  return out;
}

/* Opens `stored` through an opener in pieces and compares with `pt`. */
static void stream_open(ssekit_opener *o, const uint8_t *stored, size_t sl, const uint8_t *pt, size_t n,
                        int pattern, uint64_t seed) {
  ASSERT_EQ_U64(ssekit_opener_stored_len(o), sl);
  ASSERT_EQ_U64(ssekit_opener_size(o), n);
  uint64_t rng = seed;
  uint8_t *out = xmalloc(n + 16384 * 4);
  size_t at = 0, done = 0;
  bool tried_short = false;
  for (size_t i = 0; at < sl; i++) {
    size_t k = piece(pattern, i, &rng, sl - at);
    size_t need = 0, w = 0;
    CHECK(ssekit_opener_update_len(o, k, &need));
    /* The header: "at most input_len + 16 KiB, or input_len + 32 KiB + 32 for DSSE-KMS" (a stored
     * length above one layer's, n + 56 + 16 per chunk, is two layers). */
    size_t slack = sl > n + 56 + 16 * (n / 16384 + 1) ? 32768 + 32 : 16384;
    SOFT_ASSERT(need <= k + slack, "opener_update_len(%zu) = %zu (stored %zu, size %zu)", k, need, sl, n);
    if (need > 0 && !tried_short) {
      w = 999;
      EXPECT_RC(ssekit_opener_update(o, stored + at, k, out + done, need - 1, &w), SSEKIT_RESULT_BUFFER_TOO_SMALL);
      ASSERT_EQ_U64(w, 999);
      tried_short = true; /* nothing consumed: the same bytes are fed again below */
    }
    CHECK(ssekit_opener_update(o, stored + at, k, out + done, need, &w));
    ASSERT(w <= need, "opener wrote %zu > %zu", w, need);
    ASSERT_EQ_U64(w, need);
    ASSERT_MEM_EQ(out + done, pt + done, w);
    done += w;
    at += k;
  }
  CHECK(ssekit_opener_finish(o));
  ASSERT_EQ_U64(done, n);
  ASSERT_MEM_EQ(out, pt, n);
  free(out);
}

/* Feeds `stored[0..len)` in 5000-byte pieces; expects every update OK and returns what came out. */
static size_t feed(ssekit_opener *o, const uint8_t *stored, size_t len, uint8_t *out) {
  size_t at = 0, done = 0;
  while (at < len) {
    size_t k = len - at < 5000 ? len - at : 5000, need = 0, w = 0;
    CHECK(ssekit_opener_update_len(o, k, &need));
    CHECK(ssekit_opener_update(o, stored + at, k, out + done, need, &w));
    done += w;
    at += k;
  }
  return done;
}

static void damaged_streams(const ssekit_read_plan *rp, const uint8_t *stored, size_t sl, const uint8_t *pt,
                            size_t n) {
  uint8_t *out = xmalloc(n + 16384 * 4);
  ssekit_opener *o = NULL;

  /* Truncated: every prefix length class. */
  size_t cuts[] = {0, 1, 55, 56, 57, sl / 2, sl - 17, sl - 16, sl - 1};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    if (cuts[c] >= sl) continue;
    CHECK(ssekit_read_plan_opener(rp, 0, &o));
    size_t got = feed(o, stored, cuts[c], out);
    ASSERT(got <= n, "released %zu > %zu", got, n);
    ASSERT_MEM_EQ(out, pt, got);
    EXPECT_RC(ssekit_opener_finish(o), SSEKIT_RESULT_TRUNCATED);
    ssekit_opener_free(o);
  }

  /* Extra bytes: one past the end, in its own call and inside the last call. */
  uint8_t *longer = xmalloc(sl + 100);
  memcpy(longer, stored, sl);
  memset(longer + sl, 0x5a, 100);
  CHECK(ssekit_read_plan_opener(rp, 0, &o));
  ASSERT_EQ_U64(feed(o, stored, sl, out), n);
  size_t need = 0, w = 4242;
  CHECK(ssekit_opener_update_len(o, 1, &need));
  EXPECT_RC(ssekit_opener_update(o, longer + sl, 1, out, need + 16384, &w), SSEKIT_RESULT_LENGTH_MISMATCH);
  ASSERT_EQ_U64(w, 4242);
  EXPECT_RC(ssekit_opener_finish(o), SSEKIT_RESULT_LENGTH_MISMATCH);
  ssekit_opener_free(o);
  CHECK(ssekit_read_plan_opener(rp, 0, &o));
  size_t head = sl > 20000 ? sl - 20000 : 0;
  size_t got = feed(o, stored, head, out);
  CHECK(ssekit_opener_update_len(o, sl - head + 100, &need));
  memset(out + got, 0xa5, need);
  w = 4242;
  EXPECT_RC(ssekit_opener_update(o, longer + head, sl - head + 100, out + got, need, &w), SSEKIT_RESULT_LENGTH_MISMATCH);
  ASSERT_EQ_U64(w, 4242);
  for (size_t j = 0; j + got < n; j += 16384) {
    size_t l = n - got - j < 16384 ? n - got - j : 16384;
    ASSERT(memcmp(out + got + j, pt + got + j, l) != 0, "plaintext released by a failed update");
  }
  ssekit_opener_free(o);
  free(longer);

  /* A flipped byte in the middle (or last) chunk: the update that reaches it fails, releasing none
   * of that call's plaintext; every later call fails the same way. */
  uint8_t *bad = xmalloc(sl);
  memcpy(bad, stored, sl);
  size_t flip = sl > 56 + 16400 + 200 ? 56 + 16400 + 100 : sl - 8;
  bad[flip] ^= 0x20;
  CHECK(ssekit_read_plan_opener(rp, 0, &o));
  size_t at = 0, done = 0;
  ssekit_result r = SSEKIT_RESULT_OK;
  while (at < sl) {
    size_t k = sl - at < 3000 ? sl - at : 3000;
    CHECK(ssekit_opener_update_len(o, k, &need));
    memset(out + done, 0xa5, need);
    w = 4242;
    r = ssekit_opener_update(o, bad + at, k, out + done, need, &w);
    if (r != SSEKIT_RESULT_OK) {
      ASSERT_EQ_U64(w, 4242);
      for (size_t j = 0; j < need && done + j < n; j += 16384) {
        size_t l = n - done - j < 16384 ? n - done - j : 16384;
        ASSERT(l == 0 || memcmp(out + done + j, pt + done + j, l) != 0, "plaintext released by a failed update");
      }
      break;
    }
    ASSERT_MEM_EQ(out + done, pt + done, w);
    done += w;
    at += k;
  }
  ASSERT(r == SSEKIT_RESULT_TAMPERED, "flipped byte at %zu of %zu: %s (%s)", flip, sl, ssekit_result_name(r),
         ssekit_last_error_message());
  ASSERT(done <= flip, "released %zu bytes, past the damage at %zu", done, flip);
  CHECK(ssekit_opener_update_len(o, 10, &need));
  EXPECT_RC(ssekit_opener_update(o, bad, 10, out, need + 16384, &w), SSEKIT_RESULT_TAMPERED);
  EXPECT_RC(ssekit_opener_finish(o), SSEKIT_RESULT_TAMPERED);
  ssekit_opener_free(o);
  /* The whole-buffer opener refuses it too, and releases nothing. */
  memset(out, 0xa5, n);
  w = 4242;
  EXPECT_RC(ssekit_read_plan_open_into(rp, bad, sl, out, n, &w), SSEKIT_RESULT_TAMPERED);
  ASSERT_EQ_U64(w, 4242);
  if (n >= 16) ASSERT(memcmp(out, pt, 16) != 0, "open_into released plaintext of a tampered object");
  free(bad);
  free(out);
}

int main(void) {
  ssekit_engine *e = local_engine();
  ssekit_bucket *bk = NULL;
  CHECK(ssekit_bucket_new(&bk));
  ssec_key ssec;
  ssec_init(&ssec, 7);
  struct {
    const char *name;
    const char *const *h;
    bool secure;
  } modes[] = {
      {"sse-s3", HDRS("x-amz-server-side-encryption", "AES256"), false},
      {"sse-kms", HDRS("x-amz-server-side-encryption", "aws:kms"), false},
      {"dsse-kms", HDRS("x-amz-server-side-encryption", "aws:kms:dsse"), false},
      {"sse-c", ssec.hdrs, true},
  };
  size_t big = test_small() ? 70001 : 400009;
  size_t sizes[] = {0, 1, 16383, 16384, 16385, big};
  for (size_t mi = 0; mi < 4; mi++) {
    const char *const *gh = mi == 3 ? ssec.hdrs : NO_HDRS;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
      size_t n = sizes[si];
      for (int pattern = 0; pattern < 3; pattern++) {
        if (test_small() && pattern == 2 && n != big) continue;
        fprintf(stderr, "%s size %zu pattern %d\n", modes[mi].name, n, pattern);
        uint64_t seed = mi * 1000 + si * 10 + (uint64_t)pattern;
        uint8_t *pt = random_buf(n, seed);

        /* Streamed seal; opened whole. */
        ssekit_request *put = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "s", modes[mi].secure, modes[mi].h, NO_HDRS);
        ssekit_write_plan *wp = NULL;
        CHECK(ssekit_engine_plan_write(e, put, bk, &wp, NULL));
        ssekit_sealer *s = NULL;
        CHECK(ssekit_write_plan_sealer(wp, 0, &s));
        size_t sl = 0;
        ssekit_part_entry entry;
        uint8_t *st = stream_seal(s, pt, n, pattern, seed, &sl, pattern == 1 ? NULL : &entry);
        ssekit_sealer_free(s);
        uint64_t want = 0;
        CHECK(ssekit_write_plan_stored_len(wp, n, &want));
        ASSERT_EQ_U64(sl, want);
        ssekit_meta *m = NULL;
        CHECK(ssekit_write_plan_finish(wp, n, &m));
        m = meta_roundtrip(m);
        ssekit_write_plan_free(wp);
        ssekit_read_plan *rp = get_plan(e, bk, "bkt", "s", modes[mi].secure, gh, m);
        expect_opens(rp, st, sl, pt, n);
        ssekit_opener *o = NULL;
        CHECK(ssekit_read_plan_opener(rp, 0, &o));
        stream_open(o, st, sl, pt, n, (pattern + 1) % 3, seed + 1);
        ssekit_opener_free(o);
        if (pattern == 0) damaged_streams(rp, st, sl, pt, n);
        ssekit_read_plan_free(rp);
        ssekit_meta_free(m);
        free(st);

        /* Whole-buffer seal; opened streamed (the opener outlives its plan). */
        stored_obj ob = put_object(e, bk, "bkt", "w", modes[mi].secure, modes[mi].h, NO_HDRS, pt, n);
        rp = get_plan(e, bk, "bkt", "w", modes[mi].secure, gh, ob.meta);
        CHECK(ssekit_read_plan_opener(rp, 0, &o));
        ssekit_read_plan_free(rp);
        stream_open(o, ob.stored, ob.stored_len, pt, n, pattern, seed + 2);
        ssekit_opener_free(o);
        obj_free(&ob);
        ssekit_request_free(put);
        free(pt);
      }
    }
  }
  ssekit_bucket_free(bk);
  ssekit_engine_free(e);
  return test_done("t_stream");
}
