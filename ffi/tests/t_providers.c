/* The PKCS#11 (SoftHSM2) and KMS (moto) engines: build from the environment scripts/test.sh sets
 * up, create a key, SSE-KMS round trip, disable -> refused; a wrong PIN fails the build with a
 * typed result. Missing environment is a failure, never a skip. */
#include "ssekit_test.h"

static const char *need_env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0')
    FAIL("%s is not set: run the suite through scripts/test.sh (it sets up SoftHSM2 and a moto KMS server "
         "and exports SSEKIT_PKCS11_MODULE, SSEKIT_PKCS11_TOKEN_LABEL, SSEKIT_PKCS11_PIN, SSEKIT_KMS_ENDPOINT "
         "and the AWS test credentials)",
         name);
  return v;
}

/* The "id" of a key description. */
static void key_id_of(const ssekit_bytes *info, char *out, size_t cap) {
  const char *js = (const char *)ssekit_bytes_data(info);
  size_t len = ssekit_bytes_len(info);
  const char *p = memmem(js, len, "\"id\":\"", 6);
  ASSERT(p != NULL, "no id in %.*s", (int)len, js);
  p += 6;
  const char *q = memchr(p, '"', len - (size_t)(p - js));
  ASSERT(q != NULL && (size_t)(q - p) < cap, "bad id in %.*s", (int)len, js);
  memcpy(out, p, (size_t)(q - p));
  out[q - p] = '\0';
}

