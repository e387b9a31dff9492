/* Multipart uploads: CreateMultipartUpload, parts sealed out of order from several threads (with
 * seal_into and with the part sealer), Complete, GET whole and per part, a re-uploaded part put
 * in place after Complete, part-order and SSE-C rules. */
#include "ssekit_test.h"

#define NPARTS 6

typedef struct {
  const ssekit_engine *e;
  const ssekit_bucket *bk;
  const ssekit_meta *upload;
  const char *const *part_h;
  bool secure;
  const uint8_t *pt;
  const size_t *sizes;
  const size_t *offsets;
  uint8_t **part_stored; /* per part, malloc'd by the thread */
  size_t *part_len;
  ssekit_part_entry *rows;
  int first, step; /* parts first, first+step, ... (1-based), in descending order */
} worker;

static void seal_part(const worker *w, uint32_t number, bool streamed) {
  ssekit_request *r = request(SSEKIT_OPERATION_UPLOAD_PART, "bkt", "mp", w->secure, w->part_h, NO_HDRS);
  ssekit_part_plan *pp = NULL;
  CHECK(ssekit_engine_plan_part(w->e, r, w->bk, w->upload, number, &pp, NULL));
  ASSERT(ssekit_part_plan_response_headers(pp) != NULL, "part plan without headers");
  size_t i = number - 1, n = w->sizes[i];
  const uint8_t *pt = w->pt + w->offsets[i];
  uint64_t sl = 0;
  CHECK(ssekit_part_plan_stored_len(pp, n, &sl));
  uint8_t *out = xmalloc((size_t)sl);
  ssekit_part_entry entry;
  memset(&entry, 0xee, sizeof entry);
  size_t written = 0;
  if (!streamed) {
    CHECK(ssekit_part_plan_seal_into(pp, pt, n, out, (size_t)sl, &written, &entry));
  } else {
    ssekit_sealer *s = NULL;
    CHECK(ssekit_part_plan_sealer(pp, &s));
    size_t done = 0;
    while (done < n) {
      size_t k = n - done < 5003 ? n - done : 5003, need = 0, wr = 0;
      CHECK(ssekit_sealer_update_len(s, k, &need));
      ASSERT(written + need <= sl, "sealer past the part's stored length");
      CHECK(ssekit_sealer_update(s, pt + done, k, out + written, need, &wr));
      written += wr;
      done += k;
    }
    size_t fl = 0, wr = 0;
    CHECK(ssekit_sealer_finish_len(s, &fl));
    ASSERT(written + fl <= sl, "finish past the part's stored length");
    CHECK(ssekit_sealer_finish(s, out + written, fl, &wr, &entry));
    written += wr;
    ssekit_sealer_free(s);
  }
  ASSERT_EQ_U64(written, sl);
  ASSERT_EQ_U64(entry.number, number);
  ASSERT_EQ_U64(entry.size, n);
  w->part_stored[i] = out;
  w->part_len[i] = written;
  w->rows[i] = entry;
  ssekit_part_plan_free(pp);
  ssekit_request_free(r);
}

static void *work(void *arg) {
  const worker *w = arg;
  int last = w->first;
  while (last + w->step <= NPARTS) last += w->step;
  for (int p = last; p >= w->first; p -= w->step) seal_part(w, (uint32_t)p, p % 2 == 0);
  return NULL;
}

static uint8_t *concat(uint8_t **parts, const size_t *lens, size_t *total) {
  size_t t = 0;
  for (int i = 0; i < NPARTS; i++) t += lens[i];
  uint8_t *all = xmalloc(t);
  size_t at = 0;
  for (int i = 0; i < NPARTS; i++) {
    memcpy(all + at, parts[i], lens[i]);
    at += lens[i];
  }
  *total = t;
  return all;
}

