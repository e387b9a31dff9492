/* 16 threads sharing one engine and one bucket: mixed-mode PUT/GET round trips, checked; the audit
 * callback receiving every line under a mutex; a failing callback fails the next plan with 503. */
#include "ssekit_test.h"

#define THREADS 16

static pthread_mutex_t audit_mu = PTHREAD_MUTEX_INITIALIZER;
static long audit_lines, audit_bad, audit_seq_errors;
static long long last_seq = -1;
static int fail_next; /* the callback refuses lines while set */

static int32_t audit_cb(void *userdata, const char *line, size_t len) {
  ASSERT(userdata == &audit_lines, "audit userdata %p", userdata);
  pthread_mutex_lock(&audit_mu);
  if (fail_next) {
    pthread_mutex_unlock(&audit_mu);
    return 7;
  }
  audit_lines++;
  char buf[8192];
  size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
  memcpy(buf, line, n);
  buf[n] = '\0';
  if (len < 2 || line[0] != '{' || line[len - 1] != '}' || memchr(line, '\n', len) != NULL ||
      strstr(buf, "\"op\":") == NULL || strstr(buf, "\"hash\":") == NULL) {
    if (audit_bad++ < 3) fprintf(stderr, "not an audit line: %s\n", buf);
  }
  const char *s = strstr(buf, "\"seq\":");
  long long seq = s ? strtoll(s + 6, NULL, 10) : -2;
  if (seq != last_seq + 1) {
    if (audit_seq_errors++ < 3) fprintf(stderr, "audit seq %lld after %lld\n", seq, last_seq);
  }
  last_seq = seq;
  pthread_mutex_unlock(&audit_mu);
  return 0;
}

typedef struct {
  const ssekit_engine *e;
  const ssekit_bucket *bk;
  int id, rounds;
  long ok;
} job;

static void *run(void *arg) {
  job *j = arg;
  ssec_key k;
  ssec_init(&k, 1000 + (uint64_t)j->id);
  const char *const *modes[] = {NO_HDRS, HDRS("x-amz-server-side-encryption", "AES256"),
                                HDRS("x-amz-server-side-encryption", "aws:kms"),
                                HDRS("x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id",
                                     "shared", "x-amz-server-side-encryption-bucket-key-enabled", "true"),
                                HDRS("x-amz-server-side-encryption", "aws:kms:dsse"), k.hdrs};
  uint64_t rng = (uint64_t)j->id * 7919 + 1;
  for (int i = 0; i < j->rounds; i++) {
    int m = (int)(rng_next(&rng) % 6);
    size_t n = (size_t)(rng_next(&rng) % (i % 10 == 0 ? 70000 : 3000));
    char key[64];
    snprintf(key, sizeof key, "t%d/o%d", j->id, i);
    uint8_t *pt = random_buf(n, rng);
    bool secure = m == 5;
    stored_obj o = put_object(j->e, j->bk, "shared-bkt", key, secure, modes[m], NO_HDRS, pt, n);
    ssekit_read_plan *rp = get_plan(j->e, j->bk, "shared-bkt", key, secure, secure ? k.hdrs : NO_HDRS, o.meta);
    expect_opens(rp, o.stored, o.stored_len, pt, n);
    ssekit_read_plan_free(rp);
    obj_free(&o);
    free(pt);
    j->ok++;
  }
  return NULL;
}

int main(void) {
  ssekit_engine_builder *b = local_builder();
  CHECK(ssekit_engine_builder_audit_callback(b, audit_cb, &audit_lines));
  ssekit_engine *e = build(b);
  create_key(e, "shared");
  ssekit_bucket *bk = NULL;
  CHECK(ssekit_bucket_new(&bk));
  const char *policy = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":\"*\","
                       "\"Action\":\"s3:PutObject\",\"Resource\":\"arn:aws:s3:::shared-bkt/forbidden/*\"}]}";
  CHECK(ssekit_bucket_set_policy(bk, policy, strlen(policy)));

  long before = audit_lines;
  job jobs[THREADS];
  pthread_t th[THREADS];
  int rounds = test_small() ? 6 : 300;
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (job){e, bk, i, rounds, 0};
    ASSERT(pthread_create(&th[i], NULL, run, &jobs[i]) == 0, "pthread_create");
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  long total = 0;
  for (int i = 0; i < THREADS; i++) total += jobs[i].ok;
  ASSERT_EQ_U64(total, (long)THREADS * rounds);
  fprintf(stderr, "%ld round trips, %ld audit lines\n", total, audit_lines - before);
  /* Every round trip uses a key at least once on PUT and once on GET (SSE-C included). */
  ASSERT(audit_lines - before >= total, "only %ld audit lines for %ld round trips", audit_lines - before, total);
  ASSERT(audit_bad == 0, "%ld malformed audit lines", audit_bad);
  ASSERT(audit_seq_errors == 0, "%ld audit lines out of sequence", audit_seq_errors);

  /* The policy applies in every thread's plans: one denied PUT. */
  ssekit_request *r = request(SSEKIT_OPERATION_PUT_OBJECT, "shared-bkt", "forbidden/x", false, NO_HDRS, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  EXPECT_S3(ssekit_engine_plan_write(e, r, bk, &wp, &S3E), "AccessDenied", 403);
  ssekit_request_free(r);

  /* A callback that refuses the line: the plan fails with 503 ServiceUnavailable. */
  pthread_mutex_lock(&audit_mu);
  fail_next = 1;
  pthread_mutex_unlock(&audit_mu);
  long lines = audit_lines;
  r = request(SSEKIT_OPERATION_PUT_OBJECT, "shared-bkt", "x", false, HDRS("x-amz-server-side-encryption", "aws:kms"), NO_HDRS);
  /* docs/S3.md: "A request whose line cannot be written fails (503 ServiceUnavailable)". */
  ssekit_s3_error *err = NULL;
  EXPECT_RC(ssekit_engine_plan_write(e, r, bk, &wp, &err), SSEKIT_RESULT_S3_ERROR);
  ASSERT(err != NULL, "no S3 error");
  SOFT_ASSERT(strcmp(ssekit_s3_error_code(err), "ServiceUnavailable") == 0 && ssekit_s3_error_status(err) == 503,
              "refused audit line: S3 error %s %u (%s), want ServiceUnavailable 503", ssekit_s3_error_code(err),
              ssekit_s3_error_status(err), ssekit_s3_error_message(err));
  ssekit_s3_error_free(err);
  ASSERT(wp == NULL, "plan_out written on failure");
  EXPECT_RC(ssekit_engine_plan_write(e, r, bk, &wp, NULL), SSEKIT_RESULT_S3_ERROR);
  ASSERT_EQ_U64(audit_lines, lines);
  pthread_mutex_lock(&audit_mu);
  fail_next = 0;
  pthread_mutex_unlock(&audit_mu);
  /* Delivered again: the chain goes on where it stopped. */
  CHECK(ssekit_engine_plan_write(e, r, bk, &wp, NULL));
  ASSERT(audit_lines > lines, "no audit line after the callback recovered");
  ASSERT(audit_seq_errors == 0, "audit sequence broken by the refused line");
  ssekit_write_plan_free(wp);
  ssekit_request_free(r);

  ssekit_bucket_free(bk);
  ssekit_engine_free(e);
  return test_done("t_threads");
}