static void exercise(const char *what, ssekit_engine *e, bool enforces_disable) {
  fprintf(stderr, "%s: create a key\n", what);
  ssekit_bytes *info = NULL;
  CHECK(ssekit_engine_create_key(e, NULL, 0, "ssekit C test", 13, 0, &info));
  char id[256];
  key_id_of(info, id, sizeof id);
  ssekit_bytes_free(info);
  CHECK(ssekit_engine_describe_key(e, id, strlen(id), &info));
  ASSERT(memmem(ssekit_bytes_data(info), ssekit_bytes_len(info), "Enabled", 7) != NULL, "%s: key %s not enabled", what, id);
  ssekit_bytes_free(info);

  ssekit_bucket *bk = NULL;
  CHECK(ssekit_bucket_new(&bk));
  size_t n = test_small() ? 20000 : 300007;
  uint8_t *pt = random_buf(n, 77);
  const char *const *h = HDRS("x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id", id);
  fprintf(stderr, "%s: SSE-KMS round trip under %s\n", what, id);
  stored_obj o = put_object(e, bk, "pbkt", "obj", false, h, NO_HDRS, pt, n);
  ASSERT_EQ_U64(ssekit_meta_mode(o.meta), SSEKIT_MODE_SSE_KMS);
  ssekit_read_plan *rp = get_plan(e, bk, "pbkt", "obj", false, NO_HDRS, o.meta);
  expect_opens(rp, o.stored, o.stored_len, pt, n);
  char v[2048];
  ASSERT(header_value(ssekit_read_plan_response_headers(rp), "x-amz-server-side-encryption-aws-kms-key-id", v, sizeof v),
         "%s: no key id header", what);
  ASSERT(strstr(v, id) != NULL, "%s: key id header %s does not name %s", what, v, id);
  ssekit_read_plan_free(rp);
  /* DSSE under the same key. */
  stored_obj d = put_object(e, bk, "pbkt", "dsse", false,
                            HDRS("x-amz-server-side-encryption", "aws:kms:dsse", "x-amz-server-side-encryption-aws-kms-key-id", id),
                            NO_HDRS, pt, n);
  rp = get_plan(e, bk, "pbkt", "dsse", false, NO_HDRS, d.meta);
  expect_opens(rp, d.stored, d.stored_len, pt, n);
  ssekit_read_plan_free(rp);

  /* Disabled: PUT and GET refused with KMS.DisabledException. */
  fprintf(stderr, "%s: disable %s\n", what, id);
  set_key_enabled(e, id, false);
  CHECK(ssekit_engine_clear_bucket_keys(e));
  CHECK(ssekit_engine_describe_key(e, id, strlen(id), &info));
  ASSERT(memmem(ssekit_bytes_data(info), ssekit_bytes_len(info), "Disabled", 8) != NULL, "%s: %s not disabled: %.*s",
         what, id, (int)ssekit_bytes_len(info), (const char *)ssekit_bytes_data(info));
  ssekit_bytes_free(info);
  ssekit_request *put = request(SSEKIT_OPERATION_PUT_OBJECT, "pbkt", "obj2", false, h, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  ssekit_request *get = request(SSEKIT_OPERATION_GET_OBJECT, "pbkt", "obj", false, NO_HDRS, NO_HDRS);
  if (enforces_disable) {
    EXPECT_S3(ssekit_engine_plan_write(e, put, bk, &wp, &S3E), "KMS.DisabledException", 400);
    EXPECT_S3(ssekit_engine_plan_read(e, get, bk, o.meta, &rp, &S3E), "KMS.DisabledException", 400);
  }
  set_key_enabled(e, id, true);
  CHECK(ssekit_engine_plan_read(e, get, bk, o.meta, &rp, NULL));
  expect_opens(rp, o.stored, o.stored_len, pt, n);
  ssekit_read_plan_free(rp);
  /* An unknown key. */
  ssekit_request *unk = request(SSEKIT_OPERATION_PUT_OBJECT, "pbkt", "obj3", false,
                                HDRS("x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id",
                                     "00000000-0000-0000-0000-000000000000"),
                                NO_HDRS);
  EXPECT_S3(ssekit_engine_plan_write(e, unk, bk, &wp, &S3E), "KMS.NotFoundException", 400);
  ssekit_request_free(unk);
  ssekit_request_free(get);
  ssekit_request_free(put);
  obj_free(&o);
  obj_free(&d);
  free(pt);
  ssekit_bucket_free(bk);
}

int main(void) {
  const char *module = need_env("SSEKIT_PKCS11_MODULE");
  const char *label = need_env("SSEKIT_PKCS11_TOKEN_LABEL");
  const char *pin = need_env("SSEKIT_PKCS11_PIN");
  const char *endpoint = need_env("SSEKIT_KMS_ENDPOINT");
  need_env("AWS_ACCESS_KEY_ID");
  need_env("AWS_SECRET_ACCESS_KEY");
  need_env("SOFTHSM2_CONF");

  /* PKCS#11. */
  char records[4200];
  snprintf(records, sizeof records, "%s/records", temp_dir());
  ssekit_engine_builder *b = NULL;
  CHECK(ssekit_engine_builder_new(&b));
  CHECK(ssekit_engine_builder_pkcs11(b, module, strlen(module), label, strlen(label), pin, strlen(pin), records,
                                     strlen(records)));
  ssekit_engine *e = build(b);
  exercise("pkcs11", e, true);
  ssekit_engine_free(e);

  /* A wrong PIN: the build fails with a typed result, no engine. */
  CHECK(ssekit_engine_builder_new(&b));
  CHECK(ssekit_engine_builder_pkcs11(b, module, strlen(module), label, strlen(label), "0000", 4, records,
                                     strlen(records)));
  e = (ssekit_engine *)0x1;
  ssekit_result r = ssekit_engine_builder_build(b, &e);
  fprintf(stderr, "wrong PIN: %s (%s)\n", ssekit_result_name(r), ssekit_last_error_message());
  ASSERT(r == SSEKIT_RESULT_KEY_DEVICE, "wrong PIN: %s, want SSEKIT_RESULT_KEY_DEVICE", ssekit_result_name(r));
  ASSERT(e == (ssekit_engine *)0x1, "engine_out written on failure");
  ASSERT(ssekit_last_error_message()[0] != '\0', "no message");
  /* A token that does not exist. */
  CHECK(ssekit_engine_builder_new(&b));
  CHECK(ssekit_engine_builder_pkcs11(b, module, strlen(module), "no-such-token", 13, pin, strlen(pin), records,
                                     strlen(records)));
  r = ssekit_engine_builder_build(b, &e);
  ASSERT(r != SSEKIT_RESULT_OK && r != SSEKIT_RESULT_PANIC, "unknown token: %s", ssekit_result_name(r));

  /* KMS. */
  CHECK(ssekit_engine_builder_new(&b));
  CHECK(ssekit_engine_builder_kms(b, endpoint, strlen(endpoint), NULL, 0));
  e = build(b);
  /* moto (the test KMS server) does not refuse GenerateDataKey or Decrypt under a disabled key
   * (checked with boto3 directly), while AWS KMS does: the library leaves that check to KMS, so
   * against moto only the key's state is checked after disabling. */
  exercise("kms", e, false);
  ssekit_engine_free(e);

  return test_done("t_providers");
}