static void upload_case(const ssekit_engine *e, const ssekit_bucket *bk, const char *name, const char *const *create,
                        const char *const *part_h, bool secure, const char *sse) {
  fprintf(stderr, "multipart %s\n", name);
  size_t sizes[NPARTS] = {20000, 16384, 1, test_small() ? 40001 : 300001, 16385, 7};
  size_t offsets[NPARTS], n = 0;
  for (int i = 0; i < NPARTS; i++) {
    offsets[i] = n;
    n += sizes[i];
  }
  uint8_t *pt = random_buf(n, 11);

  ssekit_request *cr = request(SSEKIT_OPERATION_CREATE_MULTIPART_UPLOAD, "bkt", "mp", secure, create, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  CHECK(ssekit_engine_plan_write(e, cr, bk, &wp, NULL));
  EXPECT_HEADER(ssekit_write_plan_response_headers(wp), "x-amz-server-side-encryption", sse);
  ssekit_meta *upload = NULL;
  CHECK(ssekit_write_plan_upload_meta(wp, &upload));
  upload = meta_roundtrip(upload);
  ssekit_write_plan_free(wp);
  ssekit_request_free(cr);

  uint8_t *part_stored[NPARTS];
  size_t part_len[NPARTS];
  ssekit_part_entry rows[NPARTS];
  worker ws[3];
  pthread_t th[3];
  for (int t = 0; t < 3; t++) {
    ws[t] = (worker){e, bk, upload, part_h, secure, pt, sizes, offsets, part_stored, part_len, rows, t + 1, 3};
    ASSERT(pthread_create(&th[t], NULL, work, &ws[t]) == 0, "pthread_create");
  }
  for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);

  /* Complete: rows out of order, no rows, then ascending. */
  ssekit_request *comp = request(SSEKIT_OPERATION_COMPLETE_MULTIPART_UPLOAD, "bkt", "mp", secure, part_h, NO_HDRS);
  ssekit_part_entry swapped[NPARTS];
  memcpy(swapped, rows, sizeof rows);
  swapped[1] = rows[2];
  swapped[2] = rows[1];
  ssekit_meta *m = NULL;
  ssekit_headers *hd = NULL;
  EXPECT_S3(ssekit_engine_complete(e, comp, bk, upload, swapped, NPARTS, &m, &hd, &S3E), "InvalidPartOrder", 400);
  ASSERT(m == NULL && hd == NULL, "outputs written on failure");
  EXPECT_S3(ssekit_engine_complete(e, comp, bk, upload, rows, 0, &m, &hd, &S3E), "MalformedXML", 400);
  CHECK(ssekit_engine_complete(e, comp, bk, upload, rows, NPARTS, &m, &hd, NULL));
  EXPECT_HEADER(hd, "x-amz-server-side-encryption", sse);
  ssekit_headers_free(hd);
  ASSERT_EQ_U64(ssekit_meta_part_count(m), NPARTS);
  ASSERT_EQ_U64(ssekit_meta_size(m), n);
  m = meta_roundtrip(m);

  /* GET: the whole object is the parts' stored bytes in part order. */
  size_t total = 0;
  uint8_t *all = concat(part_stored, part_len, &total);
  ssekit_read_plan *rp = get_plan(e, bk, "bkt", "mp", secure, part_h, m);
  expect_opens(rp, all, total, pt, n);
  uint8_t *buf = xmalloc(total);
  memcpy(buf, all, total);
  size_t plen = 0;
  CHECK(ssekit_read_plan_open_in_place(rp, buf, total, &plen));
  ASSERT_EQ_U64(plen, n);
  ASSERT_MEM_EQ(buf, pt, n);
  free(buf);
  /* Per part. */
  uint8_t *out = xmalloc(n + 65536);
  for (uint32_t p = 1; p <= NPARTS; p++) {
    uint64_t psl = 0;
    CHECK(ssekit_read_plan_part_stored_len(rp, p, &psl));
    ASSERT_EQ_U64(psl, part_len[p - 1]);
    ssekit_opener *o = NULL;
    CHECK(ssekit_read_plan_opener(rp, p, &o));
    ASSERT_EQ_U64(ssekit_opener_size(o), sizes[p - 1]);
    ASSERT_EQ_U64(ssekit_opener_stored_len(o), part_len[p - 1]);
    size_t need = 0, w = 0;
    CHECK(ssekit_opener_update_len(o, part_len[p - 1], &need));
    CHECK(ssekit_opener_update(o, part_stored[p - 1], part_len[p - 1], out, need, &w));
    CHECK(ssekit_opener_finish(o));
    ASSERT_EQ_U64(w, sizes[p - 1]);
    ASSERT_MEM_EQ(out, pt + offsets[p - 1], w);
    ssekit_opener_free(o);
    /* Another part's bytes do not open as this part. */
    uint32_t q = p == 1 ? 2 : 1;
    CHECK(ssekit_read_plan_opener(rp, p, &o));
    CHECK(ssekit_opener_update_len(o, part_len[q - 1], &need));
    ssekit_result r = ssekit_opener_update(o, part_stored[q - 1], part_len[q - 1], out, need, &w);
    if (r == SSEKIT_RESULT_OK) r = ssekit_opener_finish(o);
    ASSERT(r != SSEKIT_RESULT_OK, "part %u's bytes opened as part %u", q, p);
    ssekit_opener_free(o);
  }
  uint64_t psl = 0;
  ssekit_opener *o = (ssekit_opener *)0x1;
  SOFT_ASSERT(ssekit_read_plan_part_stored_len(rp, NPARTS + 1, &psl) != SSEKIT_RESULT_OK, "part %d of %d has a stored length",
              NPARTS + 1, NPARTS);
  SOFT_ASSERT(ssekit_read_plan_opener(rp, NPARTS + 1, &o) != SSEKIT_RESULT_OK, "an opener of a part past the end");
  ASSERT(o == (ssekit_opener *)0x1, "opener_out written on failure");

  /* Part 2 uploaded again after Complete and put in place of the Complete's upload: refused,
   * whole, per part, by range and streamed. */
  uint8_t *orig2 = part_stored[1];
  size_t orig2_len = part_len[1];
  ssekit_part_entry row2 = rows[1];
  ws[0].first = 2;
  seal_part(&ws[0], 2, false);
  ASSERT(memcmp(rows[1].salt, row2.salt, 24) != 0, "a re-upload reused the salt");
  ASSERT_EQ_U64(part_len[1], orig2_len);
  uint8_t *replaced = concat(part_stored, part_len, &total);
  size_t w = 0;
  EXPECT_RC(ssekit_read_plan_open_into(rp, replaced, total, out, n, &w), SSEKIT_RESULT_PART_REPLACED);
  CHECK(ssekit_read_plan_opener(rp, 2, &o));
  size_t need = 0;
  CHECK(ssekit_opener_update_len(o, part_len[1], &need));
  w = 999;
  EXPECT_RC(ssekit_opener_update(o, part_stored[1], part_len[1], out, need, &w), SSEKIT_RESULT_PART_REPLACED);
  ASSERT_EQ_U64(w, 999);
  ssekit_opener_free(o);
  ssekit_range *rg = NULL;
  char spec[64];
  snprintf(spec, sizeof spec, "bytes=%zu-%zu", offsets[1] + 10, offsets[1] + 20);
  CHECK(ssekit_read_plan_range(rp, spec, strlen(spec), total, &rg));
  uint64_t ft = ssekit_range_fetch_total(rg), at = 0;
  uint8_t *fetched = xmalloc((size_t)ft);
  for (size_t i = 0; i < ssekit_range_fetch_count(rg); i++) {
    uint64_t off = 0, len = 0;
    CHECK(ssekit_range_fetch(rg, i, &off, &len));
    memcpy(fetched + at, replaced + off, (size_t)len);
    at += len;
  }
  EXPECT_RC(ssekit_range_open(rg, rp, fetched, (size_t)ft, out, 11, &w), SSEKIT_RESULT_PART_REPLACED);
  ssekit_range_free(rg);
  free(fetched);
  free(replaced);
  ssekit_read_plan_free(rp);
  ssekit_meta_free(m);

  /* A Complete naming the re-upload (S3: the last one) opens with it, and not with the first. */
  CHECK(ssekit_engine_complete(e, comp, bk, upload, rows, NPARTS, &m, &hd, NULL));
  ssekit_headers_free(hd);
  m = meta_roundtrip(m);
  rp = get_plan(e, bk, "bkt", "mp", secure, part_h, m);
  uint8_t *again = concat(part_stored, part_len, &total);
  expect_opens(rp, again, total, pt, n);
  EXPECT_RC(ssekit_read_plan_open_into(rp, all, total, out, n, &w), SSEKIT_RESULT_PART_REPLACED);
  ssekit_read_plan_free(rp);
  ssekit_meta_free(m);
  free(again);

  /* A row whose size was altered before Complete: the table authenticates, the data does not. */
  ssekit_part_entry lying[NPARTS];
  memcpy(lying, rows, sizeof rows);
  lying[3].size -= 1;
  CHECK(ssekit_engine_complete(e, comp, bk, upload, lying, NPARTS, &m, &hd, NULL));
  ssekit_headers_free(hd);
  rp = get_plan(e, bk, "bkt", "mp", secure, part_h, m);
  again = concat(part_stored, part_len, &total);
  ssekit_result r = ssekit_read_plan_open_into(rp, again, total, out, n, &w);
  ASSERT(r != SSEKIT_RESULT_OK, "a part table with a wrong size opened");
  ssekit_read_plan_free(rp);
  ssekit_meta_free(m);
  free(again);

  /* Part numbers outside 1..=10000. */
  ssekit_request *pr = request(SSEKIT_OPERATION_UPLOAD_PART, "bkt", "mp", secure, part_h, NO_HDRS);
  ssekit_part_plan *pp = NULL;
  EXPECT_S3(ssekit_engine_plan_part(e, pr, bk, upload, 0, &pp, &S3E), "InvalidArgument", 400);
  EXPECT_S3(ssekit_engine_plan_part(e, pr, bk, upload, 10001, &pp, &S3E), "InvalidArgument", 400);
  ASSERT(pp == NULL, "plan_out written on failure");
  ssekit_request_free(pr);
  /* SSE headers on UploadPart: the upload's encryption was fixed at Create. */
  pr = request(SSEKIT_OPERATION_UPLOAD_PART, "bkt", "mp", secure, part_h, HDRS("x-amz-server-side-encryption", "AES256"));
  EXPECT_S3(ssekit_engine_plan_part(e, pr, bk, upload, 1, &pp, &S3E), "InvalidArgument", 400);
  ssekit_request_free(pr);

  for (int i = 0; i < NPARTS; i++) free(part_stored[i]);
  free(orig2);
  free(all);
  free(out);
  ssekit_request_free(comp);
  ssekit_meta_free(upload);
  free(pt);
}

