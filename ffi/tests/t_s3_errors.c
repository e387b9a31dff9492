/* The S3 layer's error table: code and status of each refusal, bucket policies and default
 * encryption, ssekit_policy_check. */
#include "ssekit_test.h"

#define SSE "x-amz-server-side-encryption"
#define KMS_KEY "x-amz-server-side-encryption-aws-kms-key-id"

static ssekit_engine *E;
static ssekit_bucket *BK;

/* A PUT with headers `h` must be refused with `code`/`status`; also with error_out NULL. */
static void put_refused(const char *const *h, bool secure, const char *code, int status, int line) {
  fprintf(stderr, "line %d: expect %s %d\n", line, code, status);
  ssekit_request *r = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "k", secure, h, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  EXPECT_S3(ssekit_engine_plan_write(E, r, BK, &wp, &S3E), code, status);
  ASSERT(wp == NULL, "plan_out written on failure (line %d)", line);
  EXPECT_RC(ssekit_engine_plan_write(E, r, BK, &wp, NULL), SSEKIT_RESULT_S3_ERROR);
  ASSERT(wp == NULL, "plan_out written on failure (line %d)", line);
  ssekit_request_free(r);
}
#define PUT_REFUSED(h, secure, code, status) put_refused((h), (secure), (code), (status), __LINE__)

static void put_ok(const ssekit_bucket *bk, const char *const *h, bool secure, uint32_t mode, const char *key_arn) {
  ssekit_request *r = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "k", secure, h, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  ssekit_s3_error *err = NULL;
  ssekit_result rc = ssekit_engine_plan_write(E, r, bk, &wp, &err);
  if (rc != SSEKIT_RESULT_OK) FAIL("plan_write: %s %s %u %s", ssekit_result_name(rc), ssekit_s3_error_code(err),
                                   ssekit_s3_error_status(err), ssekit_s3_error_message(err));
  ASSERT_EQ_U64(ssekit_write_plan_mode(wp), mode);
  if (key_arn) EXPECT_HEADER(ssekit_write_plan_response_headers(wp), KMS_KEY, key_arn);
  ssekit_write_plan_free(wp);
  ssekit_request_free(r);
}

static uint32_t decision(const char *policy, uint32_t op, const char *const *h, bool secure) {
  ssekit_request *r = request(op, "bkt", "k", secure, h, NO_HDRS);
  uint32_t d = 0;
  CHECK(ssekit_policy_check(policy, strlen(policy), r, &d));
  ssekit_request_free(r);
  return d;
}

