/* Every error path: NULL handles and out-pointers (out-params untouched), unknown codes, invalid
 * UTF-8, overlapping buffers, finished plans, damaged data and metadata, wrong keys, every _free
 * with NULL, ssekit_result_name, the thread-local last error. */
#include "ssekit_test.h"

#define NUL SSEKIT_RESULT_NULL_PARAMETER
#define INV SSEKIT_RESULT_INVALID_PARAMETER
#define SENT ((void *)0x5e5e)

/* Out-pointer sentinels: each must be unchanged after a failed call. */
#define UNTOUCHED(p) ASSERT((void *)(p) == SENT, "%s written by a failed call", #p)

static void *thread_last_error(void *arg) {
  (void)arg;
  /* Thread-local: a fresh thread has seen no failure. */
  ASSERT(ssekit_last_error_message()[0] == '\0', "a new thread sees another thread's error: %s",
         ssekit_last_error_message());
  ssekit_bucket *b = NULL;
  ASSERT(ssekit_bucket_set_policy(b, "{}", 2) == NUL, "NULL bucket");
  ASSERT(strstr(ssekit_last_error_message(), "bucket") != NULL, "message: %s", ssekit_last_error_message());
  return NULL;
}

int main(void) {
  /* ---- ssekit_result_name ---- */
  const struct {
    uint32_t code;
    const char *name;
  } names[] = {
      {0, "SSEKIT_RESULT_OK"}, {100, "SSEKIT_RESULT_NULL_PARAMETER"}, {101, "SSEKIT_RESULT_INVALID_PARAMETER"},
      {102, "SSEKIT_RESULT_BUFFER_TOO_SMALL"}, {103, "SSEKIT_RESULT_INVALID_STATE"}, {104, "SSEKIT_RESULT_PANIC"},
      {200, "SSEKIT_RESULT_WRONG_KEY"}, {201, "SSEKIT_RESULT_TAMPERED"}, {202, "SSEKIT_RESULT_METADATA_TAMPERED"},
      {203, "SSEKIT_RESULT_PART_REPLACED"}, {204, "SSEKIT_RESULT_TRUNCATED"}, {205, "SSEKIT_RESULT_LENGTH_MISMATCH"},
      {206, "SSEKIT_RESULT_MALFORMED_METADATA"}, {207, "SSEKIT_RESULT_TOO_LARGE"},
      {208, "SSEKIT_RESULT_RANGE_NOT_SATISFIABLE"}, {209, "SSEKIT_RESULT_INVALID_RANGE"},
      {300, "SSEKIT_RESULT_KEY_NOT_FOUND"}, {301, "SSEKIT_RESULT_KEY_EXISTS"}, {302, "SSEKIT_RESULT_KEY_DISABLED"},
      {303, "SSEKIT_RESULT_KEY_PENDING_DELETION"}, {304, "SSEKIT_RESULT_KEY_DESTROYED"},
      {305, "SSEKIT_RESULT_KEY_INVALID_STATE"}, {306, "SSEKIT_RESULT_UNWRAP_FAILED"}, {307, "SSEKIT_RESULT_KEY_DEVICE"},
      {308, "SSEKIT_RESULT_KEY_UNAVAILABLE"}, {309, "SSEKIT_RESULT_KEYRING"}, {310, "SSEKIT_RESULT_KEY_MALFORMED"},
      {400, "SSEKIT_RESULT_S3_ERROR"}, {401, "SSEKIT_RESULT_MALFORMED_POLICY"},
      {402, "SSEKIT_RESULT_MALFORMED_CONFIGURATION"}, {500, "SSEKIT_RESULT_IO"}, {501, "SSEKIT_RESULT_AUDIT"},
      {502, "SSEKIT_RESULT_BACKEND"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    ASSERT(strcmp(ssekit_result_name(names[i].code), names[i].name) == 0, "result_name(%u) = %s", names[i].code,
           ssekit_result_name(names[i].code));
  const uint32_t unknown[] = {1, 99, 105, 199, 210, 311, 399, 403, 503, 1000, 0xffffffffu};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
    ASSERT(strcmp(ssekit_result_name(unknown[i]), "SSEKIT_RESULT_UNKNOWN") == 0, "result_name(%u) = %s", unknown[i],
           ssekit_result_name(unknown[i]));
  ASSERT(ssekit_version() != NULL && ssekit_version()[0] != '\0', "version");
  ASSERT(ssekit_backend_name() != NULL && ssekit_backend_name()[0] != '\0', "backend");
  ASSERT(ssekit_last_error_message() != NULL, "last_error_message NULL");

  /* ---- every _free takes NULL ---- */
  ssekit_engine_builder_free(NULL);
  ssekit_engine_free(NULL);
  ssekit_write_plan_free(NULL);
  ssekit_read_plan_free(NULL);
  ssekit_part_plan_free(NULL);
  ssekit_range_free(NULL);
  ssekit_request_free(NULL);
  ssekit_bucket_free(NULL);
  ssekit_meta_free(NULL);
  ssekit_bytes_free(NULL);
  ssekit_headers_free(NULL);
  ssekit_s3_error_free(NULL);
  ssekit_sealer_free(NULL);
  ssekit_opener_free(NULL);
  /* and the NULL-tolerant getters */
  ASSERT(ssekit_bytes_data(NULL) == NULL && ssekit_bytes_len(NULL) == 0, "bytes getters");
  ASSERT(ssekit_headers_len(NULL) == 0, "headers_len");
  ASSERT(strcmp(ssekit_s3_error_code(NULL), "") == 0 && ssekit_s3_error_status(NULL) == 0 &&
             strcmp(ssekit_s3_error_message(NULL), "") == 0,
         "s3_error getters");
  ASSERT(ssekit_meta_size(NULL) == 0 && ssekit_meta_mode(NULL) == 0 && ssekit_meta_part_count(NULL) == 0, "meta");
  ASSERT(ssekit_write_plan_mode(NULL) == 0 && ssekit_write_plan_response_headers(NULL) == NULL, "write plan");
  ASSERT(ssekit_read_plan_response_headers(NULL) == NULL && ssekit_part_plan_response_headers(NULL) == NULL, "plans");
  ASSERT(ssekit_range_fetch_count(NULL) == 0 && ssekit_range_fetch_total(NULL) == 0, "range");
  ASSERT(ssekit_sealer_plaintext_len(NULL) == 0 && ssekit_opener_stored_len(NULL) == 0 && ssekit_opener_size(NULL) == 0,
         "streams");

  /* ---- the builder ---- */
  EXPECT_RC(ssekit_engine_builder_new(NULL), NUL);
  ssekit_engine_builder *b = SENT;
  ssekit_engine *e = SENT;
  EXPECT_RC(ssekit_engine_builder_build(NULL, &e), NUL);
  UNTOUCHED(e);
  EXPECT_RC(ssekit_engine_builder_local_keyring(NULL, "/tmp/x", 6, NULL, 0), NUL);
  CHECK(ssekit_engine_builder_new(&b));
  EXPECT_RC(ssekit_engine_builder_local_keyring(b, NULL, 6, NULL, 0), NUL);
  EXPECT_RC(ssekit_engine_builder_local_keyring(b, "\xff\xfe", 2, NULL, 0), INV);
  EXPECT_RC(ssekit_engine_builder_cache(NULL, true), NUL);
  EXPECT_RC(ssekit_engine_builder_arn(b, NULL, 3, "1", 1), NUL);
  EXPECT_RC(ssekit_engine_builder_default_allow(NULL, true), NUL);
  EXPECT_RC(ssekit_engine_builder_audit_callback(b, NULL, NULL), NUL);
  EXPECT_RC(ssekit_engine_builder_audit_file(b, NULL, 4), NUL);
  /* No provider: the build fails, and frees the builder (valgrind checks). */
  e = SENT;
  ssekit_result r = ssekit_engine_builder_build(b, &e);
  ASSERT(r != SSEKIT_RESULT_OK, "an engine without a provider was built");
  UNTOUCHED(e);
  /* NULL engine_out: the builder is freed too. */
  b = local_builder();
  EXPECT_RC(ssekit_engine_builder_build(b, NULL), NUL);
  ssekit_engine_builder_free(local_builder()); /* a builder freed unbuilt */

  e = local_engine();
  ssekit_bucket *bk = NULL;
  EXPECT_RC(ssekit_bucket_new(NULL), NUL);
  CHECK(ssekit_bucket_new(&bk));

  /* ---- keys ---- */
  ssekit_bytes *info = SENT;
  EXPECT_RC(ssekit_engine_create_key(NULL, "a", 1, NULL, 0, 0, &info), NUL);
  EXPECT_RC(ssekit_engine_create_key(e, "a", 1, NULL, 0, 0, NULL), NUL);
  UNTOUCHED(info);
  create_key(e, "a");
  EXPECT_RC(ssekit_engine_create_key(e, "a", 1, NULL, 0, 0, &info), SSEKIT_RESULT_KEY_EXISTS);
  EXPECT_RC(ssekit_engine_describe_key(e, "nope", 4, &info), SSEKIT_RESULT_KEY_NOT_FOUND);
  EXPECT_RC(ssekit_engine_describe_key(e, NULL, 4, &info), NUL);
  EXPECT_RC(ssekit_engine_set_key_enabled(e, "nope", 4, false, &info), SSEKIT_RESULT_KEY_NOT_FOUND);
  EXPECT_RC(ssekit_engine_schedule_key_deletion(e, "a", 1, 3, &info), SSEKIT_RESULT_KEY_INVALID_STATE);
  EXPECT_RC(ssekit_engine_list_keys(e, NULL), NUL);
  EXPECT_RC(ssekit_engine_list_keys(NULL, &info), NUL);
  UNTOUCHED(info);
  CHECK(ssekit_engine_list_keys(e, &info));
  ASSERT(memmem(ssekit_bytes_data(info), ssekit_bytes_len(info), "\"a\"", 3) != NULL, "list_keys lacks a");
  ssekit_bytes_free(info);
  EXPECT_RC(ssekit_engine_clear_bucket_keys(NULL), NUL);

  /* ---- requests ---- */
  ssekit_request *rq = SENT;
  EXPECT_RC(ssekit_request_new(SSEKIT_OPERATION_PUT_OBJECT, NULL, 3, "k", 1, &rq), NUL);
  EXPECT_RC(ssekit_request_new(SSEKIT_OPERATION_PUT_OBJECT, "b", 1, NULL, 1, &rq), NUL);
  EXPECT_RC(ssekit_request_new(SSEKIT_OPERATION_PUT_OBJECT, "b", 1, "k", 1, NULL), NUL);
  EXPECT_RC(ssekit_request_new(SSEKIT_OPERATION_PUT_OBJECT, "b\xff", 2, "k", 1, &rq), INV);
  EXPECT_RC(ssekit_request_new(SSEKIT_OPERATION_PUT_OBJECT, "b", 1, "k\xc3", 2, &rq), INV);
  EXPECT_RC(ssekit_request_new(0, "b", 1, "k", 1, &rq), INV);
  EXPECT_RC(ssekit_request_new(10, "b", 1, "k", 1, &rq), INV);
  EXPECT_RC(ssekit_request_new(0xffffffffu, "b", 1, "k", 1, &rq), INV);
  UNTOUCHED(rq);
  ssekit_request *put = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  EXPECT_RC(ssekit_request_add_header(NULL, "a", 1, "b", 1), NUL);
  EXPECT_RC(ssekit_request_add_header(put, NULL, 1, "b", 1), NUL);
  EXPECT_RC(ssekit_request_add_header(put, "a", 1, NULL, 1), NUL);
  EXPECT_RC(ssekit_request_add_header(put, "a\xff", 2, "b", 1), INV);
  /* Not a token: a name with a space would pass as another header and its SSE request be lost. */
  EXPECT_RC(ssekit_request_add_header(put, "x-amz-server-side-encryption ", 29, "aws:kms", 7), INV);
  EXPECT_RC(ssekit_request_add_header(put, "x-amz-meta\r\nx", 14, "b", 1), INV);
  EXPECT_RC(ssekit_request_add_header(put, "", 0, "b", 1), INV);
  EXPECT_RC(ssekit_request_add_header(put, "x-amz-meta-a", 12, "b\r\nx: y", 8), INV);
  EXPECT_RC(ssekit_request_set_secure(NULL, true), NUL);
  EXPECT_RC(ssekit_request_set_principal(NULL, "*", 1), NUL);
  EXPECT_RC(ssekit_request_set_principal(put, NULL, 1), NUL);

  /* ---- plan_write ---- */
  ssekit_write_plan *wp = SENT;
  ssekit_s3_error *err = SENT;
  EXPECT_RC(ssekit_engine_plan_write(NULL, put, bk, &wp, &err), NUL);
  EXPECT_RC(ssekit_engine_plan_write(e, NULL, bk, &wp, &err), NUL);
  EXPECT_RC(ssekit_engine_plan_write(e, put, NULL, &wp, &err), NUL);
  EXPECT_RC(ssekit_engine_plan_write(e, put, bk, NULL, &err), NUL);
  EXPECT_RC(ssekit_engine_plan_write(e, put, bk, NULL, NULL), NUL);
  UNTOUCHED(wp);
  UNTOUCHED(err);
  ssekit_request *getrq = request(SSEKIT_OPERATION_GET_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  r = ssekit_engine_plan_write(e, getrq, bk, &wp, NULL);
  ASSERT(r != SSEKIT_RESULT_OK, "a GET request planned a write");
  UNTOUCHED(wp);
  ssekit_request *copyrq = request(SSEKIT_OPERATION_COPY_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  EXPECT_RC(ssekit_engine_plan_write(e, copyrq, bk, &wp, NULL), INV);
  ssekit_request_free(copyrq);

  CHECK(ssekit_engine_plan_write(e, put, bk, &wp, NULL));
  uint8_t pt[40000];
  fill_random(pt, sizeof pt, 4);
  size_t n = sizeof pt;
  uint64_t sl = 0, u64 = 77;
  EXPECT_RC(ssekit_write_plan_stored_len(NULL, n, &u64), NUL);
  EXPECT_RC(ssekit_write_plan_stored_len(wp, n, NULL), NUL);
  ASSERT_EQ_U64(u64, 77);
  EXPECT_RC(ssekit_write_plan_stored_len(wp, UINT64_MAX, &u64), SSEKIT_RESULT_TOO_LARGE);
  CHECK(ssekit_write_plan_stored_len(wp, n, &sl));
  uint8_t *st = xmalloc((size_t)sl + 100);
  size_t w = 99;
  EXPECT_RC(ssekit_write_plan_seal_into(NULL, pt, n, st, (size_t)sl, &w), NUL);
  EXPECT_RC(ssekit_write_plan_seal_into(wp, NULL, n, st, (size_t)sl, &w), NUL);
  EXPECT_RC(ssekit_write_plan_seal_into(wp, pt, n, NULL, (size_t)sl, &w), NUL);
  EXPECT_RC(ssekit_write_plan_seal_into(wp, pt, n, st, (size_t)sl, NULL), NUL);
  ASSERT_EQ_U64(w, 99);
  /* Overlapping input and output. */
  uint8_t *ov = xmalloc((size_t)sl + n);
  memcpy(ov, pt, n);
  EXPECT_RC(ssekit_write_plan_seal_into(wp, ov, n, ov + 10, (size_t)sl, &w), INV);
  EXPECT_RC(ssekit_write_plan_seal_into(wp, ov + 10, n, ov, (size_t)sl, &w), INV);
  ASSERT_EQ_U64(w, 99);
  EXPECT_RC(ssekit_write_plan_seal_in_place(NULL, ov, (size_t)sl, n, &w), NUL);
  EXPECT_RC(ssekit_write_plan_seal_in_place(wp, NULL, (size_t)sl, n, &w), NUL);
  EXPECT_RC(ssekit_write_plan_seal_in_place(wp, ov, (size_t)sl, n, NULL), NUL);
  EXPECT_RC(ssekit_write_plan_seal_in_place(wp, ov, 10, 11, &w), INV);
  ssekit_sealer *sealer = SENT;
  EXPECT_RC(ssekit_write_plan_sealer(NULL, 0, &sealer), NUL);
  EXPECT_RC(ssekit_write_plan_sealer(wp, 0, NULL), NUL);
  UNTOUCHED(sealer);
  CHECK(ssekit_write_plan_sealer(wp, 0, &sealer));
  size_t len = 55;
  EXPECT_RC(ssekit_sealer_update_len(NULL, 5, &len), NUL);
  EXPECT_RC(ssekit_sealer_update_len(sealer, 5, NULL), NUL);
  EXPECT_RC(ssekit_sealer_update(NULL, pt, 5, st, (size_t)sl, &w), NUL);
  EXPECT_RC(ssekit_sealer_update(sealer, NULL, 5, st, (size_t)sl, &w), NUL);
  EXPECT_RC(ssekit_sealer_update(sealer, pt, 5, st, (size_t)sl, NULL), NUL);
  EXPECT_RC(ssekit_sealer_update(sealer, ov, 20000, ov + 100, (size_t)sl, &w), INV);
  EXPECT_RC(ssekit_sealer_finish_len(NULL, &len), NUL);
  EXPECT_RC(ssekit_sealer_finish_len(sealer, NULL), NUL);
  EXPECT_RC(ssekit_sealer_finish(NULL, st, (size_t)sl, &w, NULL), NUL);
  EXPECT_RC(ssekit_sealer_finish(sealer, st, (size_t)sl, NULL, NULL), NUL);
  ASSERT_EQ_U64(len, 55);
  ASSERT_EQ_U64(w, 99);
  ASSERT_EQ_U64(ssekit_sealer_plaintext_len(sealer), 0);
  ssekit_sealer_free(sealer); /* unfinished */
  ssekit_meta *upload = SENT;
  EXPECT_RC(ssekit_write_plan_upload_meta(NULL, &upload), NUL);
  EXPECT_RC(ssekit_write_plan_upload_meta(wp, NULL), NUL);
  UNTOUCHED(upload);

  CHECK(ssekit_write_plan_seal_into(wp, pt, n, st, (size_t)sl, &w));
  ssekit_meta *m = SENT;
  EXPECT_RC(ssekit_write_plan_finish(NULL, n, &m), NUL);
  EXPECT_RC(ssekit_write_plan_finish(wp, n, NULL), NUL);
  UNTOUCHED(m);
  CHECK(ssekit_write_plan_finish(wp, n, &m));
  /* A finished plan seals nothing more. */
  ssekit_meta *m2 = SENT;
  EXPECT_RC(ssekit_write_plan_finish(wp, n, &m2), SSEKIT_RESULT_INVALID_STATE);
  UNTOUCHED(m2);
  EXPECT_RC(ssekit_write_plan_seal_into(wp, pt, n, st, (size_t)sl, &w), SSEKIT_RESULT_INVALID_STATE);
  EXPECT_RC(ssekit_write_plan_seal_in_place(wp, ov, (size_t)sl, n, &w), SSEKIT_RESULT_INVALID_STATE);
  sealer = SENT;
  EXPECT_RC(ssekit_write_plan_sealer(wp, 0, &sealer), SSEKIT_RESULT_INVALID_STATE);
  UNTOUCHED(sealer);
  EXPECT_RC(ssekit_write_plan_stored_len(wp, n, &u64), SSEKIT_RESULT_INVALID_STATE);
  ASSERT_EQ_U64(ssekit_write_plan_mode(wp), 0);
  ssekit_write_plan_free(wp);
  free(ov);

  /* ---- metadata ---- */
  ssekit_bytes *enc = SENT;
  EXPECT_RC(ssekit_meta_encode(NULL, &enc), NUL);
  EXPECT_RC(ssekit_meta_encode(m, NULL), NUL);
  UNTOUCHED(enc);
  CHECK(ssekit_meta_encode(m, &enc));
  size_t elen = ssekit_bytes_len(enc);
  uint8_t *eb = xmalloc(elen);
  memcpy(eb, ssekit_bytes_data(enc), elen);
  ssekit_bytes_free(enc);
  ssekit_meta *pm = SENT;
  EXPECT_RC(ssekit_meta_parse(NULL, elen, &pm), NUL);
  EXPECT_RC(ssekit_meta_parse(eb, elen, NULL), NUL);
  EXPECT_RC(ssekit_meta_parse(eb, 0, &pm), SSEKIT_RESULT_MALFORMED_METADATA);
  EXPECT_RC(ssekit_meta_parse(eb, elen - 1, &pm), SSEKIT_RESULT_MALFORMED_METADATA);
  EXPECT_RC(ssekit_meta_parse((const uint8_t *)"garbage!", 8, &pm), SSEKIT_RESULT_MALFORMED_METADATA);
  UNTOUCHED(pm);

  /* ---- plan_read and what it opens ---- */
  ssekit_read_plan *rp = SENT;
  EXPECT_RC(ssekit_engine_plan_read(NULL, getrq, bk, m, &rp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_read(e, NULL, bk, m, &rp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_read(e, getrq, NULL, m, &rp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_read(e, getrq, bk, NULL, &rp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_read(e, getrq, bk, m, NULL, NULL), NUL);
  UNTOUCHED(rp);
  r = ssekit_engine_plan_read(e, put, bk, m, &rp, NULL);
  ASSERT(r != SSEKIT_RESULT_OK, "a PUT request planned a read");
  UNTOUCHED(rp);
  CHECK(ssekit_engine_plan_read(e, getrq, bk, m, &rp, NULL));
  uint8_t *out = xmalloc(n + 100);
  EXPECT_RC(ssekit_read_plan_size(NULL, &u64), NUL);
  EXPECT_RC(ssekit_read_plan_size(rp, NULL), NUL);
  EXPECT_RC(ssekit_read_plan_open_into(NULL, st, w, out, n, &len), NUL);
  EXPECT_RC(ssekit_read_plan_open_into(rp, NULL, w, out, n, &len), NUL);
  EXPECT_RC(ssekit_read_plan_open_into(rp, st, w, NULL, n, &len), NUL);
  EXPECT_RC(ssekit_read_plan_open_into(rp, st, w, out, n, NULL), NUL);
  EXPECT_RC(ssekit_read_plan_open_in_place(NULL, st, w, &len), NUL);
  EXPECT_RC(ssekit_read_plan_open_in_place(rp, NULL, w, &len), NUL);
  EXPECT_RC(ssekit_read_plan_open_in_place(rp, st, w, NULL), NUL);
  EXPECT_RC(ssekit_read_plan_part_stored_len(NULL, 0, &u64), NUL);
  EXPECT_RC(ssekit_read_plan_part_stored_len(rp, 0, NULL), NUL);
  ASSERT_EQ_U64(u64, 77);
  ASSERT_EQ_U64(len, 55);
  uint8_t *ovr = xmalloc(w + n);
  memcpy(ovr, st, w);
  EXPECT_RC(ssekit_read_plan_open_into(rp, ovr, w, ovr + 100, n, &len), INV);
  free(ovr);
  ssekit_range *rg = SENT;
  EXPECT_RC(ssekit_read_plan_range(NULL, "bytes=0-1", 9, w, &rg), NUL);
  EXPECT_RC(ssekit_read_plan_range(rp, NULL, 9, w, &rg), NUL);
  EXPECT_RC(ssekit_read_plan_range(rp, "bytes=0-1", 9, w, NULL), NUL);
  EXPECT_RC(ssekit_read_plan_range(rp, "bytes=0-\xff", 9, w, &rg), INV); /* not UTF-8 */
  UNTOUCHED(rg);
  CHECK(ssekit_read_plan_range(rp, "bytes=100-20000", 15, w, &rg));
  EXPECT_RC(ssekit_range_plaintext(NULL, &u64, &u64, &u64), NUL);
  EXPECT_RC(ssekit_range_plaintext(rg, NULL, &u64, &u64), NUL);
  EXPECT_RC(ssekit_range_plaintext(rg, &u64, NULL, &u64), NUL);
  EXPECT_RC(ssekit_range_plaintext(rg, &u64, &u64, NULL), NUL);
  EXPECT_RC(ssekit_range_fetch(NULL, 0, &u64, &u64), NUL);
  EXPECT_RC(ssekit_range_fetch(rg, 0, NULL, &u64), NUL);
  EXPECT_RC(ssekit_range_fetch(rg, 0, &u64, NULL), NUL);
  ASSERT_EQ_U64(u64, 77);
  uint64_t ft = ssekit_range_fetch_total(rg), off = 0, flen = 0;
  ASSERT_EQ_U64(ssekit_range_fetch_count(rg), 1);
  CHECK(ssekit_range_fetch(rg, 0, &off, &flen));
  ASSERT_EQ_U64(flen, ft);
  EXPECT_RC(ssekit_range_open(NULL, rp, st + off, (size_t)ft, out, n, &len), NUL);
  EXPECT_RC(ssekit_range_open(rg, NULL, st + off, (size_t)ft, out, n, &len), NUL);
  EXPECT_RC(ssekit_range_open(rg, rp, NULL, (size_t)ft, out, n, &len), NUL);
  EXPECT_RC(ssekit_range_open(rg, rp, st + off, (size_t)ft, NULL, n, &len), NUL);
  EXPECT_RC(ssekit_range_open(rg, rp, st + off, (size_t)ft, out, n, NULL), NUL);
  uint8_t *fr = xmalloc((size_t)ft + 20000);
  memcpy(fr, st + off, (size_t)ft);
  EXPECT_RC(ssekit_range_open(rg, rp, fr, (size_t)ft, fr + 10, 20000, &len), INV);
  free(fr);
  ASSERT_EQ_U64(len, 55);
  ssekit_range_free(rg);
  ssekit_opener *op = SENT;
  EXPECT_RC(ssekit_read_plan_opener(NULL, 0, &op), NUL);
  EXPECT_RC(ssekit_read_plan_opener(rp, 0, NULL), NUL);
  UNTOUCHED(op);
  CHECK(ssekit_read_plan_opener(rp, 0, &op));
  EXPECT_RC(ssekit_opener_update_len(NULL, 5, &len), NUL);
  EXPECT_RC(ssekit_opener_update_len(op, 5, NULL), NUL);
  EXPECT_RC(ssekit_opener_update(NULL, st, 5, out, n, &len), NUL);
  EXPECT_RC(ssekit_opener_update(op, NULL, 5, out, n, &len), NUL);
  EXPECT_RC(ssekit_opener_update(op, st, 5, out, n, NULL), NUL);
  EXPECT_RC(ssekit_opener_finish(NULL), NUL);
  ovr = xmalloc(w + n);
  memcpy(ovr, st, w);
  EXPECT_RC(ssekit_opener_update(op, ovr, w, ovr + 5, n, &len), INV);
  free(ovr);
  ASSERT_EQ_U64(len, 55);
  /* Nothing was consumed by the failures: the whole object still opens through it. */
  size_t need = 0;
  CHECK(ssekit_opener_update_len(op, w, &need));
  CHECK(ssekit_opener_update(op, st, w, out, need, &len));
  CHECK(ssekit_opener_finish(op));
  ASSERT_EQ_U64(len, n);
  ASSERT_MEM_EQ(out, pt, n);
  ssekit_opener_free(op);
  const ssekit_headers *hd = ssekit_read_plan_response_headers(rp);
  const char *hn = SENT, *hv = SENT;
  size_t hnl = 55, hvl = 55;
  EXPECT_RC(ssekit_headers_get(NULL, 0, &hn, &hnl, &hv, &hvl), NUL);
  EXPECT_RC(ssekit_headers_get(hd, 0, NULL, &hnl, &hv, &hvl), NUL);
  EXPECT_RC(ssekit_headers_get(hd, 0, &hn, NULL, &hv, &hvl), NUL);
  EXPECT_RC(ssekit_headers_get(hd, 0, &hn, &hnl, NULL, &hvl), NUL);
  EXPECT_RC(ssekit_headers_get(hd, 0, &hn, &hnl, &hv, NULL), NUL);
  EXPECT_RC(ssekit_headers_get(hd, ssekit_headers_len(hd), &hn, &hnl, &hv, &hvl), INV);
  ASSERT(hn == SENT && hv == SENT && hnl == 55 && hvl == 55, "headers_get wrote on failure");

  /* Damaged stored data. */
  uint8_t *bad = xmalloc(w + 10);
  struct {
    size_t at;
    ssekit_result want;
  } flips[] = {{0, SSEKIT_RESULT_WRONG_KEY},  {23, SSEKIT_RESULT_WRONG_KEY}, {24, SSEKIT_RESULT_WRONG_KEY},
               {55, SSEKIT_RESULT_WRONG_KEY}, {56, SSEKIT_RESULT_TAMPERED},  {56 + 16383, SSEKIT_RESULT_TAMPERED},
               {56 + 16390, SSEKIT_RESULT_TAMPERED}, {w - 17, SSEKIT_RESULT_TAMPERED}, {w - 1, SSEKIT_RESULT_TAMPERED}};
  for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
    memcpy(bad, st, w);
    bad[flips[i].at] ^= 0x80;
    len = 55;
    memset(out, 0, n);
    r = ssekit_read_plan_open_into(rp, bad, w, out, n, &len);
    ASSERT(r == flips[i].want, "byte %zu flipped: %s, want %s (%s)", flips[i].at, ssekit_result_name(r),
           ssekit_result_name(flips[i].want), ssekit_last_error_message());
    ASSERT_EQ_U64(len, 55);
    ASSERT(memcmp(out, pt, 1000) != 0, "plaintext released");
    r = ssekit_read_plan_open_in_place(rp, bad, w, &len);
    ASSERT(r == flips[i].want, "in place, byte %zu flipped: %s", flips[i].at, ssekit_result_name(r));
    ASSERT(memmem(bad, w, pt, 64) == NULL && memmem(bad, w, pt + 16384, 64) == NULL,
           "open_in_place left plaintext in a buffer it refused");
  }
  memcpy(bad, st, w);
  /* Cut short: TRUNCATED or LENGTH_MISMATCH (both describe it; the whole-buffer open knows the length). */
  size_t cuts[] = {w - 1, w - 16, w - 16400, 56, 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    r = ssekit_read_plan_open_into(rp, bad, cuts[i], out, n, &len);
    ASSERT(r == SSEKIT_RESULT_TRUNCATED || r == SSEKIT_RESULT_LENGTH_MISMATCH, "cut to %zu: %s", cuts[i],
           ssekit_result_name(r));
  }
  bad[w] = 0;
  r = ssekit_read_plan_open_into(rp, bad, w + 1, out, n, &len);
  ASSERT(r == SSEKIT_RESULT_LENGTH_MISMATCH, "one byte appended: %s", ssekit_result_name(r));
  r = ssekit_read_plan_open_into(rp, bad, 0, out, n, &len);
  ASSERT(r == SSEKIT_RESULT_TRUNCATED || r == SSEKIT_RESULT_LENGTH_MISMATCH, "empty stored data: %s", ssekit_result_name(r));
  ASSERT_EQ_U64(len, 55);
  free(bad);

  /* Wrong key: another object under the same name; its data opened with this metadata. */
  stored_obj other = put_object(e, bk, "bkt", "k", false, NO_HDRS, NO_HDRS, pt, n);
  r = ssekit_read_plan_open_into(rp, other.stored, other.stored_len, out, n, &len);
  ASSERT(r == SSEKIT_RESULT_WRONG_KEY || r == SSEKIT_RESULT_METADATA_TAMPERED, "another object's data: %s",
         ssekit_result_name(r));
  /* Another object's metadata with this data. */
  ssekit_read_plan *orp = get_plan(e, bk, "bkt", "k", false, NO_HDRS, other.meta);
  r = ssekit_read_plan_open_into(orp, st, w, out, n, &len);
  ASSERT(r == SSEKIT_RESULT_WRONG_KEY || r == SSEKIT_RESULT_METADATA_TAMPERED, "another object's metadata: %s",
         ssekit_result_name(r));
  ssekit_read_plan_free(orp);
  obj_free(&other);
  ssekit_read_plan_free(rp);

  /* Tampered metadata: every byte flipped (every 5th under valgrind) is refused, at parse, at
   * plan_read or at open, never opened. */
  int at_parse = 0, at_plan = 0, at_open = 0;
  for (size_t i = 0; i < elen; i += test_small() ? 5 : 1) {
    eb[i] ^= 0x04;
    ssekit_meta *tm = NULL;
    r = ssekit_meta_parse(eb, elen, &tm);
    if (r != SSEKIT_RESULT_OK) {
      ASSERT(r == SSEKIT_RESULT_MALFORMED_METADATA, "metadata byte %zu flipped: parse %s", i, ssekit_result_name(r));
      at_parse++;
    } else {
      ssekit_read_plan *trp = NULL;
      ssekit_s3_error *terr = NULL;
      r = ssekit_engine_plan_read(e, getrq, bk, tm, &trp, &terr);
      if (r != SSEKIT_RESULT_OK) {
        ASSERT(r == SSEKIT_RESULT_S3_ERROR, "metadata byte %zu flipped: plan_read %s", i, ssekit_result_name(r));
        ssekit_s3_error_free(terr);
        at_plan++;
      } else {
        len = 55;
        /* A flip in the size field makes the plan ask for a larger buffer: give it one. */
        uint64_t tsize = 0;
        CHECK(ssekit_read_plan_size(trp, &tsize));
        size_t cap = tsize > n && tsize < (64u << 20) ? (size_t)tsize : n;
        uint8_t *tout = xmalloc(cap);
        r = ssekit_read_plan_open_into(trp, st, w, tout, cap, &len);
        free(tout);
        if (r == SSEKIT_RESULT_BUFFER_TOO_SMALL) ASSERT(tsize != n, "metadata byte %zu: BUFFER_TOO_SMALL", i);
        if (r == SSEKIT_RESULT_BUFFER_TOO_SMALL) r = SSEKIT_RESULT_METADATA_TAMPERED; /* a size over 64 MiB */
        ASSERT(r == SSEKIT_RESULT_METADATA_TAMPERED || r == SSEKIT_RESULT_WRONG_KEY ||
                   r == SSEKIT_RESULT_MALFORMED_METADATA,
               "metadata byte %zu of %zu flipped: open_into %s", i, elen, ssekit_result_name(r));
        ASSERT_EQ_U64(len, 55);
        at_open++;
        ssekit_read_plan_free(trp);
      }
      ssekit_meta_free(tm);
    }
    eb[i] ^= 0x04;
  }
  fprintf(stderr, "metadata flips refused: %d at parse, %d at plan_read, %d at open\n", at_parse, at_plan, at_open);
  ASSERT(at_open > 0, "no flip reached the MAC check");
  free(eb);

  /* ---- multipart entry points ---- */
  ssekit_request *cr = request(SSEKIT_OPERATION_CREATE_MULTIPART_UPLOAD, "bkt", "mp", false, NO_HDRS, NO_HDRS);
  CHECK(ssekit_engine_plan_write(e, cr, bk, &wp, NULL));
  CHECK(ssekit_write_plan_upload_meta(wp, &upload));
  ssekit_write_plan_free(wp);
  ssekit_request *pr = request(SSEKIT_OPERATION_UPLOAD_PART, "bkt", "mp", false, NO_HDRS, NO_HDRS);
  ssekit_part_plan *pp = SENT;
  EXPECT_RC(ssekit_engine_plan_part(NULL, pr, bk, upload, 1, &pp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_part(e, NULL, bk, upload, 1, &pp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_part(e, pr, NULL, upload, 1, &pp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_part(e, pr, bk, NULL, 1, &pp, NULL), NUL);
  EXPECT_RC(ssekit_engine_plan_part(e, pr, bk, upload, 1, NULL, NULL), NUL);
  UNTOUCHED(pp);
  CHECK(ssekit_engine_plan_part(e, pr, bk, upload, 1, &pp, NULL));
  ssekit_part_entry row;
  memset(&row, 0x11, sizeof row);
  EXPECT_RC(ssekit_part_plan_stored_len(NULL, 5, &u64), NUL);
  EXPECT_RC(ssekit_part_plan_stored_len(pp, 5, NULL), NUL);
  EXPECT_RC(ssekit_part_plan_seal_into(NULL, pt, 5, st, (size_t)sl, &len, &row), NUL);
  EXPECT_RC(ssekit_part_plan_seal_into(pp, NULL, 5, st, (size_t)sl, &len, &row), NUL);
  EXPECT_RC(ssekit_part_plan_seal_into(pp, pt, 5, NULL, (size_t)sl, &len, &row), NUL);
  EXPECT_RC(ssekit_part_plan_seal_into(pp, pt, 5, st, (size_t)sl, NULL, &row), NUL);
  EXPECT_RC(ssekit_part_plan_seal_into(pp, pt, 5, st, (size_t)sl, &len, NULL), NUL);
  EXPECT_RC(ssekit_part_plan_seal_into(pp, pt, 5, st, 10, &len, &row), SSEKIT_RESULT_BUFFER_TOO_SMALL);
  EXPECT_RC(ssekit_part_plan_sealer(NULL, &sealer), NUL);
  EXPECT_RC(ssekit_part_plan_sealer(pp, NULL), NUL);
  ASSERT(row.number == 0x11111111u && len == 55, "part outputs written on failure");
  CHECK(ssekit_part_plan_seal_into(pp, pt, 5, st, (size_t)sl, &len, &row));
  ssekit_part_plan_free(pp);
  ssekit_request *comp = request(SSEKIT_OPERATION_COMPLETE_MULTIPART_UPLOAD, "bkt", "mp", false, NO_HDRS, NO_HDRS);
  ssekit_meta *cm = SENT;
  ssekit_headers *ch = SENT;
  EXPECT_RC(ssekit_engine_complete(NULL, comp, bk, upload, &row, 1, &cm, &ch, NULL), NUL);
  EXPECT_RC(ssekit_engine_complete(e, NULL, bk, upload, &row, 1, &cm, &ch, NULL), NUL);
  EXPECT_RC(ssekit_engine_complete(e, comp, NULL, upload, &row, 1, &cm, &ch, NULL), NUL);
  EXPECT_RC(ssekit_engine_complete(e, comp, bk, NULL, &row, 1, &cm, &ch, NULL), NUL);
  EXPECT_RC(ssekit_engine_complete(e, comp, bk, upload, NULL, 1, &cm, &ch, NULL), NUL);
  EXPECT_RC(ssekit_engine_complete(e, comp, bk, upload, &row, 1, NULL, &ch, NULL), NUL);
  EXPECT_RC(ssekit_engine_complete(e, comp, bk, upload, &row, 1, &cm, NULL, NULL), NUL);
  EXPECT_RC(ssekit_engine_complete(e, comp, bk, upload, &row, 10001, &cm, &ch, NULL), INV);
  UNTOUCHED(cm);
  UNTOUCHED(ch);
  CHECK(ssekit_engine_complete(e, comp, bk, upload, &row, 1, &cm, &ch, NULL));
  ssekit_headers_free(ch);
  ssekit_meta_free(cm);
  /* A HEAD plan opens nothing. */
  ssekit_request *head = request(SSEKIT_OPERATION_HEAD_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  CHECK(ssekit_engine_plan_read(e, head, bk, m, &rp, NULL));
  op = SENT;
  SOFT_EXPECT_RC(ssekit_read_plan_opener(rp, 0, &op), SSEKIT_RESULT_INVALID_STATE);
  SOFT_ASSERT(op == SENT, "a HEAD plan made an opener");
  if (op != SENT) ssekit_opener_free(op);
  rg = SENT;
  SOFT_EXPECT_RC(ssekit_read_plan_range(rp, "bytes=0-1", 9, w, &rg), SSEKIT_RESULT_INVALID_STATE);
  if (rg != SENT) ssekit_range_free(rg);
  ssekit_read_plan_free(rp);
  ssekit_request_free(head);

  /* ---- buckets ---- */
  EXPECT_RC(ssekit_bucket_set_encryption(NULL, "{}", 2), NUL);
  EXPECT_RC(ssekit_bucket_set_encryption(bk, "\xff", 1), INV); /* not UTF-8 */
  EXPECT_RC(ssekit_bucket_set_policy(NULL, "{}", 2), NUL);
  EXPECT_RC(ssekit_bucket_encryption(NULL, &info), NUL);
  EXPECT_RC(ssekit_bucket_encryption(bk, NULL), NUL);
  EXPECT_RC(ssekit_engine_authorize(NULL, put, bk, NULL), NUL);
  EXPECT_RC(ssekit_engine_authorize(e, NULL, bk, NULL), NUL);
  EXPECT_RC(ssekit_engine_authorize(e, put, NULL, NULL), NUL);

  /* ---- the last error is per thread ---- */
  EXPECT_RC(ssekit_engine_plan_write(e, NULL, bk, &wp, NULL), NUL);
  char mine[512];
  snprintf(mine, sizeof mine, "%s", ssekit_last_error_message());
  ASSERT(strstr(mine, "request") != NULL, "message names the argument: %s", mine);
  pthread_t t;
  ASSERT(pthread_create(&t, NULL, thread_last_error, NULL) == 0, "pthread_create");
  pthread_join(t, NULL);
  ASSERT(strcmp(ssekit_last_error_message(), mine) == 0, "another thread changed this thread's error: %s",
         ssekit_last_error_message());

  ssekit_request_free(pr);
  ssekit_request_free(comp);
  ssekit_request_free(cr);
  ssekit_meta_free(upload);
  ssekit_meta_free(m);
  ssekit_request_free(getrq);
  ssekit_request_free(put);
  free(st);
  free(out);
  ssekit_bucket_free(bk);
  ssekit_engine_free(e);
  return test_done("t_error_paths");
}