int main(void) {
  ssekit_engine *e = local_engine();
  create_key(e, "mpk");
  ssekit_bucket *bk = NULL;
  CHECK(ssekit_bucket_new(&bk));
  upload_case(e, bk, "sse-s3", NO_HDRS, NO_HDRS, false, "AES256");
  upload_case(e, bk, "sse-kms",
              HDRS("x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id", "mpk"),
              NO_HDRS, false, "aws:kms");
  upload_case(e, bk, "dsse-kms", HDRS("x-amz-server-side-encryption", "aws:kms:dsse"), NO_HDRS, false, "aws:kms:dsse");
  ssec_key k, other;
  ssec_init(&k, 5);
  ssec_init(&other, 6);
  upload_case(e, bk, "sse-c", k.hdrs, k.hdrs, true, NULL);

  /* SSE-C: the key is required on every part and on Complete. */
  ssekit_request *cr = request(SSEKIT_OPERATION_CREATE_MULTIPART_UPLOAD, "bkt", "c", true, k.hdrs, NO_HDRS);
  ssekit_write_plan *wp = NULL;
  CHECK(ssekit_engine_plan_write(e, cr, bk, &wp, NULL));
  ssekit_meta *upload = NULL;
  CHECK(ssekit_write_plan_upload_meta(wp, &upload));
  ssekit_write_plan_free(wp);
  ssekit_request_free(cr);
  ssekit_request *nokey = request(SSEKIT_OPERATION_UPLOAD_PART, "bkt", "c", true, NO_HDRS, NO_HDRS);
  ssekit_request *wrongkey = request(SSEKIT_OPERATION_UPLOAD_PART, "bkt", "c", true, other.hdrs, NO_HDRS);
  ssekit_request *withkey = request(SSEKIT_OPERATION_UPLOAD_PART, "bkt", "c", true, k.hdrs, NO_HDRS);
  ssekit_part_plan *pp = NULL;
  EXPECT_S3(ssekit_engine_plan_part(e, nokey, bk, upload, 1, &pp, &S3E), "InvalidRequest", 400);
  EXPECT_S3(ssekit_engine_plan_part(e, wrongkey, bk, upload, 1, &pp, &S3E), "InvalidRequest", 400);
  CHECK(ssekit_engine_plan_part(e, withkey, bk, upload, 1, &pp, NULL));
  uint8_t body[100];
  fill_random(body, sizeof body, 9);
  uint8_t st[1000];
  size_t w = 0;
  ssekit_part_entry row;
  CHECK(ssekit_part_plan_seal_into(pp, body, sizeof body, st, sizeof st, &w, &row));
  ssekit_part_plan_free(pp);
  ssekit_request *comp_nokey = request(SSEKIT_OPERATION_COMPLETE_MULTIPART_UPLOAD, "bkt", "c", true, NO_HDRS, NO_HDRS);
  ssekit_request *comp_key = request(SSEKIT_OPERATION_COMPLETE_MULTIPART_UPLOAD, "bkt", "c", true, k.hdrs, NO_HDRS);
  ssekit_meta *m = NULL;
  ssekit_headers *hd = NULL;
  EXPECT_S3(ssekit_engine_complete(e, comp_nokey, bk, upload, &row, 1, &m, &hd, &S3E), "InvalidRequest", 400);
  CHECK(ssekit_engine_complete(e, comp_key, bk, upload, &row, 1, &m, &hd, NULL));
  ssekit_read_plan *rp = get_plan(e, bk, "bkt", "c", true, k.hdrs, m);
  expect_opens(rp, st, w, body, sizeof body);
  ssekit_read_plan_free(rp);
  ssekit_meta_free(m);
  ssekit_headers_free(hd);
  ssekit_request_free(comp_nokey);
  ssekit_request_free(comp_key);
  ssekit_request_free(nokey);
  ssekit_request_free(wrongkey);
  ssekit_request_free(withkey);
  ssekit_meta_free(upload);

  ssekit_bucket_free(bk);
  ssekit_engine_free(e);
  return test_done("t_multipart");
}