int main(void) {
  E = local_engine();
  CHECK(ssekit_bucket_new(&BK));
  create_key(E, "K");
  create_key(E, "off");
  set_key_enabled(E, "off", false);
  ssec_key k, wrong;
  ssec_init(&k, 1);
  ssec_init(&wrong, 2);

  /* Write-side header checks. */
  PUT_REFUSED(HDRS(SSE, "AES192"), false, "InvalidArgument", 400);
  PUT_REFUSED(HDRS(SSE, "aes:kms"), false, "InvalidArgument", 400);
  PUT_REFUSED(HDRS(SSE, "AES256", KMS_KEY, "K"), false, "InvalidArgument", 400);
  PUT_REFUSED(HDRS(KMS_KEY, "K"), false, "InvalidArgument", 400);
  PUT_REFUSED(HDRS(SSE, "aws:kms", KMS_KEY, "no-such-key"), false, "KMS.NotFoundException", 400);
  PUT_REFUSED(HDRS(SSE, "aws:kms", KMS_KEY, "off"), false, "KMS.DisabledException", 400);
  PUT_REFUSED(HDRS(SSE, "aws:kms:dsse", KMS_KEY, "off"), false, "KMS.DisabledException", 400);
  PUT_REFUSED(HDRS(SSE, "aws:kms", "x-amz-server-side-encryption-bucket-key-enabled", "maybe"), false,
              "InvalidArgument", 400);
  PUT_REFUSED(HDRS(SSE, "AES256", SSE, "AES256"), false, "InvalidArgument", 400);
  PUT_REFUSED(k.hdrs, false, "InvalidRequest", 400); /* SSE-C over plain HTTP */
  char badmd5[64];
  strcpy(badmd5, wrong.md5);
  PUT_REFUSED(HDRS(k.hdrs[0], k.hdrs[1], k.hdrs[2], k.hdrs[3], k.hdrs[4], badmd5), true, "InvalidArgument", 400);
  PUT_REFUSED(HDRS(k.hdrs[0], k.hdrs[1], k.hdrs[2], k.hdrs[3]), true, "InvalidArgument", 400); /* no MD5 */
  PUT_REFUSED(HDRS(k.hdrs[0], "AES128", k.hdrs[2], k.hdrs[3], k.hdrs[4], k.hdrs[5]), true,
              "InvalidEncryptionAlgorithmError", 400);
  PUT_REFUSED(HDRS(k.hdrs[0], k.hdrs[1], k.hdrs[2], "c2hvcnQ=", k.hdrs[4], k.hdrs[5]), true, "InvalidArgument", 400);
  PUT_REFUSED(HDRS(SSE, "AES256", k.hdrs[0], k.hdrs[1], k.hdrs[2], k.hdrs[3], k.hdrs[4], k.hdrs[5]), true,
              "InvalidArgument", 400);
  /* The key re-enabled works. */
  set_key_enabled(E, "off", true);
  put_ok(BK, HDRS(SSE, "aws:kms", KMS_KEY, "off"), false, SSEKIT_MODE_SSE_KMS, "arn:aws:kms:us-east-1:000000000000:key/off");
  set_key_enabled(E, "off", false);

  /* Read-side checks. */
  uint8_t pt[100];
  fill_random(pt, sizeof pt, 3);
  stored_obj c = put_object(E, BK, "bkt", "c", true, k.hdrs, NO_HDRS, pt, sizeof pt);
  stored_obj s3 = put_object(E, BK, "bkt", "s", false, NO_HDRS, NO_HDRS, pt, sizeof pt);
  ssekit_read_plan *rp = NULL;
  struct {
    const char *const *h;
    bool secure;
    const ssekit_meta *m;
    const char *code;
    int status;
  } reads[] = {
      {NO_HDRS, true, c.meta, "InvalidRequest", 400},
      {wrong.hdrs, true, c.meta, "AccessDenied", 403},
      {k.hdrs, false, c.meta, "InvalidRequest", 400},
      {HDRS(SSE, "AES256"), false, s3.meta, "InvalidArgument", 400},
      {HDRS(SSE, "AES256"), true, c.meta, "InvalidArgument", 400},
      {k.hdrs, true, s3.meta, "InvalidRequest", 400},
  };
  for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
    for (uint32_t op = SSEKIT_OPERATION_GET_OBJECT; op <= SSEKIT_OPERATION_HEAD_OBJECT; op++) {
      fprintf(stderr, "read case %zu op %u\n", i, op);
      ssekit_request *r = request(op, "bkt", reads[i].m == c.meta ? "c" : "s", reads[i].secure, reads[i].h, NO_HDRS);
      EXPECT_S3(ssekit_engine_plan_read(E, r, BK, reads[i].m, &rp, &S3E), reads[i].code, reads[i].status);
      ASSERT(rp == NULL, "plan_out written on failure");
      EXPECT_RC(ssekit_engine_plan_read(E, r, BK, reads[i].m, &rp, NULL), SSEKIT_RESULT_S3_ERROR);
      ssekit_request_free(r);
    }
  }
  /* A disabled key refuses the GET (400 KMS.DisabledException); HEAD still answers. */
  set_key_enabled(E, "off", true);
  stored_obj kobj = put_object(E, BK, "bkt", "kk", false, HDRS(SSE, "aws:kms", KMS_KEY, "off"), NO_HDRS, pt, sizeof pt);
  set_key_enabled(E, "off", false);
  ssekit_request *g = request(SSEKIT_OPERATION_GET_OBJECT, "bkt", "kk", false, NO_HDRS, NO_HDRS);
  EXPECT_S3(ssekit_engine_plan_read(E, g, BK, kobj.meta, &rp, &S3E), "KMS.DisabledException", 400);
  ssekit_request_free(g);
  ssekit_request *h = request(SSEKIT_OPERATION_HEAD_OBJECT, "bkt", "kk", false, NO_HDRS, NO_HDRS);
  CHECK(ssekit_engine_plan_read(E, h, BK, kobj.meta, &rp, NULL));
  ssekit_read_plan_free(rp);
  ssekit_request_free(h);
  obj_free(&kobj);
  obj_free(&c);
  obj_free(&s3);

  /* Bucket policy: DenyUnencryptedObjectUploads. */
  const char *deny =
      "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"DenyUnencryptedObjectUploads\",\"Effect\":\"Deny\","
      "\"Principal\":\"*\",\"Action\":\"s3:PutObject\",\"Resource\":\"arn:aws:s3:::bkt/*\","
      "\"Condition\":{\"Null\":{\"s3:x-amz-server-side-encryption\":\"true\"}}}]}";
  ssekit_bucket *pb = NULL;
  CHECK(ssekit_bucket_new(&pb));
  CHECK(ssekit_bucket_set_policy(pb, deny, strlen(deny)));
  ssekit_request *r = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  EXPECT_S3(ssekit_engine_plan_write(E, r, pb, &wp, &S3E), "AccessDenied", 403);
  EXPECT_RC(ssekit_engine_plan_write(E, r, pb, &wp, NULL), SSEKIT_RESULT_S3_ERROR);
  EXPECT_S3(ssekit_engine_authorize(E, r, pb, &S3E), "AccessDenied", 403);
  CHECK(ssekit_engine_authorize(E, r, BK, NULL));
  ssekit_request_free(r);
  /* A bad header under the deny policy is denied (403) before it is checked (400), as in S3. */
  r = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  ssekit_request_free(r);
  put_ok(pb, HDRS(SSE, "AES256"), false, SSEKIT_MODE_SSE_S3, NULL);
  put_ok(pb, HDRS(SSE, "aws:kms", KMS_KEY, "K"), false, SSEKIT_MODE_SSE_KMS, "arn:aws:kms:us-east-1:000000000000:key/K");
  /* GET is not covered by the statement. */
  stored_obj o = put_object(E, pb, "bkt", "k", false, HDRS(SSE, "AES256"), NO_HDRS, pt, sizeof pt);
  ssekit_read_plan *rp2 = get_plan(E, pb, "bkt", "k", false, NO_HDRS, o.meta);
  expect_opens(rp2, o.stored, o.stored_len, pt, sizeof pt);
  ssekit_read_plan_free(rp2);
  obj_free(&o);
  /* Removing the policy allows the PUT again. */
  CHECK(ssekit_bucket_set_policy(pb, NULL, 0));
  put_ok(pb, NO_HDRS, false, SSEKIT_MODE_SSE_S3, NULL);

  /* ssekit_policy_check decisions. */
  ASSERT_EQ_U64(decision(deny, SSEKIT_OPERATION_PUT_OBJECT, NO_HDRS, false), SSEKIT_DECISION_DENY);
  ASSERT_EQ_U64(decision(deny, SSEKIT_OPERATION_PUT_OBJECT, HDRS(SSE, "AES256"), false), SSEKIT_DECISION_NO_MATCH);
  ASSERT_EQ_U64(decision(deny, SSEKIT_OPERATION_GET_OBJECT, NO_HDRS, false), SSEKIT_DECISION_NO_MATCH);
  const char *allow_tls =
      "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"s3:GetObject\","
      "\"Resource\":\"arn:aws:s3:::bkt/*\",\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"true\"}}}]}";
  ASSERT_EQ_U64(decision(allow_tls, SSEKIT_OPERATION_GET_OBJECT, NO_HDRS, true), SSEKIT_DECISION_ALLOW);
  ASSERT_EQ_U64(decision(allow_tls, SSEKIT_OPERATION_GET_OBJECT, NO_HDRS, false), SSEKIT_DECISION_NO_MATCH);
  ASSERT_EQ_U64(decision(allow_tls, SSEKIT_OPERATION_PUT_OBJECT, NO_HDRS, true), SSEKIT_DECISION_NO_MATCH);
  uint32_t d = 77;
  r = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  EXPECT_RC(ssekit_policy_check("{not json", 9, r, &d), SSEKIT_RESULT_MALFORMED_POLICY);
  ASSERT_EQ_U64(d, 77);
  EXPECT_RC(ssekit_policy_check(deny, strlen(deny), r, NULL), SSEKIT_RESULT_NULL_PARAMETER);
  EXPECT_RC(ssekit_policy_check(deny, strlen(deny), NULL, &d), SSEKIT_RESULT_NULL_PARAMETER);
  ssekit_request_free(r);

  /* Malformed policies leave the bucket unchanged. */
  CHECK(ssekit_bucket_set_policy(pb, deny, strlen(deny)));
  const char *bad_policies[] = {"{", "[]", "{\"Statement\":\"x\"}",
                                "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Maybe\",\"Principal\":\"*\","
                                "\"Action\":\"s3:PutObject\",\"Resource\":\"*\"}]}"};
  for (size_t i = 0; i < sizeof bad_policies / sizeof bad_policies[0]; i++)
    EXPECT_RC(ssekit_bucket_set_policy(pb, bad_policies[i], strlen(bad_policies[i])), SSEKIT_RESULT_MALFORMED_POLICY);
  r = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "k", false, NO_HDRS, NO_HDRS);
  EXPECT_S3(ssekit_engine_plan_write(E, r, pb, &wp, &S3E), "AccessDenied", 403);
  ssekit_request_free(r);

  /* Default encryption: a PUT without headers is SSE-KMS under K with a bucket key. */
  const char *enc = "{\"algorithm\":\"aws:kms\",\"kms_key_id\":\"K\",\"bucket_key_enabled\":true}";
  ssekit_bucket *eb = NULL;
  CHECK(ssekit_bucket_new(&eb));
  ssekit_bytes *js = NULL;
  CHECK(ssekit_bucket_encryption(eb, &js));
  ASSERT(memmem(ssekit_bytes_data(js), ssekit_bytes_len(js), "AES256", 6) != NULL, "default encryption: %.*s",
         (int)ssekit_bytes_len(js), (const char *)ssekit_bytes_data(js));
  ssekit_bytes_free(js);
  CHECK(ssekit_bucket_set_encryption(eb, enc, strlen(enc)));
  CHECK(ssekit_bucket_encryption(eb, &js));
  ASSERT(memmem(ssekit_bytes_data(js), ssekit_bytes_len(js), "aws:kms", 7) != NULL, "encryption: %.*s",
         (int)ssekit_bytes_len(js), (const char *)ssekit_bytes_data(js));
  ssekit_bytes_free(js);
  r = request(SSEKIT_OPERATION_PUT_OBJECT, "bkt", "d", false, NO_HDRS, NO_HDRS);
  CHECK(ssekit_engine_plan_write(E, r, eb, &wp, NULL));
  ASSERT_EQ_U64(ssekit_write_plan_mode(wp), SSEKIT_MODE_SSE_KMS);
  EXPECT_HEADER(ssekit_write_plan_response_headers(wp), SSE, "aws:kms");
  EXPECT_HEADER(ssekit_write_plan_response_headers(wp), KMS_KEY, "arn:aws:kms:us-east-1:000000000000:key/K");
  EXPECT_HEADER(ssekit_write_plan_response_headers(wp), "x-amz-server-side-encryption-bucket-key-enabled", "true");
  ssekit_write_plan_free(wp);
  ssekit_request_free(r);
  /* The request's header wins over the default. */
  put_ok(eb, HDRS(SSE, "AES256"), false, SSEKIT_MODE_SSE_S3, NULL);
  const char *bad_enc[] = {"{", "{\"algorithm\":\"AES192\"}",
                           "{\"algorithm\":\"AES256\",\"kms_key_id\":\"K\",\"bucket_key_enabled\":false}"};
  for (size_t i = 0; i < 3; i++)
    EXPECT_RC(ssekit_bucket_set_encryption(eb, bad_enc[i], strlen(bad_enc[i])), SSEKIT_RESULT_MALFORMED_CONFIGURATION);
  put_ok(eb, NO_HDRS, false, SSEKIT_MODE_SSE_KMS, "arn:aws:kms:us-east-1:000000000000:key/K");
  CHECK(ssekit_bucket_set_encryption(eb, NULL, 0));
  put_ok(eb, NO_HDRS, false, SSEKIT_MODE_SSE_S3, NULL);

  ssekit_bucket_free(eb);
  ssekit_bucket_free(pb);
  ssekit_bucket_free(BK);
  ssekit_engine_free(E);
  return test_done("t_s3_errors");
}
